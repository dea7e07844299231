#pragma once

// JSON-RPC 2.0 framing rules of protocol.md, as pure functions.

#include <string_view>
#include <variant>

#include "common/error.hpp"
#include "common/json.hpp"

namespace kortti::ipc {

struct Request {
  Json id;
  std::string method;
  Json params;  // always an object
};

// One line from a client: the request, or the error response to send back
// (parse_error, or invalid_request with the id where one could be read).
std::variant<Request, Json> parse_request(std::string_view line);

Json make_result(const Json& id, Json result);
Json make_error(const Json& id, const Error& error, std::string_view correlation_id = {});
Json make_event(std::string_view topic, Json params);

}  // namespace kortti::ipc
