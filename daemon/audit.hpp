#pragma once

#include <memory>
#include <string>

#include "ipc/ipc.hpp"

namespace spdlog {
class logger;
}

namespace kortti::daemon {

// The audit trail: one JSON object per line, to its own file or, without
// one, to the main log under the "audit" logger.
class AuditLog final : public ipc::AuditSink {
 public:
  explicit AuditLog(const std::string& file);
  void record(const ipc::AuditRecord& record) override;

 private:
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace kortti::daemon
