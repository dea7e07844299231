#pragma once

// Internal to daemon/ (docs/architecture.md, Layering).
#if !defined(KORTTI_COMPONENT_DAEMON) && !defined(KORTTI_WHITE_BOX)
#error "daemon/audit.hpp is internal to daemon/"
#endif

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "service/service.hpp"

namespace spdlog {
class logger;
}

namespace kortti::daemon {

// The audit trail: one JSON object per line. With a file, the lines form a
// hash chain — each carries its sequence number `seq` and `prev`, the
// SHA-256 of the line before it (across rotations: a new file's first line
// names the old file's last) — and each is on stable storage (fdatasync)
// before record() returns true. Without a file the lines go to the main log
// under the "audit" logger, unchained.
class AuditLog final : public service::AuditSink {
 public:
  explicit AuditLog(const std::string& file);
  ~AuditLog() override;
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // False, with the reason logged, when the line is not on disk (disk full,
  // file removed and not re-creatable, permissions).
  bool record(const service::AuditRecord& record) override;

 private:
  bool write_line(std::string line);
  bool reopen_if_moved();

  std::string file_;
  std::shared_ptr<spdlog::logger> logger_;  // without a file
  std::mutex mutex_;
  int fd_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  std::uint64_t seq_ = 0;
  std::string prev_hash_;  // of the last line written, hex
};

// The first line of a chain with no predecessor korttid knows of names this
// instead of a hash (a new trail, or a restart after the file was moved).
inline constexpr const char* kChainStart = "start";

// `korttid audit verify FILE...`: checks the chain through the files in the
// order given (oldest first). Prints what it found; returns 0 when every line
// is intact and linked, 1 at the first broken or missing line, 2 when every
// line is intact but the chain starts anew after its beginning (a link that
// cannot be checked), 74 when a file cannot be read.
int verify_audit_files(const std::vector<std::string>& files);

}  // namespace kortti::daemon
