#pragma once

// Internal to webeid/ (docs/architecture.md, Layering).
#if !defined(KORTTI_COMPONENT_WEBEID) && !defined(KORTTI_WHITE_BOX)
#error "webeid/messages.hpp is internal to webeid/"
#endif

// Native messaging as the browsers frame it: a 32-bit length in this
// machine's byte order, then that many bytes of UTF-8 JSON (docs/browsers.md).

#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>

#include "common/json.hpp"

namespace kortti::webeid {

// The bounds web-eid-app keeps: a request of 5 to 8192 bytes (the Web eID
// extension sends no more); a reply of at most what a browser reads from a
// host (1 MiB).
inline constexpr std::size_t kMinRequest = 5;
inline constexpr std::size_t kMaxRequest = 8192;
inline constexpr std::size_t kMaxReply = 1024 * 1024;

// The two error codes a Web eID host sends: the user said no (cancelled the
// PIN dialog), or anything else, the message saying what.
inline constexpr const char* kCancelled = "ERR_WEBEID_USER_CANCELLED";
inline constexpr const char* kFatal = "ERR_WEBEID_NATIVE_FATAL";

// A failure the browser hears of as {"error": {"code", "message"}}.
class Failure : public std::runtime_error {
 public:
  Failure(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  [[nodiscard]] const std::string& code() const noexcept { return code_; }

 private:
  std::string code_;
};

// One message from `fd`: Failure(kFatal) at the end of input, for a length
// outside kMinRequest..kMaxRequest, for fewer bytes than the length said, or
// for text that is not a JSON object.
Json read_message(int fd);
// Writes `message` compactly; Failure(kFatal) if it is over kMaxReply or
// cannot be written.
void write_message(int fd, const Json& message);
// {"error": {"code": code, "message": message}}
Json error_message(const std::string& code, const std::string& message);

}  // namespace kortti::webeid
