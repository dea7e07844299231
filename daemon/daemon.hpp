#pragma once

// Internal to daemon/ (docs/architecture.md, Layering).
#if !defined(KORTTI_COMPONENT_DAEMON) && !defined(KORTTI_WHITE_BOX)
#error "daemon/daemon.hpp is internal to daemon/"
#endif

// korttid as it runs: the components made from one configuration, started,
// reloaded on SIGHUP and taken down in order on SIGTERM or SIGINT.

#include <string>

#include "daemon/config.hpp"

namespace kortti::daemon {

// How korttid was started: where its configuration came from (a reload reads
// it again), and whether it is a user's own instance.
struct Invocation {
  std::string config_path;
  bool explicit_path = false;  // named by --config: it must exist at a reload too
  bool user_instance = false;
};

// SIGHUP's default action ends a process. Called before korttid starts its
// components, this blocks it in the calling thread (so in every thread made
// from it) until run_daemon() listens for signals: a reload asked for in
// between then happens once korttid is ready (READY=1).
void hold_reloads();

// Serves until SIGTERM or SIGINT; the exit status. `config` is the one
// loaded at start, and after each reload the one in force.
int run_daemon(Config& config, const Invocation& how);

}  // namespace kortti::daemon
