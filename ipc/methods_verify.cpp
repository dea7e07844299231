// verify.xml and verify.cms as protocol.md has them. A signature that does
// not hold is an answer with valid=false and the part that failed.

#include "common/encoding.hpp"
#include "common/openssl.hpp"
#include "common/time.hpp"
#include "ipc/convert.hpp"
#include "ipc/methods.hpp"
#include "ipc/params.hpp"

namespace kortti::ipc {

namespace {

// The signer's certificate and what the policy made of it; `valid` becomes
// false when the certificate does not hold.
void add_signer(Json& item, const service::SignerCheck& signer, bool& valid) {
  if (signer.certificate.empty()) {
    item["certificate"] = nullptr;
    item["validation"] = nullptr;
    if (valid) item["message"] = "no certificate in the signature carries the signer's key";
    valid = false;
    return;
  }
  const auto& decision = signer.decision;
  item["certificate"] = wstr(base64_encode(signer.certificate));
  X509Ptr x509 = parse_certificate(signer.certificate);
  item["subject"] = x509 ? Json(wstr(name_rfc2253(X509_get_subject_name(x509.get())))) : Json(nullptr);
  item["identity"] = decision && decision->identity ? to_json(*decision->identity) : Json(nullptr);
  item["validation"] = decision && decision->certificate ? to_json(*decision->certificate) : Json(nullptr);
  if (decision && decision->certificate && decision->certificate->valid()) return;
  if (valid)
    item["message"] = wstr("the signature holds, but the signer's certificate does not: " +
                           (decision && decision->certificate ? decision->certificate->message : std::string("?")));
  valid = false;
}

Json signature_json(const signature::XmlVerification& v) {
  Json refs = Json::array();
  for (const auto& ref : v.references) refs.push_back({{"uri", wstr(ref.uri)}, {"status", wstr(ref.status)}});
  Json parts = Json::array();
  for (const auto& part : v.covers.parts) parts.push_back(wstr(part));
  return {{"id", wstr(v.signature_id)},
          {"signature_value", wstr(v.signature_value)},
          {"references", std::move(refs)},
          {"covers",
           {{"profile", wstr(v.covers.profile)},
            {"references", std::move(parts)},
            {"not_covered", v.covers.not_covered.empty() ? Json(nullptr) : Json(wstr(v.covers.not_covered))}}}};
}

Json signature_json(const signature::CmsSignerVerification& s) {
  auto status = [](bool ok) { return Json(ok ? "valid" : "invalid"); };
  return {{"signature_value", status(s.signature_value_valid)},
          {"content_digest", status(s.content_digest_valid)},
          {"signing_certificate", status(s.signing_certificate_valid)},
          {"digest_algorithm", wstr(s.digest_algorithm)},
          {"signing_time", s.signing_time ? Json(wstr(to_rfc3339(*s.signing_time))) : Json(nullptr)}};
}

// Each signature's own fields, its signer, and whether the whole holds.
template <class Found>
Json signatures_json(const std::vector<Found>& found, const std::vector<service::SignerCheck>& signers, bool& all) {
  Json out = Json::array();
  for (std::size_t i = 0; i < found.size(); ++i) {
    bool valid = found[i].valid;
    Json item = signature_json(found[i]);
    add_signer(item, signers[i], valid);
    if (!found[i].message.empty()) item["message"] = wstr(found[i].message);
    item["valid"] = valid;
    all = all && valid;
    out.push_back(std::move(item));
  }
  return out;
}

}  // namespace

Task<Json> verify_xml(Core& core, std::shared_ptr<Call> call) {
  Params params(call->params());
  const service::XmlReport r = co_await core.service().verify_xml(call->caller(), params.string("document"));
  bool all = true;
  Json signatures = signatures_json(r.signatures, r.signers, all);
  co_return Json{{"valid", all}, {"signatures", std::move(signatures)}};
}

Task<Json> verify_cms(Core& core, std::shared_ptr<Call> call) {
  Params params(call->params());
  Bytes cms = params.base64("cms");
  std::optional<Bytes> content = params.optional_base64("content");
  std::optional<Bytes> digest = params.optional_base64("digest");
  if (content && digest) invalid_param("digest", "give content or digest, not both");
  const service::CmsReport r =
      co_await core.service().verify_cms(call->caller(), std::move(cms), std::move(content), std::move(digest));
  bool all = !r.cms.signers.empty();
  Json signers = signatures_json(r.cms.signers, r.signers, all);
  co_return Json{{"valid", all}, {"detached", r.cms.detached}, {"signers", std::move(signers)}};
}

}  // namespace kortti::ipc
