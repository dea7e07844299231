#include <gtest/gtest.h>

#include "pkcs11/ckr.hpp"

namespace kortti::pkcs11 {
namespace {

TEST(CkrMapping, PinOutcomes) {
  EXPECT_EQ(error_from_ckr(CKR_PIN_INCORRECT, "C_Login").code(), Errc::pin_incorrect);
  EXPECT_EQ(error_from_ckr(CKR_PIN_LOCKED, "C_Login").code(), Errc::pin_locked);
  EXPECT_EQ(error_from_ckr(CKR_PIN_LEN_RANGE, "C_Login").code(), Errc::invalid_params);
  EXPECT_EQ(error_from_ckr(CKR_USER_NOT_LOGGED_IN, "C_Sign").code(), Errc::pin_required);
  EXPECT_EQ(error_from_ckr(CKR_FUNCTION_CANCELED, "C_Login").code(), Errc::pin_entry_cancelled);
}

TEST(CkrMapping, RemovalAndDeviceFailures) {
  for (CK_RV rv : {CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT, CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED}) {
    EXPECT_TRUE(means_removed(rv));
    EXPECT_EQ(error_from_ckr(rv, "C_Sign").code(), Errc::card_removed);
  }
  EXPECT_EQ(error_from_ckr(CKR_DEVICE_ERROR, "C_Sign").code(), Errc::service_unavailable);
  EXPECT_EQ(error_from_ckr(CKR_MECHANISM_INVALID, "C_SignInit").code(), Errc::unsupported);
}

TEST(CkrMapping, DetailNamesTheCallAndTheCode) {
  EXPECT_EQ(error_from_ckr(CKR_PIN_INCORRECT, "C_Login").detail, "C_Login: CKR_PIN_INCORRECT");
  EXPECT_EQ(ckr_name(0x80001234UL), "CKR_0x80001234");
}

}  // namespace
}  // namespace kortti::pkcs11
