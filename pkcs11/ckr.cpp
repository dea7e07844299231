#include "pkcs11/ckr.hpp"

#include <cstdio>

namespace kortti::pkcs11 {

std::string ckr_name(CK_RV rv) {
  switch (rv) {
#define KORTTI_CKR(name) \
  case name:             \
    return #name;
    KORTTI_CKR(CKR_OK)
    KORTTI_CKR(CKR_CANCEL)
    KORTTI_CKR(CKR_HOST_MEMORY)
    KORTTI_CKR(CKR_SLOT_ID_INVALID)
    KORTTI_CKR(CKR_GENERAL_ERROR)
    KORTTI_CKR(CKR_FUNCTION_FAILED)
    KORTTI_CKR(CKR_ARGUMENTS_BAD)
    KORTTI_CKR(CKR_ATTRIBUTE_TYPE_INVALID)
    KORTTI_CKR(CKR_ATTRIBUTE_SENSITIVE)
    KORTTI_CKR(CKR_DATA_INVALID)
    KORTTI_CKR(CKR_DATA_LEN_RANGE)
    KORTTI_CKR(CKR_DEVICE_ERROR)
    KORTTI_CKR(CKR_DEVICE_MEMORY)
    KORTTI_CKR(CKR_DEVICE_REMOVED)
    KORTTI_CKR(CKR_FUNCTION_CANCELED)
    KORTTI_CKR(CKR_FUNCTION_NOT_SUPPORTED)
    KORTTI_CKR(CKR_KEY_HANDLE_INVALID)
    KORTTI_CKR(CKR_KEY_TYPE_INCONSISTENT)
    KORTTI_CKR(CKR_KEY_FUNCTION_NOT_PERMITTED)
    KORTTI_CKR(CKR_MECHANISM_INVALID)
    KORTTI_CKR(CKR_MECHANISM_PARAM_INVALID)
    KORTTI_CKR(CKR_OBJECT_HANDLE_INVALID)
    KORTTI_CKR(CKR_OPERATION_ACTIVE)
    KORTTI_CKR(CKR_OPERATION_NOT_INITIALIZED)
    KORTTI_CKR(CKR_PIN_INCORRECT)
    KORTTI_CKR(CKR_PIN_INVALID)
    KORTTI_CKR(CKR_PIN_LEN_RANGE)
    KORTTI_CKR(CKR_PIN_EXPIRED)
    KORTTI_CKR(CKR_PIN_LOCKED)
    KORTTI_CKR(CKR_SESSION_CLOSED)
    KORTTI_CKR(CKR_SESSION_COUNT)
    KORTTI_CKR(CKR_SESSION_HANDLE_INVALID)
    KORTTI_CKR(CKR_TOKEN_NOT_PRESENT)
    KORTTI_CKR(CKR_TOKEN_NOT_RECOGNIZED)
    KORTTI_CKR(CKR_USER_ALREADY_LOGGED_IN)
    KORTTI_CKR(CKR_USER_NOT_LOGGED_IN)
    KORTTI_CKR(CKR_USER_PIN_NOT_INITIALIZED)
    KORTTI_CKR(CKR_USER_TYPE_INVALID)
    KORTTI_CKR(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
    KORTTI_CKR(CKR_BUFFER_TOO_SMALL)
    KORTTI_CKR(CKR_CRYPTOKI_NOT_INITIALIZED)
    KORTTI_CKR(CKR_CRYPTOKI_ALREADY_INITIALIZED)
#undef KORTTI_CKR
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "CKR_0x%08lX", rv);
      return buf;
    }
  }
}

bool means_removed(CK_RV rv) noexcept {
  return rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_SESSION_CLOSED ||
         rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SLOT_ID_INVALID;
}

Error error_from_ckr(CK_RV rv, const char* call) {
  const std::string where = std::string(call) + ": " + ckr_name(rv);
  auto make = [&](Errc code, const std::string& message) { return Error(code, message).with_detail(where); };
  if (means_removed(rv)) return make(Errc::card_removed, "the card was removed during the operation");
  switch (rv) {
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
      return make(Errc::pin_incorrect, "the PIN is incorrect");
    case CKR_PIN_LEN_RANGE:
      return make(Errc::invalid_params, "the PIN has the wrong length for this card");
    case CKR_PIN_LOCKED:
      return make(Errc::pin_locked, "the PIN is locked; unblock it with the card's PUK or activation code");
    case CKR_PIN_EXPIRED:
      return make(Errc::pin_locked, "the PIN has expired; change it with the card issuer's tool");
    case CKR_USER_NOT_LOGGED_IN:
      return make(Errc::pin_required, "this operation needs the card's PIN");
    case CKR_FUNCTION_CANCELED:
    case CKR_CANCEL:
      return make(Errc::pin_entry_cancelled, "PIN entry was cancelled or timed out");
    case CKR_MECHANISM_INVALID:
    case CKR_MECHANISM_PARAM_INVALID:
    case CKR_KEY_TYPE_INCONSISTENT:
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
    case CKR_FUNCTION_NOT_SUPPORTED:
      return make(Errc::unsupported, "the card does not support this operation");
    case CKR_TOKEN_NOT_RECOGNIZED:
      return make(Errc::token_not_found, "the card in the reader is not recognised by the PKCS#11 module");
    case CKR_DATA_INVALID:
    case CKR_DATA_LEN_RANGE:
      return make(Errc::invalid_params, "the card rejected the data to sign");
    case CKR_USER_ANOTHER_ALREADY_LOGGED_IN:
      return make(Errc::permission_denied, "another user is logged in to this card");
    default:
      return make(Errc::service_unavailable, "the card or its PKCS#11 module reported an error; try again");
  }
}

}  // namespace kortti::pkcs11
