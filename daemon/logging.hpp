#pragma once

// Internal to daemon/ (docs/architecture.md, Layering).
#if !defined(KORTTI_COMPONENT_DAEMON) && !defined(KORTTI_WHITE_BOX)
#error "daemon/logging.hpp is internal to daemon/"
#endif

#include "daemon/config.hpp"

namespace kortti::daemon {

// Points the default logger at stderr or the journal, at the configured level.
void setup_logging(const Config::Log& log);
void set_log_level(const std::string& level);

// No core dumps and no ptrace by other processes of the same user (PINs live
// in this process for a moment); SIGPIPE ignored.
void harden_process();

}  // namespace kortti::daemon
