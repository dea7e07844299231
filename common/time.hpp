#pragma once

#include <chrono>
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
// Accepts Z or a numeric offset, optional fractional seconds.
std::optional<SystemTime> parse_rfc3339(std::string_view text);

}  // namespace kortti
