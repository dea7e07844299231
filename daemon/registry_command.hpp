#pragma once

// Internal to daemon/ (docs/architecture.md, Layering).
#if !defined(KORTTI_COMPONENT_DAEMON) && !defined(KORTTI_WHITE_BOX)
#error "daemon/registry_command.hpp is internal to daemon/"
#endif

#include <string>

#include "daemon/config.hpp"

namespace kortti::daemon {

// `korttid registry ...`: works on the registry file directly, next to a
// running daemon (SQLite WAL: the daemon sees the old set until the import
// commits, then the new one).
struct RegistryCommand {
  enum class Kind { import_professionals, import_codes, status } kind = Kind::status;
  std::string file;
  std::string source;  // import: a name for the extract
  std::string code_set;
};

// Prints what happened; returns the exit status (0, 65 bad data, 74 cannot
// open or write the registry).
int run_registry_command(const Config& config, const RegistryCommand& command);

}  // namespace kortti::daemon
