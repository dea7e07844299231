#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kortti {

// The failure vocabulary of protocol.md. Components below ipc/ raise these
// without knowing about JSON; ipc/ turns them into JSON-RPC error objects.
enum class Errc : int {
  parse_error = -32700,
  invalid_request = -32600,
  method_not_found = -32601,
  invalid_params = -32602,
  internal_error = -32603,
  reader_not_found = 1001,
  token_not_found = 1002,
  not_found = 1003,
  pin_required = 1010,
  pin_incorrect = 1011,
  pin_locked = 1012,
  pin_entry_cancelled = 1013,
  card_removed = 1020,
  token_busy = 1021,
  policy_denied = 1030,
  certificate_invalid = 1031,
  permission_denied = 1040,
  unsupported = 1050,
  document_invalid = 1051,
  service_unavailable = 1060,
};

// The stable `error.data.reason` string of protocol.md.
std::string_view reason_of(Errc code) noexcept;

// One machine-readable reason, as used by policy denials.
struct Reason {
  std::string code;
  std::string message;
};

// An error a client can act on. The message is one line, for a person; the
// optional fields carry the details protocol.md names for some codes. Nothing
// secret ever goes into an Error.
class Error : public std::runtime_error {
 public:
  Error(Errc code, const std::string& message) : std::runtime_error(message), code_(code) {}

  [[nodiscard]] Errc code() const noexcept { return code_; }

  std::optional<int> tries_left;  // pin_incorrect
  std::string detail;             // certificate_invalid, document_invalid, ...
  std::vector<Reason> reasons;    // policy_denied
  std::string correlation_id;     // internal_error: names its log line

  Error&& with_tries_left(std::optional<int> n) && {
    tries_left = n;
    return std::move(*this);
  }
  Error&& with_detail(std::string d) && {
    detail = std::move(d);
    return std::move(*this);
  }
  Error&& with_reasons(std::vector<Reason> r) && {
    reasons = std::move(r);
    return std::move(*this);
  }

  // A copy whose message shares no memory with this one, to hand to another
  // thread: libstdc++'s exception copies share one message buffer, counted
  // in code ThreadSanitizer cannot see.
  [[nodiscard]] Error unshared() const {
    Error copy = *this;
    static_cast<std::runtime_error&>(copy) = std::runtime_error(std::string(what()));
    return copy;
  }

 private:
  Errc code_;
};

// A bug met at `where` (a method, a thread): logs `what` with a fresh
// correlation id and returns the internal_error a client gets instead. The
// client sees the id, never the internal text.
Error internal_error(std::string_view where, std::string_view what);

}  // namespace kortti
