// What korttid remembers of a card's locked PUK: long enough that no uid can
// have the card asked again and again, and no longer than the card's
// state can be known (taken out, or a right PIN since).

#include <gtest/gtest.h>

#include "pkcs11/pin_guard.hpp"

namespace kortti::pkcs11 {
namespace {

TEST(PinGuardPuk, ALockedPukIsRememberedPerCard) {
  PinGuard guard;
  EXPECT_FALSE(guard.puk_known_locked("card-a"));
  guard.puk_locked("card-a");
  EXPECT_TRUE(guard.puk_known_locked("card-a"));
  EXPECT_FALSE(guard.puk_known_locked("card-b"));
  guard.wrong("card-a", 1000);  // a wrong PIN changes nothing about the PUK
  EXPECT_TRUE(guard.puk_known_locked("card-a"));
}

TEST(PinGuardPuk, IsForgottenWhenTheCardIsTakenOutOrTakesARightPin) {
  PinGuard guard;
  guard.puk_locked("card-a");
  guard.forget_puk_locked("card-a");
  EXPECT_FALSE(guard.puk_known_locked("card-a"));
  guard.puk_locked("card-a");
  guard.right("card-a", std::nullopt);
  EXPECT_FALSE(guard.puk_known_locked("card-a"));
}

}  // namespace
}  // namespace kortti::pkcs11
