#include <gtest/gtest.h>

#include "common/error.hpp"

namespace kortti {
namespace {

// What crosses to another thread is the whole error, with a message of its own.
TEST(Error, AnUnsharedCopyKeepsEveryFieldAndOwnsItsMessage) {
  Error e = Error(Errc::policy_denied, "policy denies signing: code")
                .with_tries_left(2)
                .with_detail("too_large")
                .with_reasons({{"code", "why"}});
  e.correlation_id = "c-1";
  const Error copy = e.unshared();
  EXPECT_EQ(copy.code(), Errc::policy_denied);
  EXPECT_STREQ(copy.what(), "policy denies signing: code");
  EXPECT_NE(static_cast<const void*>(copy.what()), static_cast<const void*>(e.what()));
  EXPECT_EQ(copy.tries_left, 2);
  EXPECT_EQ(copy.detail, "too_large");
  ASSERT_EQ(copy.reasons.size(), 1U);
  EXPECT_EQ(copy.reasons[0].code, "code");
  EXPECT_EQ(copy.correlation_id, "c-1");
}

}  // namespace
}  // namespace kortti
