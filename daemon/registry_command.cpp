#include "daemon/registry_command.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "policy/policy.hpp"

namespace kortti::daemon {

namespace {
constexpr int kExitDataError = 65;  // EX_DATAERR
constexpr int kExitIoError = 74;    // EX_IOERR

// Run by root, the command becomes the owner of the registry's folder (the
// daemon's user, /var/lib/korttid): files root created there would be
// unwritable for the daemon, and SQLite's WAL needs its readers to write.
void become_owner_of(const std::filesystem::path& dir) {
  struct stat st {};
  if (geteuid() != 0 || ::stat(dir.c_str(), &st) != 0 || st.st_uid == 0) return;
  const passwd* pw = getpwuid(st.st_uid);
  if (setgroups(0, nullptr) != 0 || setgid(st.st_gid) != 0 || setuid(st.st_uid) != 0)
    throw std::runtime_error("cannot become " + std::string(pw ? pw->pw_name : std::to_string(st.st_uid)) +
                             ", the owner of " + dir.string());
  std::cerr << "korttid registry: running as " << (pw ? pw->pw_name : std::to_string(st.st_uid)) << ", the owner of "
            << dir.string() << "\n";
}

int import_professionals(policy::Registry& registry, const RegistryCommand& command, std::istream& input,
                         const std::string& path) {
  const std::string source =
      command.source.empty() ? std::filesystem::path(command.file).filename().string() : command.source;
  const auto r = registry.import_professionals(input, source);
  std::cout << "imported " << r.records << " professionals from " << command.file << " into " << path << "\n  source "
            << source << ", sha256 " << r.provenance.sha256 << "\n";
  auto warn = [](const char* what, const std::set<std::string>& codes) {
    if (codes.empty()) return;
    std::cout << "  warning: " << what << " not in the imported code set:";
    for (const auto& c : codes) std::cout << " " << c;
    std::cout << "\n";
  };
  warn("rights codes", r.unknown_rights);
  warn("restriction targets", r.unknown_targets);
  return 0;
}

int import_codes(policy::Registry& registry, const RegistryCommand& command, std::istream& input) {
  const bool csv = std::filesystem::path(command.file).extension() == ".csv";
  const auto n = registry.import_codes(command.code_set, input, csv);
  std::cout << "imported " << n << " codes of " << command.code_set << " from " << command.file << "\n";
  return 0;
}

int print_status(policy::Registry& registry, const Config& config, const std::string& path) {
  const auto p = registry.provenance();
  if (!p.imported_at) {
    std::cout << path << ": no professionals imported yet\n";
  } else {
    const auto age = std::chrono::duration_cast<std::chrono::hours>(std::chrono::system_clock::now() - *p.imported_at);
    const bool stale = age > config.rules.registry.max_age;
    std::cout << path << ": " << p.records << " professionals from " << p.source << ", imported "
              << to_rfc3339(*p.imported_at) << " (" << age.count() << " h ago"
              << (stale ? ", STALE: older than registry.max_age_h" : "") << "), sha256 " << p.sha256 << "\n";
  }
  const auto counts = registry.code_counts();
  for (const auto& set : policy::kCodeSets) {
    auto it = counts.find(set);
    std::cout << "  code set " << set << ": "
              << (it == counts.end() ? std::string("not imported") : std::to_string(it->second) + " codes") << "\n";
  }
  return 0;
}

}  // namespace

int run_registry_command(const Config& config, const RegistryCommand& command) {
  const std::string& path = config.registry_database;
  std::unique_ptr<policy::Registry> registry;
  // The input is opened first, as whoever ran the command: an admin's file
  // need not be readable by the daemon's user.
  std::ifstream input;
  if (command.kind != RegistryCommand::Kind::status) {
    input.open(command.file, std::ios::binary);
    if (!input) {
      std::cerr << "korttid registry: cannot read " << command.file << "\n";
      return kExitIoError;
    }
  }
  // The extract holds personal identity codes: the registry is for its
  // owner and group only.
  ::umask(0027);
  try {
    if (command.kind != RegistryCommand::Kind::status) {
      const auto dir = std::filesystem::path(path).parent_path();
      if (!dir.empty()) std::filesystem::create_directories(dir);
    }
    become_owner_of(std::filesystem::absolute(path).parent_path());
    registry = std::make_unique<policy::Registry>(path, command.kind == RegistryCommand::Kind::status);
  } catch (const std::exception& e) {
    std::cerr << "korttid registry: " << e.what() << "\n";
    return kExitIoError;
  }
  try {
    switch (command.kind) {
      case RegistryCommand::Kind::import_professionals:
        return import_professionals(*registry, command, input, path);
      case RegistryCommand::Kind::import_codes:
        return import_codes(*registry, command, input);
      case RegistryCommand::Kind::status:
        return print_status(*registry, config, path);
    }
  } catch (const std::invalid_argument& e) {
    std::cerr << "korttid registry: " << command.file << ": " << e.what() << "\n"
              << "korttid registry: nothing was changed; the previous set stays\n";
    return kExitDataError;
  } catch (const std::exception& e) {
    std::cerr << "korttid registry: " << e.what() << "\n";
    return kExitIoError;
  }
  return kExitIoError;
}

}  // namespace kortti::daemon
