// What korttid remembers of a card's locked PUK: long enough that no uid can
// have the card asked again and again, and no longer than the card's
// state can be known (taken out, or a right PIN since).

#include <gtest/gtest.h>

#include "common/error.hpp"
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

// One account may give a card only so many wrong PUKs; one that has given
// the card's right PIN is the holder's, and a right PIN or PUK starts again.
TEST(PinGuardPuk, AnAccountThatGaveWrongPuksMayNotSpendTheRest) {
  PinGuard guard;
  for (int i = 0; i < PinGuard::kWrongPuksPerAccount; ++i) {
    EXPECT_NO_THROW(guard.check_puk("card-a", 1000));
    guard.wrong_puk("card-a", 1000);
  }
  try {
    guard.check_puk("card-a", 1000);
    ADD_FAILURE() << "a third wrong PUK's try was allowed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::permission_denied);
    EXPECT_EQ(e.detail, "puk_not_yours");
  }
  EXPECT_NO_THROW(guard.check_puk("card-a", 1001)) << "another account";
  EXPECT_NO_THROW(guard.check_puk("card-b", 1000)) << "another card";
  guard.wrong("card-a", 1000);
  EXPECT_THROW(guard.check_puk("card-a", 1000), Error) << "a wrong PIN does not start the PUK's count again";
  guard.right("card-a", std::nullopt);
  EXPECT_NO_THROW(guard.check_puk("card-a", 1000)) << "a right PUK (or PIN) starts it again";

  guard.right("card-c", 1002);  // the holder's account
  for (int i = 0; i < 2 * PinGuard::kWrongPuksPerAccount; ++i) guard.wrong_puk("card-c", 1002);
  EXPECT_NO_THROW(guard.check_puk("card-c", 1002));
}

}  // namespace
}  // namespace kortti::pkcs11
