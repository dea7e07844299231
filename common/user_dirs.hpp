#pragma once

// A user's own folders, as the XDG base directory rules name them: where
// `kortti scs setup` writes the SCS listener's files and korttid's [scs]
// looks for them, so that both find the same place; and where a per-user
// korttid finds its configuration and keeps its audit trail.

#include <string>

namespace kortti {

// $HOME, else the password database's home of this process's user.
std::string user_home();
// $XDG_DATA_HOME, else user_home()/.local/share.
std::string user_data_home();
// $XDG_CONFIG_HOME, else user_home()/.config.
std::string user_config_home();
// $XDG_STATE_HOME, else user_home()/.local/state.
std::string user_state_home();
// $XDG_RUNTIME_DIR, else /run/user/UID (where systemd makes it).
std::string user_runtime_dir();

}  // namespace kortti
