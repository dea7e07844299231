// session.login and session.logout: a PIN1 session on a card, owned by the
// caller's uid, and its audit line.

#include <algorithm>

#include "service/prepared.hpp"

namespace kortti::service {

Task<bool> Service::audit_session(const Caller& caller, const char* action, const std::string& token_id,
                                  const Error* error) const {
  AuditRecord record;
  record.action = action;
  record.caller = caller;
  record.token_id = token_id;
  record.outcome = error != nullptr ? std::string(reason_of(error->code())) : "ok";
  if (error != nullptr) {
    record.detail = error->what();
    if (!error->detail.empty()) record.detail += " (" + error->detail + ")";
  }
  record.delivered = caller.listening();
  return write_audit(std::move(record));
}

Task<pkcs11::LoginResult> Service::login(Caller caller, std::string token_id, pkcs11::Credentials credentials) {
  if (!credentials.pin && !credentials.pinpad && !credentials.prompt)
    throw Error(Errc::pin_required, "session.login needs 'pin', 'pinpad': true or 'pin_prompt': true");
  co_await check_not_signature_pin(token_id);
  check_pin_source(caller, credentials, false);
  co_await services_.tokens->check_may_login(token_id, caller.uid, credentials, caller.stop);
  pinentry::Dialog dialog;
  if (credentials.prompt) dialog = login_dialog(caller, co_await holder(token_id), std::nullopt);
  pkcs11::LoginResult out;
  // Each try at the card has its own audit line.
  CardStep login_once = [&](pkcs11::Credentials c) -> Task<Unit> {
    Result<pkcs11::LoginResult> result =
        co_await attempt(services_.tokens->login(token_id, std::move(c), caller.uid, caller.stop));
    if (!result.ok()) {
      (void)co_await audit_session(caller, "session.login", token_id, &result.error());
      throw result.error();
    }
    out = std::move(result).value();
    co_return Unit{};
  };
  co_await with_pin(caller, token_id, std::move(dialog), std::move(credentials), options_.pin.prompt_attempts,
                    login_once);
  if (!co_await audit_session(caller, "session.login", token_id, nullptr)) {
    // A session nobody can account for is closed again.
    (void)co_await attempt(services_.tokens->logout(token_id, caller.uid));
    throw audit_unavailable();
  }
  co_return out;
}

Task<std::string> Service::holder(const std::string& token_id) {
  Result<std::vector<pkcs11::CertificateInfo>> certs = co_await attempt(services_.tokens->certificates(token_id));
  if (certs.ok())
    for (const auto& cert : certs.value())
      if (pkcs11::has_purpose(cert, pkcs11::Purpose::authentication)) co_return cert.subject;
  co_return std::string();
}

// A healthcare card shows one token per PIN. session.login is PIN1's: on
// the PIN2 token it would take the signature PIN from a client that
// `client_may_send = false` keeps it from, ask for it in a dialog titled
// PIN1, and keep the card logged in with it for the session's hours.
Task<Unit> Service::check_not_signature_pin(const std::string& token_id) {
  Result<std::vector<pkcs11::CertificateInfo>> certs = co_await attempt(services_.tokens->certificates(token_id));
  if (!certs.ok()) {
    // An unknown token: check_may_login says so. A present one whose list
    // cannot be read may be the PIN2 token: no login until it can be.
    if (!services_.tokens->token(token_id)) co_return Unit{};
    throw certs.error();
  }
  auto serves = [&](pkcs11::Purpose purpose) {
    return std::any_of(certs.value().begin(), certs.value().end(),
                       [&](const pkcs11::CertificateInfo& c) { return pkcs11::has_purpose(c, purpose); });
  };
  if (serves(pkcs11::Purpose::authentication)) co_return Unit{};
  if (serves(pkcs11::Purpose::signature))
    throw Error(Errc::unsupported,
                "this token's PIN is the signature PIN (PIN2), which korttid takes for one signature at a time: "
                "session.login logs in with PIN1, on the token of the card's authentication certificate")
        .with_detail("signature_pin");
  // Nothing listed to tell (a certificate object that cannot be read is
  // left out of the list): this may be the PIN2 token too.
  throw Error(Errc::unsupported,
              "this token lists no authentication certificate, so which PIN it takes is not known: session.login "
              "logs in with PIN1, on the token of the card's authentication certificate")
      .with_detail("no_authentication_certificate");
}

Task<Unit> Service::logout(Caller caller, std::string token_id) {
  services_.tokens->check_may_log_out(token_id, caller.uid);
  // Queued behind the card's work, a login on its way included.
  Result<bool> ended = co_await attempt(services_.tokens->logout(token_id, caller.uid));
  if (!ended.ok()) {
    (void)co_await audit_session(caller, "session.logout", token_id, &ended.error());
    throw ended.error();
  }
  // No session, nothing changed, and no line: anyone may ask. Else the
  // session is over either way; the line is what may be missing.
  if (ended.value()) (void)co_await audit_session(caller, "session.logout", token_id, nullptr);
  co_return Unit{};
}

}  // namespace kortti::service
