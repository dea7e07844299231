// The config file: load_config on the input as a file. Its contract is that
// every problem is a ConfigError (korttid prints them at start and keeps the
// old config on SIGHUP, catching nothing else), so any other exception is a
// finding.

#include <spdlog/spdlog.h>

#include "daemon/config.hpp"
#include "fuzz/support.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const kortti::fuzz::MemoryFile file(data, size);
  try {
    (void)kortti::daemon::load_config(file.path());
  } catch (const kortti::daemon::ConfigError&) {
  } catch (const std::exception& e) {
    kortti::fuzz::unexpected_exception("config", e);
  }
  return 0;
}
