// sign.xml, sign.cms and sign.prescription as plans: the document is parsed
// and digested on the documents thread, the token signs one digest, the
// value goes back in. A prescription passes the policy before any of that.

#include "common/encoding.hpp"
#include "ipc/convert.hpp"
#include "ipc/core.hpp"
#include "ipc/params.hpp"
#include "ipc/shared.hpp"
#include "policy/policy.hpp"
#include "signature/signature.hpp"

namespace kortti::ipc {

namespace {

std::string document_param(Core& core, Params& params) {
  std::string document = params.string("document");
  check_document_size(core, document.size(), "document");
  return document;
}

pkcs11::Scheme default_scheme(const pkcs11::CertificateInfo& cert) {
  return cert.key_type == pkcs11::KeyType::ec ? pkcs11::Scheme::ecdsa : pkcs11::Scheme::pkcs1;
}

// The XML prepared for `cert`; `result` makes the answer from the signed document.
void prepare_xml_item(Core& core, std::string document, signature::Profile profile, const pkcs11::CertificateInfo& cert,
                      std::function<Json(std::string)> result, Completion<PreparedItem> done, std::stop_token stop) {
  const Ticket ticket{std::move(stop), document.size()};
  core.services.documents->prepare(
      std::move(document), profile, cert.der,
      [&core, scheme = default_scheme(cert), result = std::move(result),
       done = std::move(done)](Result<std::shared_ptr<signature::PreparedXml>> p) {
        if (!p.ok()) return done(p.error());
        std::shared_ptr<signature::PreparedXml> prepared = std::move(p).value();
        PreparedItem item;
        item.digest_algorithm = prepared->digest_algorithm();
        item.digest = prepared->digest();
        item.scheme = scheme;
        item.finish = [&core, prepared, result](pkcs11::SignResult r, Completion<Json> answer) {
          core.services.documents->finish(prepared, std::move(r.signature),
                                          [result, answer = std::move(answer)](Result<std::string> doc) {
                                            if (!doc.ok()) return answer(doc.error());
                                            answer(result(std::move(doc).value()));
                                          });
        };
        done(std::move(item));
      },
      ticket);
}

signature::SignatureScheme cms_scheme(pkcs11::Scheme scheme) {
  switch (scheme) {
    case pkcs11::Scheme::pkcs1:
      return signature::SignatureScheme::rsa_pkcs1;
    case pkcs11::Scheme::pss:
      return signature::SignatureScheme::rsa_pss;
    case pkcs11::Scheme::ecdsa:
      return signature::SignatureScheme::ecdsa;
  }
  return signature::SignatureScheme::rsa_pkcs1;
}

ItemPlan plan_xml(Core& core, const std::shared_ptr<Call>& call, Params& params) {
  const std::string profile_name = params.string("profile");
  auto profile = signature::parse_profile(profile_name);
  if (!profile) invalid_param("profile", "must be kanta-cda or enveloped, not '" + profile_name + "'");
  return [&core, stop = call->stop_token(), document = document_param(core, params), profile = *profile](
             pkcs11::CertificateInfo cert, Completion<PreparedItem> done) mutable {
    prepare_xml_item(
        core, std::move(document), profile, cert,
        [](std::string doc) {
          return Json{{"document", wstr(doc)}};
        },
        std::move(done), stop);
  };
}

ItemPlan plan_cms(Core& core, const std::shared_ptr<Call>& call, Params& params) {
  const bool has_content = params.find("content") != nullptr;
  if (has_content == (params.find("digest") != nullptr))
    invalid_param("content", "give either content or digest (with digest_algorithm)");
  signature::CmsInput input;
  input.detached = params.boolean("detached", false);
  const std::optional<pkcs11::Scheme> scheme = params.scheme("scheme");
  std::optional<DigestAlgorithm> algorithm;
  if (params.find("digest_algorithm") != nullptr) algorithm = params.digest_algorithm("digest_algorithm", std::nullopt);
  if (has_content) {
    input.content = params.base64("content");
    check_document_size(core, input.content->size(), "content");
  } else {
    if (!algorithm) invalid_param("digest_algorithm", "is required with digest");
    if (!input.detached) invalid_param("detached", "must be true with digest: the content is not there to attach");
    input.content_digest = params.base64("digest");
    if (input.content_digest.size() != digest_size(*algorithm))
      invalid_param("digest", "must be " + std::to_string(digest_size(*algorithm)) + " bytes for " +
                                  std::string(name_of(*algorithm)));
  }
  return [&core, stop = call->stop_token(), input = std::move(input), scheme, algorithm](
             pkcs11::CertificateInfo cert, Completion<PreparedItem> done) mutable {
    const pkcs11::Scheme chosen = scheme.value_or(default_scheme(cert));
    const auto& options = core.services.documents->options();
    input.scheme = cms_scheme(chosen);
    input.digest_algorithm =
        algorithm.value_or(cert.key_type == pkcs11::KeyType::ec ? options.ec_digest : options.rsa_digest);
    const Ticket ticket{stop, input.content ? input.content->size() : 0};
    core.services.documents->prepare_cms(
        std::move(input), cert.der, cert.chain,
        [&core, chosen, done = std::move(done)](Result<signature::PreparedCms> p) {
          if (!p.ok()) return done(p.error());
          auto prepared = std::make_shared<signature::PreparedCms>(std::move(p).value());
          PreparedItem item;
          item.digest_algorithm = prepared->digest_algorithm;
          item.digest = prepared->digest;
          item.scheme = chosen;
          item.finish = [&core, prepared](pkcs11::SignResult r, Completion<Json> answer) {
            core.services.documents->finish_cms(std::move(*prepared), std::move(r.signature),
                                                [answer = std::move(answer)](Result<Bytes> cms) {
                                                  if (!cms.ok()) return answer(cms.error());
                                                  answer(Json{{"cms", wstr(base64_encode(cms.value()))}});
                                                });
          };
          done(std::move(item));
        },
        ticket);
  };
}

// The denial as protocol.md has it: an unusable certificate is 1031 with its
// detail, anything else 1030; both carry every reason.
Error denial(const policy::Decision& d) {
  std::string message = "policy denies this prescription:";
  for (const auto& r : d.reasons) message += " " + r.code;
  if (d.certificate && !d.certificate->valid())
    return Error(Errc::certificate_invalid, "the signing certificate is not valid: " + d.certificate->message)
        .with_detail(d.certificate->status)
        .with_reasons(d.reasons);
  return Error(Errc::policy_denied, message).with_reasons(d.reasons);
}

// The author named in the document must be the card's holder.
void require_author_is_signer(const signature::PrescriptionFacts& facts, policy::Decision& d) {
  const std::string signer_number = d.identity ? d.identity->registration_number : "";
  const std::string record_number = d.professional ? d.professional->registration_number : "";
  const std::string record_prescriber = d.professional ? d.professional->prescriber_id : "";
  bool same = false;
  if (facts.author_registration_number)
    same = *facts.author_registration_number == signer_number || *facts.author_registration_number == record_number;
  else if (facts.author_prescriber_id)
    same = !record_prescriber.empty() && *facts.author_prescriber_id == record_prescriber;
  if (same) return;
  const std::string author = facts.author_registration_number.value_or(facts.author_prescriber_id.value_or("?"));
  d.reasons.push_back({"author_not_signer", "the prescription's author (" + author +
                                                ") is not the holder of the signing certificate (" +
                                                (signer_number.empty() ? record_number : signer_number) + ")"});
  d.allowed = false;
}

void audit_denial(Core& core, const Call& call, const pkcs11::CertificateInfo& cert, const policy::Decision& d) {
  AuditRecord record;
  record.action = call.method() == "sign.prescription" ? "sign.prescription" : call.method() + " sign.prescription";
  record.peer = call.peer();
  record.cert_id = cert.cert_id;
  record.subject = cert.subject;
  record.outcome = "policy_denied";
  for (const auto& r : d.reasons) record.detail += (record.detail.empty() ? "" : " ") + r.code;
  record.delivered = call.deliverable();
  // The denial stands whether or not its line could be written.
  if (core.services.audit != nullptr) (void)core.services.audit->record(record);
}

// 1. what the document says, 2. the policy, and only then 3. the card: a
// denial never reaches the PIN.
ItemPlan plan_prescription(Core& core, const std::shared_ptr<Call>& call, Json& json) {
  Params params(json);
  policy::Context context = context_param(json);
  return [&core, call, document = document_param(core, params), context = std::move(context)](
             pkcs11::CertificateInfo cert, Completion<PreparedItem> done) mutable {
    std::string copy = document;
    const Ticket ticket{call->stop_token(), copy.size()};
    core.services.documents->prescription(
        std::move(copy),
        [&core, call, document = std::move(document), context = std::move(context), cert = std::move(cert),
         done = std::move(done)](Result<signature::PrescriptionFacts> f) mutable {
          if (!f.ok()) return done(f.error());
          const signature::PrescriptionFacts facts = std::move(f).value();
          // The document's facts replace the client's: it is what is signed.
          context.atc_codes = facts.atc_codes;
          context.patient_id = facts.patient_id;
          const Bytes der = cert.der;
          const std::vector<Bytes> chain = cert.chain;
          core.services.policy->check(
              der, chain, std::nullopt, policy::Action::sign_prescription, std::move(context),
              [&core, call, document = std::move(document), cert = std::move(cert), facts,
               done = std::move(done)](Result<policy::Decision> d) mutable {
                if (!d.ok()) return done(d.error());
                policy::Decision decision = std::move(d).value();
                require_author_is_signer(facts, decision);
                if (!decision.allowed) {
                  audit_denial(core, *call, cert, decision);
                  return done(denial(decision));
                }
                prepare_xml_item(
                    core, std::move(document), signature::Profile::kanta_cda, cert,
                    [decision_json = to_json(decision)](std::string doc) {
                      return Json{{"document", wstr(doc)}, {"decision", decision_json}};
                    },
                    std::move(done), call->stop_token());
              },
              Ticket{call->stop_token()});
        },
        ticket);
  };
}

}  // namespace

void check_document_size(Core& core, std::size_t size, const char* what) {
  const std::size_t limit = core.services.documents->options().limits.max_bytes;
  if (size > limit)
    throw Error(Errc::document_invalid, std::string("the ") + what + " is " + std::to_string(size) +
                                            " bytes, more than the limit of " + std::to_string(limit))
        .with_detail("too_large");
}

ItemPlan plan_document_signature(Core& core, const std::shared_ptr<Call>& call, std::string_view method, Json& json) {
  Params params(json);
  if (core.services.documents == nullptr || core.services.policy == nullptr)
    throw Error(Errc::unsupported, "korttid runs without document signing");
  if (method == "sign.xml") return plan_xml(core, call, params);
  if (method == "sign.cms") return plan_cms(core, call, params);
  if (method == "sign.prescription") return plan_prescription(core, call, json);
  invalid_param("method", "cannot sign with '" + std::string(method) + "'");
}

void register_document_methods(Core& core) {
  for (const char* method : {"sign.xml", "sign.cms", "sign.prescription"})
    core.add(method, MethodGroup::sign, [&core](const std::shared_ptr<Call>& call) { run_signing(core, call); });
}

}  // namespace kortti::ipc
