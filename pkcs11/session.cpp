#include "pkcs11/session.hpp"

#include <utility>

#include "pkcs11/ckr.hpp"

namespace kortti::pkcs11 {

Session::Session(CK_FUNCTION_LIST* fn, CK_SLOT_ID slot, CK_FLAGS flags) : fn_(fn) {
  check(fn_->C_OpenSession(slot, CKF_SERIAL_SESSION | flags, nullptr, nullptr, &handle_), "C_OpenSession");
}

Session::~Session() {
  if (handle_ != CK_INVALID_HANDLE) fn_->C_CloseSession(handle_);
}

Session::Session(Session&& other) noexcept : fn_(other.fn_), handle_(std::exchange(other.handle_, CK_INVALID_HANDLE)) {}

bool Session::user_logged_in() const {
  CK_SESSION_INFO info{};
  check(fn_->C_GetSessionInfo(handle_, &info), "C_GetSessionInfo");
  return info.state == CKS_RO_USER_FUNCTIONS || info.state == CKS_RW_USER_FUNCTIONS;
}

std::vector<CK_OBJECT_HANDLE> Session::find(std::vector<CK_ATTRIBUTE> match, CK_ULONG max) const {
  check(fn_->C_FindObjectsInit(handle_, match.data(), match.size()), "C_FindObjectsInit");
  std::vector<CK_OBJECT_HANDLE> found(max);
  CK_ULONG count = 0;
  const CK_RV rv = fn_->C_FindObjects(handle_, found.data(), max, &count);
  fn_->C_FindObjectsFinal(handle_);
  check(rv, "C_FindObjects");
  found.resize(count);
  return found;
}

Bytes Session::bytes(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) const {
  CK_ATTRIBUTE attr{type, nullptr, 0};
  const CK_RV rv = fn_->C_GetAttributeValue(handle_, object, &attr, 1);
  if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE) return {};
  check(rv, "C_GetAttributeValue");
  if (attr.ulValueLen == CK_UNAVAILABLE_INFORMATION) return {};
  Bytes value(attr.ulValueLen);
  attr.pValue = value.data();
  check(fn_->C_GetAttributeValue(handle_, object, &attr, 1), "C_GetAttributeValue");
  value.resize(attr.ulValueLen);
  return value;
}

std::optional<CK_ULONG> Session::ulong(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) const {
  CK_ULONG value = 0;
  CK_ATTRIBUTE attr{type, &value, sizeof value};
  const CK_RV rv = fn_->C_GetAttributeValue(handle_, object, &attr, 1);
  if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE) return std::nullopt;
  check(rv, "C_GetAttributeValue");
  return value;
}

std::optional<bool> Session::boolean(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) const {
  CK_BBOOL value = CK_FALSE;
  CK_ATTRIBUTE attr{type, &value, sizeof value};
  const CK_RV rv = fn_->C_GetAttributeValue(handle_, object, &attr, 1);
  if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE) return std::nullopt;
  check(rv, "C_GetAttributeValue");
  return value == CK_TRUE;
}

}  // namespace kortti::pkcs11
