#pragma once

// Internal to daemon/ (docs/architecture.md, Layering).
#if !defined(KORTTI_COMPONENT_DAEMON) && !defined(KORTTI_WHITE_BOX)
#error "daemon/user_instance.hpp is internal to daemon/"
#endif

// A per-user instance (korttid --user-instance, korttid-user.service) runs as
// its user, who may not write where the system service keeps its socket,
// tunnels and audit trail: those places are the service user's. Such an
// instance reads its user's own configuration file when there is one, and
// moves what a configuration puts in the service's folders to the user's.

#include <string>
#include <vector>

#include "daemon/config.hpp"

namespace kortti::daemon {

// $XDG_CONFIG_HOME/korttid/korttid.toml (~/.config/korttid/korttid.toml).
std::string user_config_file();

// One setting moved out of the system service's folders.
struct MovedPath {
  std::string key;  // as in korttid.toml: "audit.file", "tls.upstream sso listen"
  std::string from;
  std::string to;
};

// Moves `ipc.socket` and tunnel listeners under /run/korttid/ to
// $XDG_RUNTIME_DIR/korttid/, and `audit.file` under /var/log/korttid/ to
// $XDG_STATE_HOME/korttid/, keeping the rest of each path. The registry
// stays where it is: moving it would hide the administrator's import
// behind an empty one of the user's (docs/operations.md).
std::vector<MovedPath> move_to_user_folders(Config& config);

// Makes the folders the moved paths are in (mode 0700), so the instance
// can create its files there. std::runtime_error naming the folder if not.
void make_user_folders(const std::vector<MovedPath>& moved);

}  // namespace kortti::daemon
