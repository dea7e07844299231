#include "daemon/logging.hpp"

#include <csignal>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>

#include "common/secret.hpp"

namespace kortti::daemon {

void setup_logging(const Config::Log& log) {
  std::shared_ptr<spdlog::logger> logger;
  if (log.target == "journal") {
    logger = std::make_shared<spdlog::logger>("korttid", std::make_shared<spdlog::sinks::systemd_sink_mt>("korttid"));
    logger->set_pattern("%v");
  } else {
    logger = std::make_shared<spdlog::logger>("korttid", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
  }
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  set_log_level(log.level);
}

void set_log_level(const std::string& level) { spdlog::set_level(spdlog::level::from_str(level)); }

void harden_process() {
  std::signal(SIGPIPE, SIG_IGN);
  keep_out_of_core_dumps();
}

}  // namespace kortti::daemon
