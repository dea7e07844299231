// auth.token and auth.verify as protocol.md has them: the Web eID token's
// fields by their Web eID names, in and out.

#include "common/encoding.hpp"
#include "common/openssl.hpp"
#include "ipc/convert.hpp"
#include "ipc/methods.hpp"
#include "ipc/params.hpp"

namespace kortti::ipc {

namespace {

// A Web eID token is at most 10,000 characters; its parts are bounded so.
constexpr std::size_t kMaxTokenField = 10000;

service::Challenge challenge_param(Params& params) {
  return {params.string("origin"), params.string("challenge_nonce")};
}

std::string token_string(const Json& token, const char* key, bool required) {
  const std::string where = std::string("token.") + key;
  auto it = token.find(key);
  if (it == token.end() || it->is_null()) {
    if (required) invalid_param(where, "is required");
    return "";
  }
  if (!it->is_string()) invalid_param(where, "must be a string");
  const auto& text = it->get_ref<const WipingString&>();
  if (text.size() > kMaxTokenField) invalid_param(where, "is longer than a Web eID token may be");
  return std::string(text);
}

Bytes token_base64(const Json& token, const char* key) {
  auto bytes = base64_decode(token_string(token, key, true));
  if (!bytes) invalid_param(std::string("token.") + key, "must be base64");
  return std::move(*bytes);
}

signature::WebEidToken token_param(Params& params) {
  const Json* token = params.find("token");
  if (token == nullptr || !token->is_object()) invalid_param("token", "must be a Web eID token object");
  signature::WebEidToken t;
  t.certificate = token_base64(*token, "unverifiedCertificate");
  t.algorithm = token_string(*token, "algorithm", true);
  t.signature = token_base64(*token, "signature");
  t.format = token_string(*token, "format", true);
  t.app_version = token_string(*token, "appVersion", false);
  return t;
}

}  // namespace

Task<Json> auth_token(Core& core, std::shared_ptr<Call> call) {
  Params params(call->params());
  std::string cert_id = params.identifier("cert_id");
  service::Challenge challenge = challenge_param(params);
  const signature::WebEidToken t = co_await core.service().authenticate(call->caller(), std::move(cert_id),
                                                                        std::move(challenge), params.credentials());
  co_return Json{{"token",
                  {{"unverifiedCertificate", wstr(base64_encode(t.certificate))},
                   {"algorithm", wstr(t.algorithm)},
                   {"signature", wstr(base64_encode(t.signature))},
                   {"format", wstr(t.format)},
                   {"appVersion", wstr(t.app_version)}}}};
}

Task<Json> auth_verify(Core& core, std::shared_ptr<Call> call) {
  Params params(call->params());
  service::Challenge challenge = challenge_param(params);
  signature::WebEidToken token = token_param(params);
  const Bytes certificate = token.certificate;
  const service::TokenReport report =
      co_await core.service().verify_token(call->caller(), std::move(token), std::move(challenge));
  Json out = {{"valid", report.valid()}};
  if (X509Ptr x509 = parse_certificate(certificate))
    out["subject"] = wstr(name_rfc2253(X509_get_subject_name(x509.get())));
  if (!report.token.valid()) {
    out["reason"] = wstr(report.token.reason);
    out["message"] = wstr(report.token.message);
    co_return out;
  }
  const policy::Decision& d = *report.decision;
  out["decision"] = to_json(d);
  if (!d.allowed) {
    out["reason"] = wstr(d.reasons.empty() ? std::string("policy_denied") : d.reasons.front().code);
    out["message"] =
        wstr(d.reasons.empty() ? std::string("the policy refuses this certificate") : d.reasons.front().message);
  }
  co_return out;
}

}  // namespace kortti::ipc
