#pragma once

// Internal to pkcs11/ (docs/architecture.md, Layering); include pkcs11/pkcs11.hpp.
#if !defined(KORTTI_COMPONENT_PKCS11) && !defined(KORTTI_WHITE_BOX)
#error "pkcs11/session.hpp is internal to pkcs11/; include pkcs11/pkcs11.hpp"
#endif

#include <p11-kit/pkcs11.h>

#include <optional>
#include <vector>

#include "common/bytes.hpp"

namespace kortti::pkcs11 {

// An open PKCS#11 session (RAII). Not thread-safe: a session belongs to the
// Worker of its token.
class Session {
 public:
  // `flags` beside CKF_SERIAL_SESSION: CKF_RW_SESSION for a PIN change.
  Session(CK_FUNCTION_LIST* fn, CK_SLOT_ID slot, CK_FLAGS flags = 0);
  ~Session();
  Session(Session&& other) noexcept;
  Session& operator=(Session&&) = delete;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  [[nodiscard]] CK_SESSION_HANDLE handle() const noexcept { return handle_; }
  [[nodiscard]] CK_FUNCTION_LIST* fn() const noexcept { return fn_; }

  // True when the token is logged in as the normal user.
  [[nodiscard]] bool user_logged_in() const;

  [[nodiscard]] std::vector<CK_OBJECT_HANDLE> find(std::vector<CK_ATTRIBUTE> match, CK_ULONG max = 256) const;
  [[nodiscard]] Bytes bytes(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) const;
  [[nodiscard]] std::optional<CK_ULONG> ulong(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) const;
  [[nodiscard]] std::optional<bool> boolean(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) const;

 private:
  CK_FUNCTION_LIST* fn_;
  CK_SESSION_HANDLE handle_ = CK_INVALID_HANDLE;
};

}  // namespace kortti::pkcs11
