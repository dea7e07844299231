// verify.xml and verify.cms: the mathematics on the documents thread, then
// every signer's certificate through the policy's chain and revocation checks
// (for sign_document, at the time of the call). A signature that does not hold
// is an answer with valid=false and the part that failed, not an error.

#include "common/encoding.hpp"
#include "common/openssl.hpp"
#include "common/time.hpp"
#include "ipc/convert.hpp"
#include "ipc/core.hpp"
#include "ipc/params.hpp"
#include "ipc/shared.hpp"
#include "signature/signature.hpp"

namespace kortti::ipc {

namespace {

struct Signer {
  Bytes certificate;  // empty: none found
  std::vector<Bytes> chain;
};

using Decisions = std::vector<std::optional<policy::Decision>>;

// One certificate after another; the policy service runs them on its worker.
void validate_each(Core& core, std::stop_token stop, std::shared_ptr<std::vector<Signer>> signers,
                   std::shared_ptr<Decisions> out, std::function<void(Result<Decisions>)> done) {
  const std::size_t i = out->size();
  if (i == signers->size()) return done(std::move(*out));
  const Signer& s = (*signers)[i];
  if (s.certificate.empty()) {
    out->push_back(std::nullopt);
    return validate_each(core, std::move(stop), std::move(signers), std::move(out), std::move(done));
  }
  core.services.policy->identity(
      s.certificate, s.chain, policy::Action::sign_document,
      [&core, stop, signers, out, done = std::move(done)](Result<policy::Decision> d) mutable {
        if (!d.ok()) return done(d.error());
        out->push_back(std::move(d).value());
        validate_each(core, std::move(stop), std::move(signers), std::move(out), std::move(done));
      },
      Ticket{stop});
}

void validate_signers(Core& core, const std::shared_ptr<Call>& call, std::vector<Signer> signers,
                      std::function<void(Decisions)> next) {
  validate_each(core, call->stop_token(), std::make_shared<std::vector<Signer>>(std::move(signers)),
                std::make_shared<Decisions>(), [call, next = std::move(next)](Result<Decisions> r) {
                  if (!r.ok()) return (void)call->fail(r.error());
                  next(std::move(r).value());
                });
}

// The signer's certificate and what the policy made of it; `valid` becomes
// false when the certificate does not hold.
void add_signer(Json& item, const Bytes& certificate, const std::optional<policy::Decision>& decision, bool& valid) {
  if (certificate.empty()) {
    item["certificate"] = nullptr;
    item["validation"] = nullptr;
    if (valid) item["message"] = "no certificate in the signature carries the signer's key";
    valid = false;
    return;
  }
  item["certificate"] = wstr(base64_encode(certificate));
  X509Ptr x509 = parse_certificate(certificate);
  item["subject"] = x509 ? Json(wstr(name_rfc2253(X509_get_subject_name(x509.get())))) : Json(nullptr);
  item["identity"] = decision && decision->identity ? to_json(*decision->identity) : Json(nullptr);
  item["validation"] = decision && decision->certificate ? to_json(*decision->certificate) : Json(nullptr);
  if (decision && decision->certificate && decision->certificate->valid()) return;
  if (valid)
    item["message"] = wstr("the signature holds, but the signer's certificate does not: " +
                           (decision && decision->certificate ? decision->certificate->message : std::string("?")));
  valid = false;
}

}  // namespace

void register_verify_methods(Core& core) {
  core.add("verify.xml", MethodGroup::read, [&core](const std::shared_ptr<Call>& call) {
    Params params(call->params());
    std::string document = params.string("document");
    const Ticket ticket{call->stop_token(), document.size()};
    core.services.documents->verify_xml(
        std::move(document),
        [&core, call](Result<std::vector<signature::XmlVerification>> r) {
          if (!r.ok()) return (void)call->fail(r.error());
          auto found = std::make_shared<std::vector<signature::XmlVerification>>(std::move(r).value());
          std::vector<Signer> signers;
          for (const auto& v : *found) signers.push_back({v.certificate, v.chain});
          validate_signers(core, call, std::move(signers), [call, found](Decisions decisions) {
            bool all = true;
            Json out = Json::array();
            for (std::size_t i = 0; i < found->size(); ++i) {
              const auto& v = (*found)[i];
              bool valid = v.valid;
              Json refs = Json::array();
              for (const auto& ref : v.references)
                refs.push_back({{"uri", wstr(ref.uri)}, {"status", wstr(ref.status)}});
              Json parts = Json::array();
              for (const auto& part : v.covers.parts) parts.push_back(wstr(part));
              Json item = {
                  {"id", wstr(v.signature_id)},
                  {"signature_value", wstr(v.signature_value)},
                  {"references", std::move(refs)},
                  {"covers",
                   {{"profile", wstr(v.covers.profile)},
                    {"references", std::move(parts)},
                    {"not_covered", v.covers.not_covered.empty() ? Json(nullptr) : Json(wstr(v.covers.not_covered))}}}};
              add_signer(item, v.certificate, decisions[i], valid);
              if (!v.message.empty()) item["message"] = wstr(v.message);
              item["valid"] = valid;
              all = all && valid;
              out.push_back(std::move(item));
            }
            call->respond({{"valid", all}, {"signatures", std::move(out)}});
          });
        },
        ticket);
  });

  core.add("verify.cms", MethodGroup::read, [&core](const std::shared_ptr<Call>& call) {
    Params params(call->params());
    Bytes cms = params.base64("cms");
    std::optional<Bytes> content = params.optional_base64("content");
    std::optional<Bytes> digest = params.optional_base64("digest");
    if (content && digest) invalid_param("digest", "give content or digest, not both");
    check_document_size(core, cms.size() + (content ? content->size() : 0), "signature with its content");
    const Ticket ticket{call->stop_token(), cms.size() + (content ? content->size() : 0)};
    core.services.documents->verify_cms(
        std::move(cms), std::move(content), std::move(digest),
        [&core, call](Result<signature::CmsVerification> r) {
          if (!r.ok()) return (void)call->fail(r.error());
          auto found = std::make_shared<signature::CmsVerification>(std::move(r).value());
          std::vector<Signer> signers;
          for (const auto& s : found->signers) signers.push_back({s.certificate, s.chain});
          validate_signers(core, call, std::move(signers), [call, found](Decisions decisions) {
            auto status = [](bool ok) { return Json(ok ? "valid" : "invalid"); };
            bool all = !found->signers.empty();
            Json out = Json::array();
            for (std::size_t i = 0; i < found->signers.size(); ++i) {
              const auto& s = found->signers[i];
              bool valid = s.valid;
              Json item = {{"signature_value", status(s.signature_value_valid)},
                           {"content_digest", status(s.content_digest_valid)},
                           {"signing_certificate", status(s.signing_certificate_valid)},
                           {"digest_algorithm", wstr(s.digest_algorithm)},
                           {"signing_time", s.signing_time ? Json(wstr(to_rfc3339(*s.signing_time))) : Json(nullptr)}};
              add_signer(item, s.certificate, decisions[i], valid);
              if (!s.message.empty()) item["message"] = wstr(s.message);
              item["valid"] = valid;
              all = all && valid;
              out.push_back(std::move(item));
            }
            call->respond({{"valid", all}, {"detached", found->detached}, {"signers", std::move(out)}});
          });
        },
        ticket);
  });
}

}  // namespace kortti::ipc
