#pragma once

// Internal to ipc/ (docs/architecture.md, Layering); include ipc/ipc.hpp.
#if !defined(KORTTI_COMPONENT_IPC) && !defined(KORTTI_WHITE_BOX)
#error "ipc/jsonrpc.hpp is internal to ipc/; include ipc/ipc.hpp"
#endif

// JSON-RPC 2.0 framing rules of protocol.md, as pure functions.

#include <cstddef>
#include <string>
#include <string_view>
#include <variant>

#include "common/error.hpp"
#include "common/json.hpp"

namespace kortti::ipc {

struct Request {
  Json id;
  std::string method;
  Json params;  // always an object
  // The params member sent as raw bytes after the line (protocol.md,
  // attachments); the result member of that name goes back the same way.
  std::string attachment;
  // What it took on the wire, its attachment included: what it holds in
  // memory while it waits (the PIN gate's bound).
  std::size_t bytes = 0;
};

// One line from a client, parsed.
struct Incoming {
  // The request, or the error response to send back (parse_error, or
  // invalid_request with the id where one could be read).
  std::variant<Request, Json> message;
  // Raw bytes that follow the line and belong to it: the request's
  // attachment, to be read (or skipped, after an error) before the next line.
  std::size_t attachment_bytes = 0;
  // The line announced an attachment korttid cannot frame (malformed, or over
  // the limit): where the next message starts is unknown, so after the error
  // the connection closes.
  bool framing_lost = false;
};

Incoming parse_request(std::string_view line, std::size_t max_attachment_bytes);

// A string id of at most this many bytes is taken (and repeated in each
// answer to its request); a longer one is invalid_request without an id.
inline constexpr std::size_t kMaxIdBytes = 256;
// What an answer repeats of a name the client sent (an unknown method, an
// attachment's member): at most kMaxEchoBytes, cut before a character,
// "..." marking a cut. A 16 MiB name must not make a 16 MiB answer that
// waits in memory for a client that does not read.
inline constexpr std::size_t kMaxEchoBytes = 64;
std::string echo(std::string_view name);

Json make_result(const Json& id, Json result);
Json make_error(const Json& id, const Error& error);
Json make_event(std::string_view topic, Json params);

}  // namespace kortti::ipc
