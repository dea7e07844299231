// Whose session a request finds, as the checks before the audit trail read
// it: a session past its lifetime or idle time is over even while the sweep
// has not yet logged it out (its worker does so before the next operation).

#include <gtest/gtest.h>

#include "pkcs11/pkcs11.hpp"

namespace kortti::pkcs11 {
namespace {

using namespace std::chrono_literals;

TokenInfo logged_in_by(uid_t uid) {
  TokenInfo t;
  t.logged_in = true;
  t.session_owner = uid;
  t.session_expires_at = std::chrono::system_clock::now() + 1h;
  t.session_idle_until = std::chrono::steady_clock::now() + 1h;
  return t;
}

TEST(LiveSessionOwner, IsTheOwnerOfASessionWithinItsTimes) {
  EXPECT_EQ(logged_in_by(1000).live_session_owner(), 1000u);
  TokenInfo out = logged_in_by(1000);
  out.logged_in = false;
  EXPECT_EQ(out.live_session_owner(), std::nullopt);
}

TEST(LiveSessionOwner, IsNoneOnceTheSessionIsPastItsLifetime) {
  TokenInfo t = logged_in_by(1000);
  t.session_expires_at = std::chrono::system_clock::now() - 1s;
  EXPECT_EQ(t.live_session_owner(), std::nullopt);
}

TEST(LiveSessionOwner, IsNoneOnceTheSessionHasBeenIdleTooLong) {
  TokenInfo t = logged_in_by(1000);
  t.session_idle_until = std::chrono::steady_clock::now() - 1s;
  EXPECT_EQ(t.live_session_owner(), std::nullopt);
}

}  // namespace
}  // namespace kortti::pkcs11
