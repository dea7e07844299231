#pragma once

// What more than one methods_*.cpp uses.

#include <functional>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "ipc/core.hpp"
#include "pkcs11/pkcs11.hpp"
#include "policy/policy.hpp"

namespace kortti::ipc {

// Writes the audit line of a signature (or its failure) before the answer
// leaves, so no client ever holds a signature the audit trail lacks: when the
// line cannot be written, a signature becomes service_unavailable.
void audit_signature(Core& core, const Call& call, AuditRecord record, Result<pkcs11::SignResult>& result);

// The error that replaces an answer whose audit line could not be written.
Error audit_unavailable();

// The `context` parameter of policy.check and sign.prescription.
policy::Context context_param(Json& params);

// A signing request made ready for the card: the one digest the card signs,
// and what turns the card's signature into the method's result.
struct PreparedItem {
  DigestAlgorithm digest_algorithm = DigestAlgorithm::sha256;
  Bytes digest;
  std::optional<pkcs11::Scheme> scheme;  // none: the token's default for the key
  std::function<void(pkcs11::SignResult, Completion<Json>)> finish;
};

// What one signing method's params ask for, already checked (bad params
// throw when it is made); run it with the signing certificate. `method` is
// sign.digest, sign.data, sign.xml, sign.cms or sign.prescription; `cert_id`
// and the PIN are not its business.
using ItemPlan = std::function<void(pkcs11::CertificateInfo, Completion<PreparedItem>)>;
ItemPlan plan_raw_signature(std::string_view method, Json& params);
ItemPlan plan_document_signature(Core& core, const std::shared_ptr<Call>& call, std::string_view method, Json& params);
ItemPlan plan_signature(Core& core, const std::shared_ptr<Call>& call, std::string_view method, Json& params);
// sign.digest and sign.data need nothing of the certificate: they skip
// fetching it, a hop through the token's worker.
bool plan_needs_certificate(std::string_view method);

// The token's request for a prepared item, and its audit line.
pkcs11::SignRequest sign_request(const PreparedItem& item, const std::string& cert_id, uid_t uid);
AuditRecord audit_record(const Call& call, std::string_view method, const pkcs11::SignRequest& request);

// Error(document_invalid, "too_large") when `size` bytes of `what` exceed
// signature.max_document_bytes.
void check_document_size(Core& core, std::size_t size, const char* what);

// One signing method, start to end: the certificate, the plan, the card, the answer.
void run_signing(Core& core, const std::shared_ptr<Call>& call);

void with_certificate(Core& core, const std::shared_ptr<Call>& call, const std::string& cert_id,
                      std::function<void(pkcs11::CertificateInfo)> next);

}  // namespace kortti::ipc
