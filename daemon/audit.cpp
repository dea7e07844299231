#include "daemon/audit.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include "common/json.hpp"
#include "common/time.hpp"

namespace kortti::daemon {

AuditLog::AuditLog(const std::string& file) {
  if (file.empty()) {
    logger_ = spdlog::default_logger()->clone("audit");
  } else {
    logger_ = spdlog::basic_logger_mt("audit", file);
    logger_->set_pattern("%v");
    logger_->flush_on(spdlog::level::info);
  }
}

void AuditLog::record(const ipc::AuditRecord& r) {
  Json line = {{"time", wstr(to_rfc3339(std::chrono::system_clock::now()))},
               {"action", wstr(r.action)},
               {"uid", r.peer.uid},
               {"gid", r.peer.gid},
               {"pid", r.peer.pid},
               {"connection", r.peer.connection},
               {"outcome", wstr(r.outcome)},
               {"delivered", r.delivered}};
  if (!r.peer.client.empty()) line["client"] = wstr(r.peer.client);
  if (!r.token_id.empty()) line["token_id"] = wstr(r.token_id);
  if (!r.cert_id.empty()) line["cert_id"] = wstr(r.cert_id);
  if (!r.subject.empty()) line["subject"] = wstr(r.subject);
  if (!r.digest_hex.empty()) {
    line["digest_algorithm"] = wstr(r.digest_algorithm);
    line["digest"] = wstr(r.digest_hex);
  }
  if (!r.detail.empty()) line["detail"] = wstr(r.detail);
  logger_->info("{}", to_std(line.dump()));
}

}  // namespace kortti::daemon
