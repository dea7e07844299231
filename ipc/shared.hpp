#pragma once

// What more than one methods_*.cpp uses.

#include "common/result.hpp"
#include "ipc/core.hpp"
#include "pkcs11/pkcs11.hpp"
#include "policy/policy.hpp"

namespace kortti::ipc {

// Writes the audit line of a signature (or its failure) before the answer
// leaves, so no client ever holds a signature the audit trail lacks.
void audit_signature(Core& core, const Call& call, AuditRecord record, const Result<pkcs11::SignResult>& result);

// The `context` parameter of policy.check and sign.prescription.
policy::Context context_param(Json& params);

}  // namespace kortti::ipc
