// Logging in with the card's authentication key the Web eID way: a token for
// a relying party's challenge (auth.token), and the relying party's own check
// of such a token (auth.verify).

#include "common/encoding.hpp"
#include "common/origin.hpp"
#include "common/version.hpp"
#include "service/prepared.hpp"

namespace kortti::service {

namespace {

void check_challenge(const Challenge& challenge) {
  check_web_origin(challenge.origin);
  signature::check_web_eid_nonce(challenge.nonce);
}

std::string app_version() { return std::string("https://kortti.invalid/korttid/") + kVersion; }

}  // namespace

// 1. the challenge's form, 2. the caller may use the card (its session, or a
// PIN with the request), 3. the key is an authentication key, 4. the
// certificate through the policy, and only then 5. the card: a refusal never
// reaches the PIN, and one of the first two leaves no audit line.
Task<signature::WebEidToken> Service::authenticate(Caller caller, std::string cert_id, Challenge challenge,
                                                   pkcs11::Credentials credentials) {
  check_challenge(challenge);
  co_await services_.tokens->check_may_sign(cert_id, caller.uid, credentials, caller.stop,
                                            pkcs11::Purpose::authentication);
  const pkcs11::CertificateInfo cert = co_await services_.tokens->certificate(cert_id);
  // A key that signs as well would make a login token stand for a signature
  // (and take the signature key's PIN), as in the tunnels.
  if (!pkcs11::serves_only(cert, pkcs11::Purpose::authentication))
    throw Error(Errc::unsupported,
                "certificate " + cert.cert_id +
                    (pkcs11::has_purpose(cert, pkcs11::Purpose::authentication)
                         ? " serves signatures as well (keyUsage nonRepudiation); a login token is made only with a "
                           "key that does nothing else"
                         : " is not an authentication certificate (keyUsage digitalSignature); a login token is made "
                           "with the card's authentication key"));
  check_pin_source(caller, credentials, false);

  AuditRecord record;
  record.action = "auth.token";
  record.caller = caller;
  record.origin = challenge.origin;
  record.cert_id = cert.cert_id;
  record.subject = cert.subject;
  const policy::Decision decision =
      co_await policy().identity(cert.der, cert.chain, policy::Action::authenticate, caller.ticket());
  if (!decision.allowed) {
    // The refusal stands whether or not its line could be written.
    (void)co_await audit_denial(std::move(record), decision);
    throw denial(decision, "authentication with this certificate");
  }

  const std::optional<pkcs11::TokenInfo> token = services_.tokens->token(cert.token_id);
  const signature::WebEidAlgorithm& algorithm =
      signature::web_eid_algorithm_for(cert.key_type, cert.curve, token && token->rsa_pss);
  pkcs11::SignRequest request;
  request.cert_id = cert.cert_id;
  request.uid = caller.uid;
  request.digest_algorithm = algorithm.digest;
  request.digest = signature::web_eid_digest(algorithm, challenge.origin, challenge.nonce);
  request.scheme = algorithm.scheme;
  // The PIN1 key: one that asks for a PIN at every signature is the PIN2 key,
  // refused (1050) before a PIN reaches it.
  request.session_key = true;
  record.digest_algorithm = name_of(algorithm.digest);
  record.digest_hex = hex_encode(request.digest);
  pkcs11::SignResult card;
  // Each try at the card has its own audit line.
  CardStep sign_once = [&](pkcs11::Credentials c) -> Task<Unit> {
    card = co_await sign_audited(record, request, std::move(c), caller.stop);
    co_return Unit{};
  };
  pinentry::Dialog dialog;
  if (credentials.prompt) dialog = login_dialog(caller, cert.subject, challenge.origin);
  co_await with_pin(caller, cert.token_id, std::move(dialog), std::move(credentials), options_.pin.prompt_attempts,
                    sign_once);

  signature::WebEidToken out;
  out.certificate = card.certificate.der;
  out.algorithm = std::string(algorithm.name);
  out.signature = signature::web_eid_signature(algorithm, cert.curve, card.signature);
  out.app_version = app_version();
  co_return out;
}

Task<TokenReport> Service::verify_token(Caller caller, signature::WebEidToken token, Challenge challenge) {
  check_challenge(challenge);
  TokenReport report;
  // On the documents' worker, in the caller's share: the key, and so the
  // cost of its check, is the caller's choice (an RSA exponent of thousands
  // of bits), which the io thread must not pay for everyone.
  const std::size_t bytes = token.certificate.size() + token.signature.size();
  report.token = co_await documents().verify_web_eid(token, challenge.origin, challenge.nonce, caller.ticket(bytes));
  if (!report.token.valid()) co_return report;
  // The certificate came with the token: whatever chain it needs is the
  // trust configuration's, never the token's.
  std::vector<Bytes> no_chain;
  report.decision =
      co_await policy().identity(token.certificate, std::move(no_chain), policy::Action::authenticate, caller.ticket());
  co_return report;
}

}  // namespace kortti::service
