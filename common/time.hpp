#pragma once

#include <chrono>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace kortti {

using SystemTime = std::chrono::system_clock::time_point;

// RFC 3339 in UTC with a Z suffix and whole seconds: 2026-11-22T09:57:00Z.
std::string to_rfc3339(SystemTime t);
// RFC 3339 in the local time zone with its offset: 2026-11-22T11:57:00+02:00.
std::string to_rfc3339_local(SystemTime t);
// The date (YYYY-MM-DD) in the local time zone.
std::string local_date(SystemTime t);
// A day of the Gregorian calendar: month 1-12, day within that month's
// length (29 February in leap years only).
bool valid_date(int year, int month, int day) noexcept;
// Exactly YYYY-MM-DD, digits only, and a day of the calendar.
bool is_date(std::string_view text) noexcept;
// RFC 3339 date-time: Z or a numeric offset (hours 00-23, minutes 00-59),
// optional fractional seconds. Strict: a day of the calendar, hours 00-23,
// minutes and seconds 00-59. A leap second (:60) is refused: none has been
// inserted since 2016, none is scheduled, and a :60 in our inputs is far more
// likely a broken generator than a real one.
std::optional<SystemTime> parse_rfc3339(std::string_view text);
// A time_t as a SystemTime, saturated at the clock's range (nanoseconds:
// about the years 1678-2262). Certificates may say 9999-12-31 and extracts
// the year 3008: that means "far in the future", never an overflow.
SystemTime from_time_t_saturated(std::time_t t) noexcept;
// A broken-down UTC time (timegm) the same way.
SystemTime from_utc_tm(std::tm tm) noexcept;

}  // namespace kortti
