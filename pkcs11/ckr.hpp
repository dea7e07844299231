#pragma once

// Internal to pkcs11/ (docs/architecture.md, Layering); include pkcs11/pkcs11.hpp.
#if !defined(KORTTI_COMPONENT_PKCS11) && !defined(KORTTI_WHITE_BOX)
#error "pkcs11/ckr.hpp is internal to pkcs11/; include pkcs11/pkcs11.hpp"
#endif

#include <p11-kit/pkcs11.h>

#include <string>

#include "common/error.hpp"

namespace kortti::pkcs11 {

std::string ckr_name(CK_RV rv);

// The protocol error a PKCS#11 return value means; `call` names the function
// (e.g. "C_Sign") so the detail says where it happened.
Error error_from_ckr(CK_RV rv, const char* call);

// True for the return values that mean the card or token has gone.
bool means_removed(CK_RV rv) noexcept;

inline void check(CK_RV rv, const char* call) {
  if (rv != CKR_OK) throw error_from_ckr(rv, call);
}

}  // namespace kortti::pkcs11
