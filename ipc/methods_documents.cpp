// sign.xml and sign.prescription: the document is parsed and digested on the
// documents thread, the token signs one digest, the value goes back in.

#include "common/encoding.hpp"
#include "ipc/convert.hpp"
#include "ipc/core.hpp"
#include "ipc/params.hpp"
#include "ipc/shared.hpp"
#include "policy/policy.hpp"
#include "signature/signature.hpp"

namespace kortti::ipc {

namespace {

using CredentialsPtr = std::shared_ptr<pkcs11::Credentials>;

struct DocumentRequest {
  std::string cert_id;
  std::string document;
  CredentialsPtr credentials;
};

void check_size(Core& core, std::size_t size, const char* what) {
  const std::size_t limit = core.services.documents->options().limits.max_bytes;
  if (size > limit)
    throw Error(Errc::document_invalid, std::string("the ") + what + " is " + std::to_string(size) +
                                            " bytes, more than the limit of " + std::to_string(limit))
        .with_detail("too_large");
}

// `document` is read unless `with_document` is false (sign.cms has content instead).
DocumentRequest document_request(Core& core, Params& params, bool with_document = true) {
  DocumentRequest r;
  r.cert_id = params.string("cert_id");
  if (with_document) {
    r.document = params.string("document");
    check_size(core, r.document.size(), "document");
  }
  r.credentials = std::make_shared<pkcs11::Credentials>(params.credentials());
  return r;
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

// The token's one signature over a prepared document's digest, audited
// before anything is answered; `next` gets the raw signature.
void sign_prepared_digest(Core& core, const std::shared_ptr<Call>& call, const DocumentRequest& request,
                          pkcs11::Scheme scheme, DigestAlgorithm algorithm, const Bytes& digest,
                          std::function<void(Bytes)> next) {
  pkcs11::SignRequest sign;
  sign.cert_id = request.cert_id;
  sign.digest_algorithm = algorithm;
  sign.digest = digest;
  sign.scheme = scheme;
  sign.uid = call->peer().uid;
  AuditRecord record;
  record.action = call->method();
  record.peer = call->peer();
  record.cert_id = request.cert_id;
  record.digest_algorithm = name_of(sign.digest_algorithm);
  record.digest_hex = hex_encode(sign.digest);  // of what the card signed: names the document without holding it
  core.services.tokens->sign(std::move(sign), std::move(*request.credentials), call->stop_token(),
                             [&core, call, record, next = std::move(next)](Result<pkcs11::SignResult> r) mutable {
                               audit_signature(core, *call, record, r);
                               if (!r.ok()) return (void)call->fail(r.error());
                               next(std::move(r).value().signature);
                             });
}

// Prepares, signs with the token, finishes; `answer` gets the signed document.
void sign_document(Core& core, const std::shared_ptr<Call>& call, DocumentRequest request, signature::Profile profile,
                   pkcs11::CertificateInfo cert, std::function<void(std::string)> answer) {
  std::string document = std::move(request.document);
  core.services.documents->prepare(
      std::move(document), profile, cert.der,
      [&core, call, request = std::move(request), key = cert.key_type,
       answer = std::move(answer)](Result<std::shared_ptr<signature::PreparedXml>> p) mutable {
        if (!p.ok()) return (void)call->fail(p.error());
        std::shared_ptr<signature::PreparedXml> prepared = std::move(p).value();
        sign_prepared_digest(
            core, call, request, key == pkcs11::KeyType::ec ? pkcs11::Scheme::ecdsa : pkcs11::Scheme::pkcs1,
            prepared->digest_algorithm(), prepared->digest(),
            [&core, call, prepared, answer = std::move(answer)](Bytes signature) {
              core.services.documents->finish(prepared, std::move(signature), [call, answer](Result<std::string> doc) {
                if (!doc.ok()) return (void)call->fail(doc.error());
                answer(std::move(doc).value());
              });
            });
      });
}

void with_certificate(Core& core, const std::shared_ptr<Call>& call, const std::string& cert_id,
                      std::function<void(pkcs11::CertificateInfo)> next) {
  core.services.tokens->certificate(cert_id, [call, next = std::move(next)](Result<pkcs11::CertificateInfo> r) {
    if (!r.ok()) return (void)call->fail(r.error());
    next(std::move(r).value());
  });
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

}  // namespace

void register_document_methods(Core& core) {
  core.add("sign.xml", MethodGroup::sign, [&core](const std::shared_ptr<Call>& call) {
    Params params(call->params());
    const std::string profile_name = params.string("profile");
    auto profile = signature::parse_profile(profile_name);
    if (!profile) invalid_param("profile", "must be kanta-cda or enveloped, not '" + profile_name + "'");
    DocumentRequest request = document_request(core, params);
    const std::string cert_id = request.cert_id;
    with_certificate(core, call, cert_id,
                     [&core, call, request = std::move(request), profile](pkcs11::CertificateInfo cert) mutable {
                       sign_document(core, call, std::move(request), *profile, std::move(cert),
                                     [call](std::string doc) {
                                       call->respond({{"document", wstr(doc)}});
                                     });
                     });
  });

  core.add("sign.cms", MethodGroup::sign, [&core](const std::shared_ptr<Call>& call) {
    Params params(call->params());
    const bool has_content = params.find("content") != nullptr;
    const bool has_digest = params.find("digest") != nullptr;
    if (has_content == has_digest) invalid_param("content", "give either content or digest (with digest_algorithm)");
    signature::CmsInput input;
    input.detached = params.boolean("detached", false);
    const std::optional<pkcs11::Scheme> scheme = params.scheme("scheme");
    std::optional<DigestAlgorithm> algorithm;
    if (params.find("digest_algorithm") != nullptr)
      algorithm = params.digest_algorithm("digest_algorithm", std::nullopt);
    if (has_content) {
      input.content = params.base64("content");
      check_size(core, input.content->size(), "content");
    } else {
      if (!algorithm) invalid_param("digest_algorithm", "is required with digest");
      if (!input.detached) invalid_param("detached", "must be true with digest: the content is not there to attach");
      input.content_digest = params.base64("digest");
      if (input.content_digest.size() != digest_size(*algorithm))
        invalid_param("digest", "must be " + std::to_string(digest_size(*algorithm)) + " bytes for " +
                                    std::string(name_of(*algorithm)));
    }
    DocumentRequest request = document_request(core, params, false);
    const std::string cert_id = request.cert_id;
    with_certificate(
        core, call, cert_id,
        [&core, call, request = std::move(request), input = std::move(input), scheme,
         algorithm](pkcs11::CertificateInfo cert) mutable {
          const bool ec = cert.key_type == pkcs11::KeyType::ec;
          const pkcs11::Scheme chosen = scheme.value_or(ec ? pkcs11::Scheme::ecdsa : pkcs11::Scheme::pkcs1);
          const auto& options = core.services.documents->options();
          input.scheme = cms_scheme(chosen);
          input.digest_algorithm = algorithm.value_or(ec ? options.ec_digest : options.rsa_digest);
          core.services.documents->prepare_cms(
              std::move(input), cert.der, cert.chain,
              [&core, call, request = std::move(request), chosen](Result<signature::PreparedCms> p) mutable {
                if (!p.ok()) return (void)call->fail(p.error());
                auto prepared = std::make_shared<signature::PreparedCms>(std::move(p).value());
                sign_prepared_digest(core, call, request, chosen, prepared->digest_algorithm, prepared->digest,
                                     [&core, call, prepared](Bytes signature) {
                                       core.services.documents->finish_cms(
                                           std::move(*prepared), std::move(signature), [call](Result<Bytes> cms) {
                                             if (!cms.ok()) return (void)call->fail(cms.error());
                                             call->respond({{"cms", wstr(base64_encode(cms.value()))}});
                                           });
                                     });
              });
        });
  });

  core.add("sign.prescription", MethodGroup::sign, [&core](const std::shared_ptr<Call>& call) {
    Params params(call->params());
    policy::Context context = context_param(call->params());
    DocumentRequest request = document_request(core, params);
    const std::string cert_id = request.cert_id;
    std::string document = request.document;
    // 1. The certificate, 2. what the document says, 3. the policy, and only
    // then 4. the card: a denial never reaches the PIN.
    with_certificate(
        core, call, cert_id,
        [&core, call, request = std::move(request), document = std::move(document),
         context = std::move(context)](pkcs11::CertificateInfo cert) mutable {
          core.services.documents->prescription(
              std::move(document), [&core, call, request = std::move(request), context = std::move(context),
                                    cert = std::move(cert)](Result<signature::PrescriptionFacts> f) mutable {
                if (!f.ok()) return (void)call->fail(f.error());
                const signature::PrescriptionFacts facts = std::move(f).value();
                // The document's facts replace the client's: it is what is signed.
                context.atc_codes = facts.atc_codes;
                context.patient_id = facts.patient_id;
                core.services.policy->check(
                    cert.der, cert.chain, std::nullopt, policy::Action::sign_prescription, std::move(context),
                    [&core, call, request = std::move(request), cert, facts](Result<policy::Decision> d) mutable {
                      if (!d.ok()) return (void)call->fail(d.error());
                      policy::Decision decision = std::move(d).value();
                      require_author_is_signer(facts, decision);
                      if (!decision.allowed) {
                        AuditRecord record;
                        record.action = call->method();
                        record.peer = call->peer();
                        record.cert_id = request.cert_id;
                        record.subject = cert.subject;
                        record.outcome = "policy_denied";
                        for (const auto& r : decision.reasons)
                          record.detail += (record.detail.empty() ? "" : " ") + r.code;
                        record.delivered = call->deliverable();
                        if (core.services.audit != nullptr) core.services.audit->record(record);
                        return (void)call->fail(denial(decision));
                      }
                      Json decision_json = to_json(decision);
                      sign_document(core, call, std::move(request), signature::Profile::kanta_cda, std::move(cert),
                                    [call, decision_json = std::move(decision_json)](std::string doc) mutable {
                                      call->respond({{"document", wstr(doc)}, {"decision", std::move(decision_json)}});
                                    });
                    });
              });
        });
  });
}

}  // namespace kortti::ipc
