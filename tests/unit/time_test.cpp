#include <gtest/gtest.h>

#include "common/time.hpp"

namespace kortti {
namespace {

TEST(Rfc3339, FormatsUtcWithZ) {
  EXPECT_EQ(to_rfc3339(std::chrono::system_clock::from_time_t(1700000000)), "2023-11-14T22:13:20Z");
}

TEST(Rfc3339, ParsesZuluOffsetsAndFractions) {
  const auto t = std::chrono::system_clock::from_time_t(1700000000);
  EXPECT_EQ(parse_rfc3339("2023-11-14T22:13:20Z"), t);
  EXPECT_EQ(parse_rfc3339("2023-11-15T00:13:20+02:00"), t);
  EXPECT_EQ(parse_rfc3339("2023-11-14T20:13:20.125-02:00"), t);
}

TEST(Rfc3339, RejectsMalformed) {
  for (const char* bad : {"2023-11-14", "2023-11-14T22:13:20", "2023-13-14T22:13:20Z", "2023-11-14T22:13:20+0200",
                          "2023-11-14T22:13:20Zjunk", "2023-11-14 22:13:20Z", "2023-11-14T22:13:20."})
    EXPECT_FALSE(parse_rfc3339(bad).has_value()) << bad;
}

}  // namespace
}  // namespace kortti

namespace kortti {
namespace {

TEST(Time, LocalRfc3339CarriesTheZoneOffset) {
  const char* old = std::getenv("TZ");
  const std::string saved = old != nullptr ? old : "";
  ::setenv("TZ", "EET-2", 1);  // POSIX form: needs no tzdata
  ::tzset();
  const auto t = std::chrono::system_clock::from_time_t(1700000000);
  EXPECT_EQ(to_rfc3339_local(t), "2023-11-15T00:13:20+02:00");
  EXPECT_EQ(local_date(t), "2023-11-15");
  if (old != nullptr)
    ::setenv("TZ", saved.c_str(), 1);
  else
    ::unsetenv("TZ");
  ::tzset();
}

}  // namespace
}  // namespace kortti
