#pragma once

// Internal to ipc/ (docs/architecture.md, Layering); include ipc/ipc.hpp.
#if !defined(KORTTI_COMPONENT_IPC) && !defined(KORTTI_WHITE_BOX)
#error "ipc/convert.hpp is internal to ipc/; include ipc/ipc.hpp"
#endif

// How the components' types look on the wire (docs/protocol.md).

#include "common/json.hpp"
#include "pcsc/pcsc.hpp"
#include "pkcs11/pkcs11.hpp"
#include "policy/policy.hpp"

namespace kortti::ipc {

Json to_json(const pkcs11::ModuleStatus& module);
Json to_json(const pkcs11::PinStatus& pin);
Json to_json(const pkcs11::TokenInfo& token);
Json to_json(const pkcs11::CertificateInfo& certificate);
Json to_json(const pkcs11::SignResult& result);
Json to_json(const pcsc::ReaderState& reader);
// convert_policy.cpp
Json to_json(const policy::Professional& professional);  // without the hetu
Json to_json(const policy::Identity& identity);
Json to_json(const policy::ValidationResult& validation);
Json to_json(const policy::Provenance& provenance, bool stale);
Json to_json(const policy::Decision& decision);
// The params of an `event` notification, without its topic.
Json event_params(const pcsc::Event& event);
Json event_params(const pkcs11::TokenEvent& event);

}  // namespace kortti::ipc
