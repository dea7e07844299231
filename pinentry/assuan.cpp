// The Assuan protocol as pinentry speaks it: one command line, answered by
// data lines ("D "), status lines ("S "), comments ("#"), and a final "OK"
// or "ERR <code> <text>". Lines are at most 1000 bytes; '%', CR and LF in an
// argument or a data line are escaped as %XX.

#include "pinentry/assuan.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "common/encoding.hpp"
#include "common/error.hpp"
#include "pinentry/pinentry.hpp"

namespace kortti::pinentry {

namespace {

constexpr std::size_t kMaxLine = 1000;  // Assuan's limit, with the LF
constexpr std::size_t kMaxPin = 64;     // protocol.md: a PIN is 1-64 characters
constexpr std::size_t kReadSize = 512;  // one read from the pinentry
// libgpg-error's codes, as pinentry sends them in the low 16 bits of an ERR.
constexpr unsigned kTimeout = 62;
constexpr unsigned kCanceled = 99;
constexpr unsigned kNotConfirmed = 114;
constexpr unsigned kFullyCanceled = 198;

Error broken(const std::string& what) {
  return Error(Errc::service_unavailable, "the PIN dialog program failed: " + what);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Appends the unescaped `text` to `out`; false on a broken escape, or when
// `out` would pass `max` bytes (it never grows past its reserve then, so no
// copy is left behind unwiped).
bool unescape(std::string_view text, std::string& out, std::size_t max) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (out.size() == max) return false;
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) return false;
    const int hi = hex_digit(text[i + 1]);
    const int lo = hex_digit(text[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

}  // namespace

std::string assuan_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '%' || c == '\r' || c == '\n') {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out += '%';
      out += kHex[(static_cast<unsigned char>(c) >> 4) & 0xF];
      out += kHex[static_cast<unsigned char>(c) & 0xF];
    } else {
      out += c;
    }
  }
  return out;
}

// Both buffers hold the PIN's line on its way: room for the longest at
// once, so that no reallocation frees a copy that was never wiped.
Conversation::Conversation(int to, int from, std::stop_token stop) : to_(to), from_(from), stop_(std::move(stop)) {
  line_.reserve(kMaxLine + kReadSize);
  pending_.reserve(kMaxLine + kReadSize);
}

Conversation::~Conversation() {
  wipe_string(line_);
  wipe_string(pending_);
  ::close(to_);
  ::close(from_);
}

void Conversation::write_all(std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(to_, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw broken(std::string("it stopped reading (") + std::strerror(errno) + ")");
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

void Conversation::read_line(Clock::time_point deadline) {
  wipe_string(line_);
  for (;;) {
    if (auto end = pending_.find('\n'); end != std::string::npos) {
      line_.assign(pending_, 0, end);
      pending_.erase(0, end + 1);
      return;
    }
    if (pending_.size() > kMaxLine) throw broken("a line longer than Assuan allows");
    if (stop_.stop_requested()) throw Error(Errc::pin_entry_cancelled, "the request ended before the PIN was typed");
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) throw Error(Errc::pin_entry_cancelled, "no PIN was typed in time");
    // Short slices, so a request that ends closes its dialog soon.
    pollfd p{from_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::min<long>(left, 100)));
    if (ready < 0 && errno != EINTR) throw broken(std::string("poll: ") + std::strerror(errno));
    if (ready <= 0) continue;
    char buffer[kReadSize];
    const ssize_t n = ::read(from_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      wipe(buffer, sizeof buffer);
      throw broken("it exited before it answered");
    }
    pending_.append(buffer, static_cast<std::size_t>(n));
    wipe(buffer, sizeof buffer);
  }
}

Conversation::Reply Conversation::reply(Clock::time_point deadline, std::string* data) {
  for (;;) {
    read_line(deadline);
    const std::string_view line = line_;
    if (line == "OK" || line.starts_with("OK ")) return {true, 0};
    if (line.starts_with("ERR ")) {
      unsigned code = 0;
      std::from_chars(line.data() + 4, line.data() + line.size(), code);
      return {false, code & 0xFFFF};
    }
    if (line.starts_with("D ")) {
      if (data == nullptr) throw broken("unexpected data");
      if (!unescape(line.substr(2), *data, kMaxPin)) {
        // Data lines follow one another: the PIN may already be too long.
        const bool long_pin = data->size() == kMaxPin;
        wipe_string(*data);
        if (long_pin) throw Error(Errc::invalid_params, "the PIN typed is longer than 64 characters");
        throw broken("malformed data");
      }
      continue;
    }
    if (line == "S PIN_REPEATED" || line.starts_with("S PIN_REPEATED ")) confirmed_ = true;
    if (line.starts_with("S ") || line.starts_with("#") || line == "S") continue;
    // INQUIRE and anything else: korttid asked nothing that calls for them.
    throw broken("an answer Assuan does not have here");
  }
}

void Conversation::greeting(Clock::time_point deadline) {
  if (!reply(deadline, nullptr).ok) throw broken("it refused the conversation");
}

void Conversation::command(std::string_view verb, std::string_view argument, Clock::time_point deadline,
                           bool optional) {
  std::string line(verb);
  if (!argument.empty()) {
    line += ' ';
    line += assuan_escape(argument);
  }
  // Longer words are cut rather than refused: the dialog still names who
  // asks. At a character: pinentry-gnome3 refuses a text that is not UTF-8.
  if (line.size() > kMaxLine - 1) line.resize(utf8_prefix(line, kMaxLine - 1).size());
  while (!line.empty() && line.back() == '%') line.pop_back();
  if (line.size() >= 2 && line[line.size() - 2] == '%') line.resize(line.size() - 2);
  line += '\n';
  write_all(line);
  const Reply r = reply(deadline, nullptr);
  if (!r.ok && !optional) throw broken(std::string(verb) + " was refused (code " + std::to_string(r.code) + ")");
}

SecretString Conversation::getpin(Clock::time_point deadline, bool repeated) {
  write_all("GETPIN\n");
  confirmed_ = false;
  std::string pin;
  pin.reserve(kMaxLine);  // no reallocation leaves a copy behind
  Reply r;
  try {
    r = reply(deadline, &pin);
  } catch (...) {
    wipe_string(pin);
    throw;
  }
  if (!r.ok) {
    wipe_string(pin);
    if (r.code == kCanceled || r.code == kFullyCanceled)
      throw Error(Errc::pin_entry_cancelled, "the user cancelled the PIN dialog");
    if (r.code == kTimeout) throw Error(Errc::pin_entry_cancelled, "no PIN was typed in time");
    throw broken("GETPIN failed (code " + std::to_string(r.code) + ")");
  }
  if (pin.empty()) throw Error(Errc::pin_entry_cancelled, "the PIN dialog was closed without a PIN");
  if (repeated && !confirmed_) {
    wipe_string(pin);
    throw broken("it did not confirm the new PIN was typed twice (SETREPEAT)");
  }
  return SecretString::take(pin);
}

void Conversation::confirm(Clock::time_point deadline) {
  write_all("CONFIRM\n");
  const Reply r = reply(deadline, nullptr);
  if (r.ok) return;
  if (r.code == kCanceled || r.code == kFullyCanceled || r.code == kNotConfirmed)
    throw Error(Errc::pin_entry_cancelled, "the user did not confirm");
  if (r.code == kTimeout) throw Error(Errc::pin_entry_cancelled, "the confirmation was not answered in time");
  throw broken("CONFIRM failed (code " + std::to_string(r.code) + ")");
}

void Conversation::bye() noexcept {
  // Its answer does not matter: the program is ended either way.
  [[maybe_unused]] const ssize_t n = ::write(to_, "BYE\n", 4);
}

}  // namespace kortti::pinentry
