#include "common/encoding.hpp"
#include "ipc/convert.hpp"
#include "ipc/core.hpp"
#include "ipc/params.hpp"
#include "ipc/shared.hpp"

namespace kortti::ipc {

namespace {

// sign.digest and sign.data: the same request but for where the digest comes from.
void sign_raw(Core& core, const std::shared_ptr<Call>& call, bool hash_data) {
  Params params(call->params());
  pkcs11::SignRequest request;
  request.cert_id = params.string("cert_id");
  if (hash_data) {
    request.digest_algorithm = params.digest_algorithm("digest_algorithm", DigestAlgorithm::sha256);
    request.digest = digest(request.digest_algorithm, params.base64("data"));
  } else {
    request.digest_algorithm = params.digest_algorithm("digest_algorithm", std::nullopt);
    request.digest = params.base64("digest");
    const std::size_t want = digest_size(request.digest_algorithm);
    if (request.digest.size() != want)
      invalid_param("digest", "must be " + std::to_string(want) + " bytes for " +
                                  std::string(name_of(request.digest_algorithm)) + ", not " +
                                  std::to_string(request.digest.size()));
  }
  request.scheme = params.scheme("scheme");
  request.uid = call->peer().uid;
  pkcs11::Credentials credentials = params.credentials();

  AuditRecord record;
  record.action = call->method();
  record.peer = call->peer();
  record.cert_id = request.cert_id;
  record.digest_algorithm = name_of(request.digest_algorithm);
  record.digest_hex = hex_encode(request.digest);
  core.services.tokens->sign(std::move(request), std::move(credentials), call->stop_token(),
                             [&core, call, record](Result<pkcs11::SignResult> r) mutable {
                               audit_signature(core, *call, record, r);
                               if (r.ok()) {
                                 call->respond(to_json(r.value()));
                               } else {
                                 call->fail(r.error());
                               }
                             });
}

}  // namespace

void audit_signature(Core& core, const Call& call, AuditRecord record, const Result<pkcs11::SignResult>& r) {
  record.delivered = call.deliverable();
  if (r.ok()) {
    record.outcome = "ok";
    record.subject = r.value().certificate.subject;
  } else {
    record.outcome = reason_of(r.error().code());
    record.detail = r.error().what();
    if (!r.error().detail.empty()) record.detail += " (" + r.error().detail + ")";
  }
  if (core.services.audit != nullptr) core.services.audit->record(record);
}

void register_sign_methods(Core& core) {
  core.add("sign.digest", MethodGroup::sign,
           [&core](const std::shared_ptr<Call>& call) { sign_raw(core, call, false); });
  core.add("sign.data", MethodGroup::sign, [&core](const std::shared_ptr<Call>& call) { sign_raw(core, call, true); });
}

}  // namespace kortti::ipc
