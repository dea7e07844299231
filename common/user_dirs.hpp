#pragma once

// A user's own folders, as the XDG base directory rules name them: where
// `kortti scs setup` writes the SCS listener's files and korttid's [scs]
// looks for them, so that both find the same place.

#include <string>

namespace kortti {

// $HOME, else the password database's home of this process's user.
std::string user_home();
// $XDG_DATA_HOME, else user_home()/.local/share.
std::string user_data_home();

}  // namespace kortti
