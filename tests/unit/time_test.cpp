#include <gtest/gtest.h>

#include <limits>

#include "common/time.hpp"

namespace kortti {
namespace {

// Found by the codes, registry, crl and ocsp fuzzers (fuzz/regressions/):
// a year past 2262 overflowed the clock's nanoseconds. Far future saturates.
TEST(Rfc3339, YearsPastTheClocksRangeSaturateInsteadOfOverflowing) {
  for (const char* text : {"3008-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2263-01-01T00:00:00+02:00"}) {
    const auto t = parse_rfc3339(text);
    ASSERT_TRUE(t.has_value()) << text;
    EXPECT_EQ(*t, SystemTime::max()) << text;
  }
  EXPECT_EQ(from_time_t_saturated(std::numeric_limits<std::time_t>::min()), SystemTime::min());
  const auto inside = parse_rfc3339("2262-01-01T00:00:00Z");
  ASSERT_TRUE(inside.has_value());
  EXPECT_LT(*inside, SystemTime::max());
  EXPECT_EQ(to_rfc3339(*inside), "2262-01-01T00:00:00Z");
}

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

// Registry extracts carry dates and times a generator wrote; an impossible
// one must be refused, not rolled over by timegm() into another day.
TEST(Time, DatesMustBeDaysOfTheCalendar) {
  for (const char* good :
       {"2026-01-31", "2026-02-28", "2024-02-29", "2000-02-29", "2026-04-30", "2026-12-31", "0001-01-01", "9999-12-31"})
    EXPECT_TRUE(is_date(good)) << good;
  for (const char* bad : {"2026-02-29", "1900-02-29", "2026-02-30", "2026-04-31", "2026-06-31", "2026-13-01",
                          "2026-00-10", "2026-01-00", "2026-01-32", "2026-1-01", "2026-01-1", "+026-01-01",
                          " 2026-01-01", "2026-01-01 ", "2026/01/01", "2026-+1-01", "2026-01-+1", "", "2026-01-01T"})
    EXPECT_FALSE(is_date(bad)) << bad;
  EXPECT_TRUE(valid_date(2024, 2, 29));
  EXPECT_FALSE(valid_date(2100, 2, 29));
  EXPECT_FALSE(valid_date(2026, 9, 31));
}

TEST(Time, Rfc3339TimesMustBeRealTimes) {
  for (const char* good : {"2024-02-29T23:59:59Z", "2026-02-28T00:00:00+02:00", "2026-02-28T12:30:00-00:00",
                           "2026-02-28T12:30:00.5+23:59", "2026-02-28T12:30:00z"})
    EXPECT_TRUE(parse_rfc3339(good).has_value()) << good;
  for (const char* bad :
       {"2026-02-30T10:00:00Z", "2026-02-29T10:00:00Z", "2026-04-31T10:00:00Z", "2026-13-01T10:00:00Z",
        "2026-02-28T25:00:00Z", "2026-02-28T24:00:00Z", "2026-02-28T23:60:00Z", "2026-02-28T23:59:60Z",
        "2026-02-28T23:59:61Z", "2026-02-28T10:00:00+24:00", "2026-02-28T10:00:00+02:60", "2026-02-28T10:00:00+2:00",
        "2026-02-28T+1:00:00Z", "2026-02-28T 1:00:00Z", "2026-02-28T10:-1:00Z", "2026-02-28T10:00:00+-2:00",
        "2026-02-28T10:00Z", "2026-02-28T10:00:00+02:00junk"})
    EXPECT_FALSE(parse_rfc3339(bad).has_value()) << bad;
}

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
