#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <spdlog/spdlog.h>

#include "common/names.hpp"
#include "common/openssl.hpp"
#include "policy/policy.hpp"
#include "policy/revocation.hpp"

namespace kortti::policy {

namespace {

std::string ocsp_url_of(X509* cert) {
  const EmailStackPtr urls(X509_get1_ocsp(cert));
  if (!urls || sk_OPENSSL_STRING_num(urls.get()) < 1) return {};
  return sk_OPENSSL_STRING_value(urls.get(), 0);
}

void push(STACK_OF(X509) * stack, X509Ptr cert) {
  // The stack owns the certificate only once it holds it.
  if (cert && sk_X509_push(stack, cert.get()) > 0) cert.release();
}

ValidationResult failed(std::string status, std::string message) {
  ValidationResult r;
  r.status = std::move(status);
  r.message = std::move(message);
  return r;
}

}  // namespace

namespace {

// The method's spelling first; the config's (underscore) also parses.
constexpr Named<Action> kActions[] = {{Action::authenticate, "authenticate"},
                                      {Action::sign_document, "sign.document"},
                                      {Action::sign_prescription, "sign.prescription"},
                                      {Action::sign_document, "sign_document"},
                                      {Action::sign_prescription, "sign_prescription"}};

}  // namespace

std::optional<Action> parse_action(std::string_view name) { return parse_in(kActions, name); }
std::string_view name_of(Action action) noexcept { return name_in(kActions, action); }

class Validator::Impl {
 public:
  Impl(TrustOptions trust, RevocationOptions revocation)
      : trust_(std::move(trust)),
        revocation_(std::move(revocation)),
        anchors_(load_certificates(trust_.anchors)),
        intermediates_(load_certificates(trust_.intermediates)),
        ocsp_(revocation_),
        crl_(revocation_) {
    store_.reset(X509_STORE_new());
    ocsp_store_.reset(X509_STORE_new());
    for (auto& a : anchors_) {
      X509_STORE_add_cert(store_.get(), a.get());
      X509_STORE_add_cert(ocsp_store_.get(), a.get());
    }
    // Validity is checked below with the configured clock skew.
    X509_STORE_set_flags(store_.get(), X509_V_FLAG_NO_CHECK_TIME);
  }

  TrustOptions trust_;
  RevocationOptions revocation_;
  std::vector<X509Ptr> anchors_;
  std::vector<X509Ptr> intermediates_;
  X509StorePtr store_;
  // The OCSP responder's chain is checked by OpenSSL, times included: an
  // expired responder (a retired one, whose key may be anyone's now) is no
  // responder.
  X509StorePtr ocsp_store_;
  OcspClient ocsp_;
  CrlClient crl_;

  // Revocation of `leaf` (issued by chain[1]): OCSP first, then CRL; with no
  // answer from either, the action's fail mode decides, and says so.
  void check_revocation(X509* leaf, STACK_OF(X509) * chain, Action action, SystemTime now, ValidationResult& result) {
    X509* issuer = sk_X509_value(chain, 1);
    std::optional<Answer> answer;
    std::vector<std::string> why;
    std::string method = "none";
    if (revocation_.ocsp) {
      const std::string url = revocation_.ocsp_url.empty() ? ocsp_url_of(leaf) : revocation_.ocsp_url;
      std::string why_not = "the certificate names no OCSP responder";
      if (!url.empty())
        answer = ocsp_.query(leaf, issuer, url, ocsp_store_.get(), chain, now, trust_.clock_skew, why_not);
      if (answer && answer->status != "unknown") {
        method = "ocsp";
      } else {
        why.push_back(answer ? "OCSP responder " + answer->source + " does not know the certificate" : why_not);
        spdlog::info("revocation of {}: {}", result.chain.front(), why.back());
        answer.reset();
      }
    }
    if (!answer && revocation_.crl) {
      std::string why_not;
      answer = crl_.check(leaf, issuer, now, trust_.clock_skew, why_not);
      if (answer)
        method = "crl";
      else
        why.push_back(why_not);
    }
    if (!revocation_.ocsp && !revocation_.crl) {
      result.revocation = {"none", "not_checked", "", std::nullopt, "revocation checking is off", false, std::nullopt};
      return;
    }
    if (answer) {
      result.revocation = {method,         answer->status, answer->source, answer->revoked_at,
                           answer->reason, answer->cached, std::nullopt};
      if (answer->status == "revoked") {
        result.status = "revoked";
        result.message =
            "the certificate is revoked" + (answer->reason.empty() ? std::string() : " (" + answer->reason + ")");
      }
      return;
    }
    // No answer from anyone: the action's fail mode decides, and says so.
    std::string reasons;
    for (const auto& w : why) reasons += (reasons.empty() ? "" : "; ") + w;
    auto mode = revocation_.fail_mode.find(action);
    const bool hard = mode == revocation_.fail_mode.end() || mode->second == FailMode::hard;
    result.revocation = {"none", "unavailable", "", std::nullopt, reasons, false, hard ? "hard-fail" : "soft-fail"};
    if (hard) {
      result.status = "revocation_unknown";
      result.message = "revocation status unknown: " + reasons;
    }
  }
};

Validator::Validator(TrustOptions trust, RevocationOptions revocation)
    : impl_(std::make_unique<Impl>(std::move(trust), std::move(revocation))) {
  if (impl_->anchors_.empty())
    spdlog::warn("no trust anchors in '{}': every certificate is untrusted", impl_->trust_.anchors);
}

Validator::~Validator() = default;

std::size_t Validator::anchor_count() const { return impl_->anchors_.size(); }

ValidationResult Validator::validate(ByteView leaf_der, const std::vector<Bytes>& extra, Action action,
                                     SystemTime now) {
  Impl& m = *impl_;
  X509Ptr leaf = parse_certificate(leaf_der);
  if (!leaf) return failed("untrusted", "not a certificate");

  // 1. A chain to one of the anchors.
  X509StackPtr untrusted(sk_X509_new_null());
  for (auto& c : m.intermediates_) push(untrusted.get(), X509Ptr(X509_dup(c.get())));
  for (const auto& der : extra) push(untrusted.get(), parse_certificate(der));
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), m.store_.get(), leaf.get(), untrusted.get());
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return failed("untrusted", std::string("no chain to a trusted root: ") + X509_verify_cert_error_string(err));
  }
  X509StackPtr chain(X509_STORE_CTX_get1_chain(ctx.get()));
  ValidationResult result;
  for (int i = 0; i < sk_X509_num(chain.get()); ++i)
    result.chain.push_back(name_rfc2253(X509_get_subject_name(sk_X509_value(chain.get(), i))));

  // 2. Validity of every certificate in the chain, with the clock skew.
  const std::time_t early = std::chrono::system_clock::to_time_t(now + m.trust_.clock_skew);
  const std::time_t late = std::chrono::system_clock::to_time_t(now - m.trust_.clock_skew);
  for (int i = 0; i < sk_X509_num(chain.get()); ++i) {
    X509* c = sk_X509_value(chain.get(), i);
    const std::string who = i == 0 ? "the certificate" : "issuer " + result.chain[static_cast<std::size_t>(i)];
    if (X509_cmp_time(X509_get0_notBefore(c), const_cast<std::time_t*>(&early)) > 0)
      return failed("not_yet_valid", who + " is not valid yet");
    if (X509_cmp_time(X509_get0_notAfter(c), const_cast<std::time_t*>(&late)) < 0)
      return failed("expired", who + " has expired");
  }

  // 3. The key's usage for this action (none without the extension).
  const std::uint32_t usage = key_usage_or_none(leaf.get());
  const bool fits =
      action == Action::authenticate ? (usage & KU_DIGITAL_SIGNATURE) != 0 : (usage & KU_NON_REPUDIATION) != 0;
  if (!fits) {
    ValidationResult r =
        failed("wrong_key_usage", (X509_get_extension_flags(leaf.get()) & EXFLAG_KUSAGE) == 0
                                      ? "the certificate has no keyUsage extension: korttid takes it for no action"
                                  : action == Action::authenticate
                                      ? "the certificate's key is not for authentication (digitalSignature)"
                                      : "the certificate's key is not for signatures (nonRepudiation)");
    r.chain = result.chain;
    return r;
  }

  // 4. Revocation of the leaf.
  if (sk_X509_num(chain.get()) < 2) {
    result.revocation = {"none", "not_checked", "", std::nullopt, "self-signed", false, std::nullopt};
    return result;
  }
  m.check_revocation(leaf.get(), chain.get(), action, now, result);
  return result;
}

}  // namespace kortti::policy
