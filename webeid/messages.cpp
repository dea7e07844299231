#include "webeid/messages.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace kortti::webeid {

namespace {

// Reads exactly `size` bytes, however the pipe hands them over; false at
// the end of input.
bool read_exactly(int fd, void* into, std::size_t size) {
  auto* p = static_cast<unsigned char*>(into);
  std::size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, p + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Failure(kFatal, std::string("cannot read the browser's message: ") + std::strerror(errno));
    if (n == 0) return false;
    got += static_cast<std::size_t>(n);
  }
  return true;
}

void write_all(int fd, const void* from, std::size_t size) {
  const auto* p = static_cast<const unsigned char*>(from);
  std::size_t sent = 0;
  while (sent < size) {
    const ssize_t n = ::write(fd, p + sent, size - sent);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Failure(kFatal, std::string("cannot write to the browser: ") + std::strerror(errno));
    sent += static_cast<std::size_t>(n);
  }
}

}  // namespace

Json read_message(int fd) {
  std::uint32_t length = 0;
  if (!read_exactly(fd, &length, sizeof length))
    throw Failure(kFatal, "the browser closed the connection before sending a command");
  if (length < kMinRequest || length > kMaxRequest)
    throw Failure(kFatal, "a message of " + std::to_string(length) + " bytes; a command is " +
                              std::to_string(kMinRequest) + " to " + std::to_string(kMaxRequest) + " bytes");
  std::string text(length, '\0');
  if (!read_exactly(fd, text.data(), text.size()))
    throw Failure(kFatal, "the message ended after fewer bytes than its length said");
  // Invalid UTF-8 fails the parse as well.
  Json message = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (message.is_discarded() || !message.is_object()) throw Failure(kFatal, "the message is not a JSON object");
  return message;
}

void write_message(int fd, const Json& message) {
  const auto text = message.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > kMaxReply)
    throw Failure(kFatal, "the answer is " + std::to_string(text.size()) + " bytes, more than a browser reads");
  const auto length = static_cast<std::uint32_t>(text.size());
  write_all(fd, &length, sizeof length);
  write_all(fd, text.data(), text.size());
}

Json error_message(const std::string& code, const std::string& message) {
  return {{"error", {{"code", wstr(code)}, {"message", wstr(message)}}}};
}

}  // namespace kortti::webeid
