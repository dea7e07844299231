// The signing methods one at a time: the certificate, the method's plan
// (a digest, or a document prepared on the documents thread), one signature
// by the token, the result. sign.batch runs the same plans (methods_batch.cpp).

#include "common/encoding.hpp"
#include "ipc/convert.hpp"
#include "ipc/core.hpp"
#include "ipc/params.hpp"
#include "ipc/shared.hpp"

namespace kortti::ipc {

void run_signing(Core& core, const std::shared_ptr<Call>& call) {
  Params params(call->params());
  const std::string cert_id = params.string("cert_id");
  ItemPlan plan = plan_signature(core, call, call->method(), call->params());
  auto credentials = std::make_shared<pkcs11::Credentials>(params.credentials());
  auto run = [&core, call, cert_id, credentials, plan](pkcs11::CertificateInfo cert) {
    plan(std::move(cert), [&core, call, cert_id, credentials](Result<PreparedItem> p) {
      if (!p.ok()) return (void)call->fail(p.error());
      auto item = std::make_shared<PreparedItem>(std::move(p).value());
      pkcs11::SignRequest request = sign_request(*item, cert_id, call->peer().uid);
      AuditRecord record = audit_record(*call, call->method(), request);
      core.services.tokens->sign(std::move(request), std::move(*credentials), call->stop_token(),
                                 [&core, call, record, item](Result<pkcs11::SignResult> r) mutable {
                                   audit_signature(core, *call, record, r);
                                   if (!r.ok()) return (void)call->fail(r.error());
                                   item->finish(std::move(r).value(), [call](Result<Json> answer) {
                                     if (!answer.ok()) return (void)call->fail(answer.error());
                                     call->respond(std::move(answer).value());
                                   });
                                 });
    });
  };
  if (plan_needs_certificate(call->method()))
    with_certificate(core, call, cert_id, std::move(run));
  else
    run({});
}

// sign.digest and sign.data: the same request but for where the digest comes from.
ItemPlan plan_raw_signature(std::string_view method, Json& json) {
  Params params(json);
  PreparedItem item;
  if (method == "sign.data") {
    item.digest_algorithm = params.digest_algorithm("digest_algorithm", DigestAlgorithm::sha256);
    item.digest = digest(item.digest_algorithm, params.base64("data"));
  } else {
    item.digest_algorithm = params.digest_algorithm("digest_algorithm", std::nullopt);
    item.digest = params.base64("digest");
    const std::size_t want = digest_size(item.digest_algorithm);
    if (item.digest.size() != want)
      invalid_param("digest", "must be " + std::to_string(want) + " bytes for " +
                                  std::string(name_of(item.digest_algorithm)) + ", not " +
                                  std::to_string(item.digest.size()));
  }
  item.scheme = params.scheme("scheme");
  item.finish = [](pkcs11::SignResult r, Completion<Json> done) { done(to_json(r)); };
  return [item = std::move(item)](const pkcs11::CertificateInfo&, Completion<PreparedItem> done) mutable {
    done(std::move(item));
  };
}

bool plan_needs_certificate(std::string_view method) { return method != "sign.digest" && method != "sign.data"; }

ItemPlan plan_signature(Core& core, const std::shared_ptr<Call>& call, std::string_view method, Json& params) {
  if (!plan_needs_certificate(method)) return plan_raw_signature(method, params);
  return plan_document_signature(core, call, method, params);
}

pkcs11::SignRequest sign_request(const PreparedItem& item, const std::string& cert_id, uid_t uid) {
  pkcs11::SignRequest request;
  request.cert_id = cert_id;
  request.digest_algorithm = item.digest_algorithm;
  request.digest = item.digest;
  request.scheme = item.scheme;
  request.uid = uid;
  return request;
}

AuditRecord audit_record(const Call& call, std::string_view method, const pkcs11::SignRequest& request) {
  AuditRecord record;
  record.action = call.method() == method ? std::string(method) : call.method() + " " + std::string(method);
  record.peer = call.peer();
  record.cert_id = request.cert_id;
  record.digest_algorithm = name_of(request.digest_algorithm);
  record.digest_hex = hex_encode(request.digest);  // what the card signed: names the document without holding it
  return record;
}

void with_certificate(Core& core, const std::shared_ptr<Call>& call, const std::string& cert_id,
                      std::function<void(pkcs11::CertificateInfo)> next) {
  core.services.tokens->certificate(cert_id, [call, next = std::move(next)](Result<pkcs11::CertificateInfo> r) {
    if (!r.ok()) return (void)call->fail(r.error());
    next(std::move(r).value());
  });
}

Error audit_unavailable() {
  return Error(Errc::service_unavailable,
               "the audit trail cannot be written (see the korttid log); korttid signs nothing it cannot audit");
}

void audit_signature(Core& core, const Call& call, AuditRecord record, Result<pkcs11::SignResult>& r) {
  record.delivered = call.deliverable();
  if (r.ok()) {
    record.outcome = "ok";
    record.subject = r.value().certificate.subject;
  } else {
    record.outcome = reason_of(r.error().code());
    record.detail = r.error().what();
    if (!r.error().detail.empty()) record.detail += " (" + r.error().detail + ")";
  }
  if (core.services.audit != nullptr && !core.services.audit->record(record) && r.ok()) r = audit_unavailable();
}

void register_sign_methods(Core& core) {
  for (const char* method : {"sign.digest", "sign.data"})
    core.add(method, MethodGroup::sign, [&core](const std::shared_ptr<Call>& call) { run_signing(core, call); });
}

}  // namespace kortti::ipc
