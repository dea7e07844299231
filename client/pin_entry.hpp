#pragma once

// Internal to client/ (docs/architecture.md, Layering); include client/client.hpp.
#if !defined(KORTTI_COMPONENT_CLIENT) && !defined(KORTTI_WHITE_BOX)
#error "client/pin_entry.hpp is internal to client/; include client/client.hpp"
#endif

#include <string>

#include "common/secret.hpp"

namespace kortti::client {

// Reads one line (the PIN) from an open file descriptor, at most 64 bytes of
// text; throws on a read error, an empty line, bytes that are not text, or
// a terminal (which would echo it).
SecretString read_pin_from_fd(int fd);

// Asks on the controlling terminal with echo off. Throws std::runtime_error
// when there is no terminal (use --pin-fd then).
SecretString prompt_pin(const std::string& prompt);

}  // namespace kortti::client
