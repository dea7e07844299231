#pragma once

// Internal to ipc/ (docs/architecture.md, Layering); include ipc/ipc.hpp.
#if !defined(KORTTI_COMPONENT_IPC) && !defined(KORTTI_WHITE_BOX)
#error "ipc/methods.hpp is internal to ipc/; include ipc/ipc.hpp"
#endif

// The handlers of the method table (methods.cpp): each parses its params into
// the service core's typed request, awaits the operation, and writes the
// result as protocol.md has it.

#include <memory>

#include "ipc/core.hpp"
#include "policy/policy.hpp"

namespace kortti::ipc {

// methods_system.cpp
Task<Json> system_hello(Core& core, std::shared_ptr<Call> call);
Task<Json> system_status(Core& core, std::shared_ptr<Call> call);
Task<Json> events_subscribe(Core& core, std::shared_ptr<Call> call);
Task<Json> events_unsubscribe(Core& core, std::shared_ptr<Call> call);
Task<Json> readers_list(Core& core, std::shared_ptr<Call> call);

// methods_tokens.cpp
Task<Json> tokens_list(Core& core, std::shared_ptr<Call> call);
Task<Json> certificates_list(Core& core, std::shared_ptr<Call> call);
Task<Json> certificates_share(Core& core, std::shared_ptr<Call> call);
Task<Json> session_login(Core& core, std::shared_ptr<Call> call);
Task<Json> session_logout(Core& core, std::shared_ptr<Call> call);
Task<Json> pin_status(Core& core, std::shared_ptr<Call> call);
Task<Json> pin_change(Core& core, std::shared_ptr<Call> call);
Task<Json> pin_unblock(Core& core, std::shared_ptr<Call> call);

// methods_auth.cpp: Web eID login tokens
Task<Json> auth_token(Core& core, std::shared_ptr<Call> call);
Task<Json> auth_verify(Core& core, std::shared_ptr<Call> call);

// methods_tls.cpp: the forward tunnels
Task<Json> tls_upstreams(Core& core, std::shared_ptr<Call> call);
Task<Json> tls_tunnels(Core& core, std::shared_ptr<Call> call);

// methods_sign.cpp: sign.digest, .data, .xml, .cms and .prescription
Task<Json> sign_one(Core& core, std::shared_ptr<Call> call);
Task<Json> sign_batch(Core& core, std::shared_ptr<Call> call);

// methods_verify.cpp
Task<Json> verify_xml(Core& core, std::shared_ptr<Call> call);
Task<Json> verify_cms(Core& core, std::shared_ptr<Call> call);

// methods_policy.cpp
// The `context` parameter of policy.check and sign.prescription.
policy::Context context_param(Json& params);
Task<Json> certificates_identity(Core& core, std::shared_ptr<Call> call);
Task<Json> policy_check(Core& core, std::shared_ptr<Call> call);
Task<Json> registry_lookup(Core& core, std::shared_ptr<Call> call);

}  // namespace kortti::ipc
