#include "common/time.hpp"

#include <ctime>

namespace kortti {

namespace {

std::tm broken_down(SystemTime t, bool local) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  if (local)
    localtime_r(&secs, &tm);
  else
    gmtime_r(&secs, &tm);
  return tm;
}

}  // namespace

std::string to_rfc3339(SystemTime t) {
  const std::tm tm = broken_down(t, false);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string to_rfc3339_local(SystemTime t) {
  const std::tm tm = broken_down(t, true);
  char buf[40];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", &tm);
  const std::string_view text(buf, n);  // +0200 -> +02:00
  return std::string(text.substr(0, n - 2)) + ":" + std::string(text.substr(n - 2));
}

std::string local_date(SystemTime t) {
  const std::tm tm = broken_down(t, true);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

bool valid_date(int year, int month, int day) noexcept {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (year < 0 || year > 9999 || month < 1 || month > 12 || day < 1) return false;
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return day <= kDays[month - 1] + (month == 2 && leap ? 1 : 0);
}

namespace {

// `n` decimal digits at `pos`; sscanf would also take signs and spaces.
std::optional<int> digits(std::string_view text, std::size_t pos, std::size_t n) {
  if (pos + n > text.size()) return std::nullopt;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    v = v * 10 + (text[i] - '0');
  }
  return v;
}

struct Date {
  int year, month, day;
};

// YYYY-MM-DD at the start of `text`.
std::optional<Date> date_prefix(std::string_view text) {
  const auto y = digits(text, 0, 4), m = digits(text, 5, 2), d = digits(text, 8, 2);
  if (!y || !m || !d || text[4] != '-' || text[7] != '-' || !valid_date(*y, *m, *d)) return std::nullopt;
  return Date{*y, *m, *d};
}

}  // namespace

bool is_date(std::string_view text) noexcept { return text.size() == 10 && date_prefix(text).has_value(); }

std::optional<SystemTime> parse_rfc3339(std::string_view text) {
  if (text.size() < 20) return std::nullopt;
  const auto date = date_prefix(text);
  const auto h = digits(text, 11, 2), mi = digits(text, 14, 2), s = digits(text, 17, 2);
  if (!date || text[10] != 'T' || !h || text[13] != ':' || !mi || text[16] != ':' || !s) return std::nullopt;
  if (*h > 23 || *mi > 59 || *s > 59) return std::nullopt;
  std::size_t pos = 19;
  if (text[pos] == '.') {
    const std::size_t start = ++pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
    if (pos == start) return std::nullopt;
  }
  long offset = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    const auto oh = digits(text, pos + 1, 2), om = digits(text, pos + 4, 2);
    if (!oh || !om || text[pos + 3] != ':' || *oh > 23 || *om > 59) return std::nullopt;
    offset = (*oh * 3600L + *om * 60L) * (text[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = date->year - 1900;
  tm.tm_mon = date->month - 1;
  tm.tm_mday = date->day;
  tm.tm_hour = *h;
  tm.tm_min = *mi;
  tm.tm_sec = *s;
  return from_time_t_saturated(timegm(&tm) - offset);
}

SystemTime from_time_t_saturated(std::time_t t) noexcept {
  using std::chrono::duration_cast;
  using std::chrono::seconds;
  constexpr auto max_s = duration_cast<seconds>(SystemTime::duration::max()).count();
  constexpr auto min_s = duration_cast<seconds>(SystemTime::duration::min()).count();
  if (t >= max_s) return SystemTime::max();
  if (t <= min_s) return SystemTime::min();
  return SystemTime(duration_cast<SystemTime::duration>(seconds(t)));
}

SystemTime from_utc_tm(std::tm tm) noexcept { return from_time_t_saturated(timegm(&tm)); }

}  // namespace kortti
