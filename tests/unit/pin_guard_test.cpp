// What korttid remembers of a card's locked PUK: long enough that no uid can
// have the card asked again and again, and no longer than the card's
// state can be known (taken out, or a right PIN since).

#include <gtest/gtest.h>

#include "common/error.hpp"
#include "pkcs11/pin_guard.hpp"

namespace kortti::pkcs11 {
namespace {

// A card with one PIN, known by one token id.
PinKey card(const std::string& id) { return {id, id}; }

TEST(PinGuardPuk, ALockedPukIsRememberedPerCard) {
  PinGuard guard;
  EXPECT_FALSE(guard.puk_known_locked(card("card-a")));
  guard.puk_locked(card("card-a"));
  EXPECT_TRUE(guard.puk_known_locked(card("card-a")));
  EXPECT_FALSE(guard.puk_known_locked(card("card-b")));
  guard.wrong(card("card-a"), 1000);  // a wrong PIN changes nothing about the PUK
  EXPECT_TRUE(guard.puk_known_locked(card("card-a")));
}

TEST(PinGuardPuk, IsForgottenWhenTheCardIsTakenOutOrTakesARightPin) {
  PinGuard guard;
  guard.puk_locked(card("card-a"));
  guard.forget_puk_locked(card("card-a"));
  EXPECT_FALSE(guard.puk_known_locked(card("card-a")));
  guard.puk_locked(card("card-a"));
  guard.right(card("card-a"), std::nullopt);
  EXPECT_FALSE(guard.puk_known_locked(card("card-a")));
}

// One account may give a card only so many wrong PUKs; one that has given
// the card's right PIN is the holder's, and a right PIN or PUK starts again.
TEST(PinGuardPuk, AnAccountThatGaveWrongPuksMayNotSpendTheRest) {
  PinGuard guard;
  for (int i = 0; i < PinGuard::kWrongPuksPerAccount; ++i) {
    EXPECT_NO_THROW(guard.check_puk(card("card-a"), 1000));
    guard.wrong_puk(card("card-a"), 1000);
  }
  try {
    guard.check_puk(card("card-a"), 1000);
    ADD_FAILURE() << "a third wrong PUK's try was allowed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::permission_denied);
    EXPECT_EQ(e.detail, "puk_not_yours");
  }
  EXPECT_NO_THROW(guard.check_puk(card("card-a"), 1001)) << "another account";
  EXPECT_NO_THROW(guard.check_puk(card("card-b"), 1000)) << "another card";
  guard.wrong(card("card-a"), 1000);
  EXPECT_THROW(guard.check_puk(card("card-a"), 1000), Error) << "a wrong PIN does not start the PUK's count again";
  guard.right(card("card-a"), std::nullopt);
  EXPECT_THROW(guard.check_puk(card("card-a"), 1000), Error)
      << "a right PIN (the holder's daily login) leaves the card's PUK counter, and the count, as they were";
  guard.right_puk(card("card-a"));
  EXPECT_NO_THROW(guard.check_puk(card("card-a"), 1000)) << "a right PUK starts it again";

  guard.right(card("card-c"), 1002);  // the holder's account
  for (int i = 0; i < 2 * PinGuard::kWrongPuksPerAccount; ++i) guard.wrong_puk(card("card-c"), 1002);
  EXPECT_NO_THROW(guard.check_puk(card("card-c"), 1002));
}

// One card through two modules, or with a slot per PIN: an account that
// gave a right PIN through any of them is the holder's for all, wrong PINs
// count per PIN whatever module they came through, and the PUK is the
// card's.
TEST(PinGuard, OneCardIsOneCardWhateverTokenIdOrPinSlot) {
  PinGuard guard;
  const PinKey pin1{"0042\nAino (PIN1)", "0042"};
  const PinKey pin1_other_module = pin1;
  const PinKey pin2{"0042\nAino (PIN2)", "0042"};
  // Wrong PINs through one module hold for the same PIN through another.
  guard.wrong(pin1, 1000);
  EXPECT_THROW(guard.check_last_try(pin1_other_module, 1000), Error);
  EXPECT_NO_THROW(guard.check_last_try(pin2, 1000)) << "PIN2's counter is its own";
  // The holder's right PIN1 makes the account known for PIN2 too.
  guard.wrong(pin2, 1001);
  EXPECT_THROW(guard.check_last_try(pin2, 1001), Error);
  guard.right(pin1, 1001);
  EXPECT_NO_THROW(guard.check_last_try(pin2, 1001));
  // The PUK's wrong tries are counted per card.
  for (int i = 0; i < PinGuard::kWrongPuksPerAccount; ++i) guard.wrong_puk(i % 2 == 0 ? pin1 : pin2, 1002);
  EXPECT_THROW(guard.check_puk(pin1, 1002), Error);
  guard.puk_locked(pin2);
  EXPECT_TRUE(guard.puk_known_locked(pin1));
}

}  // namespace
}  // namespace kortti::pkcs11
