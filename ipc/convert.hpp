#pragma once

// How pkcs11/ types look on the wire (docs/protocol.md).

#include "common/json.hpp"
#include "pkcs11/pkcs11.hpp"

namespace kortti::ipc {

Json to_json(const pkcs11::ModuleStatus& module);
Json to_json(const pkcs11::TokenInfo& token);
Json to_json(const pkcs11::CertificateInfo& certificate);
Json to_json(const pkcs11::SignResult& result);

}  // namespace kortti::ipc
