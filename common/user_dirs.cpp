#include "common/user_dirs.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

namespace kortti {

std::string user_home() {
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home != '\0') return home;
  const passwd* pw = ::getpwuid(::getuid());
  return pw != nullptr ? pw->pw_dir : "/";
}

std::string user_data_home() {
  const char* data = std::getenv("XDG_DATA_HOME");
  return data != nullptr && *data != '\0' ? std::string(data) : user_home() + "/.local/share";
}

}  // namespace kortti
