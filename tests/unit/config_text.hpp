#pragma once
// Configuration text written to a file and loaded, as korttid loads it: the
// config and config-schema tests share it (one function, so that the unity
// build sees it once).
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "tests/support/support.hpp"

namespace kortti::daemon::test_config {

// Loads `toml`; where it was written goes to *file when asked.
inline Config load_text(const std::string& toml, std::string* file = nullptr) {
  static test::TempDir dir;
  static int n = 0;
  const auto path = dir / ("c" + std::to_string(n++) + ".toml");
  test::write_file(path, toml);
  if (file != nullptr) *file = path.string();
  return load_config(path.string());
}

// What load_config found wrong with `toml`; empty if it loaded.
inline std::vector<std::string> problems_of(const std::string& toml, std::string* file = nullptr) {
  try {
    (void)load_text(toml, file);
  } catch (const ConfigError& e) {
    return e.problems();
  }
  return {};
}

}  // namespace kortti::daemon::test_config
