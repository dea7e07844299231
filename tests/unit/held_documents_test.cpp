#include "service/held_documents.hpp"

#include <gtest/gtest.h>

#include "common/error.hpp"

namespace kortti::service {
namespace {

Errc refusal(HeldDocuments& held, uid_t uid, std::size_t bytes) {
  try {
    (void)held.hold(uid, bytes);
  } catch (const Error& e) {
    return e.code();
  }
  return Errc{};
}

TEST(HeldDocuments, BoundsEachUidAndAllTogetherAndOneAlwaysGetsIn) {
  HeldDocuments held(1000, 600);
  HeldDocuments::Hold a = held.hold(1, 700);  // past the uid's bound, but the uid holds nothing
  EXPECT_EQ(refusal(held, 1, 1), Errc::service_unavailable);
  HeldDocuments::Hold b = held.hold(2, 300);
  EXPECT_EQ(refusal(held, 2, 1), Errc::service_unavailable) << "1,001 bytes in all";
  EXPECT_EQ(refusal(held, 3, 1), Errc::service_unavailable);
}

TEST(HeldDocuments, AHoldGivesItsBytesBackOnceWhenItEndsMovedOrNot) {
  HeldDocuments held(1000, 600);
  {
    HeldDocuments::Hold a = held.hold(1, 600);
    HeldDocuments::Hold moved = std::move(a);
    HeldDocuments::Hold assigned;
    assigned = std::move(moved);
    EXPECT_EQ(refusal(held, 1, 1), Errc::service_unavailable);
  }
  HeldDocuments::Hold again = held.hold(1, 600);
  again = held.hold(2, 400);  // the first is given back as the second takes its place
  HeldDocuments::Hold third = held.hold(1, 600);
  EXPECT_EQ(refusal(held, 3, 1), Errc::service_unavailable);
}

TEST(HeldDocuments, AHoldMayOutliveWhatMadeIt) {
  HeldDocuments::Hold kept;
  {
    HeldDocuments held(1000, 600);
    kept = held.hold(1, 10);
  }
  kept = HeldDocuments::Hold();  // the state ends here (ASan: no use after free)
}

TEST(HeldDocuments, NothingHeldIsNeverRefused) {
  HeldDocuments held(1000, 600);
  HeldDocuments::Hold a = held.hold(1, 2000);  // the first always gets in
  EXPECT_EQ(refusal(held, 1, 0), Errc{});
  EXPECT_EQ(refusal(held, 2, 0), Errc{});
}

}  // namespace
}  // namespace kortti::service
