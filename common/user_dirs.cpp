#include "common/user_dirs.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace kortti {

std::string user_home() {
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home != '\0') return home;
  const passwd* pw = ::getpwuid(::getuid());
  return pw != nullptr ? pw->pw_dir : "/";
}

namespace {

// The XDG rules ignore a variable that is empty or not an absolute path.
std::string xdg(const char* variable, const std::string& otherwise) {
  const char* value = std::getenv(variable);
  return value != nullptr && *value == '/' ? std::string(value) : otherwise;
}

}  // namespace

std::string user_data_home() { return xdg("XDG_DATA_HOME", user_home() + "/.local/share"); }
std::string user_config_home() { return xdg("XDG_CONFIG_HOME", user_home() + "/.config"); }
std::string user_state_home() { return xdg("XDG_STATE_HOME", user_home() + "/.local/state"); }
std::string user_runtime_dir() { return xdg("XDG_RUNTIME_DIR", "/run/user/" + std::to_string(::getuid())); }

}  // namespace kortti
