#include "daemon/user_instance.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "common/user_dirs.hpp"

namespace kortti::daemon {

namespace {

constexpr std::string_view kServiceRuntime = "/run/korttid/";
constexpr std::string_view kServiceLogs = "/var/log/korttid/";

void move(std::vector<MovedPath>& moved, std::string key, std::string& path, std::string_view service_folder,
          const std::string& user_folder) {
  if (!path.starts_with(service_folder)) return;
  std::string to = user_folder + "/korttid/" + path.substr(service_folder.size());
  moved.push_back({std::move(key), path, to});
  path = std::move(to);
}

}  // namespace

std::string user_config_file() { return user_config_home() + "/korttid/korttid.toml"; }

std::vector<MovedPath> move_to_user_folders(Config& config) {
  std::vector<MovedPath> moved;
  const std::string runtime = user_runtime_dir();
  move(moved, "ipc.socket", config.ipc.socket, kServiceRuntime, runtime);
  for (auto& u : config.tls.upstreams)
    move(moved, "tls.upstream " + u.name + " listen", u.listen, kServiceRuntime, runtime);
  move(moved, "audit.file", config.audit.file, kServiceLogs, user_state_home());
  return moved;
}

void make_user_folders(const std::vector<MovedPath>& moved) {
  for (const auto& m : moved) {
    // Each folder made here is the user's alone, as the service's are its
    // own: mkdir's mode, not the umask, which other threads' files share.
    std::filesystem::path made;
    for (const auto& part : std::filesystem::path(m.to).parent_path()) {
      made /= part;
      if (::mkdir(made.c_str(), 0700) != 0 && errno != EEXIST)
        throw std::runtime_error("cannot make " + made.string() + " for " + m.key + ": " + std::strerror(errno));
    }
  }
}

}  // namespace kortti::daemon
