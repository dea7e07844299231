#pragma once

// Internal to webeid/ (docs/architecture.md, Layering).
#if !defined(KORTTI_COMPONENT_WEBEID) && !defined(KORTTI_WHITE_BOX)
#error "webeid/commands.hpp is internal to webeid/"
#endif

// The Web eID extension's commands, carried out by korttid: authenticate
// (auth.token), get-signing-certificate (certificates.share) and sign
// (sign.digest with the signature key), each for the page's origin, the PIN
// always asked by korttid's own dialog (pin_prompt), never seen here.

#include <functional>
#include <string>

#include "client/client.hpp"
#include "common/json.hpp"

namespace kortti::webeid {

// The web-eid-app release whose messages this host speaks, and the version
// it announces first: "2.9.0+kortti.<kortti's version>". The extension
// compares the major number with its own.
inline constexpr const char* kWebEidVersion = "2.9.0";
std::string announced_version();

// Connects to korttid when a command first needs it (after its arguments
// passed): quit and a malformed command never do.
using Connect = std::function<client::Client&()>;

// The answer to one request ({"command", "arguments"}); Failure or a
// korttid error (client::RpcError) when there is none.
Json run_command(const Json& request, const Connect& korttid);

}  // namespace kortti::webeid
