#pragma once

#include <string>

#include "common/secret.hpp"

namespace kortti::client {

// Reads one line (the PIN) from an open file descriptor, at most 64 bytes.
SecretString read_pin_from_fd(int fd);

// Asks on the controlling terminal with echo off. Throws std::runtime_error
// when there is no terminal (use --pin-fd then).
SecretString prompt_pin(const std::string& prompt);

}  // namespace kortti::client
