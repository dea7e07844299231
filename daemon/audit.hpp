#pragma once

// Internal to daemon/ (docs/architecture.md, Layering).
#if !defined(KORTTI_COMPONENT_DAEMON) && !defined(KORTTI_WHITE_BOX)
#error "daemon/audit.hpp is internal to daemon/"
#endif

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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
// before record() reports true. Without a file the lines go to the main log
// under the "audit" logger, unchained.
//
// The file is written on a thread of its own, never the io thread, and by
// group commit: the lines that arrive while one fdatasync runs are written
// together and made durable by the next one. A disk flush costs one
// signature its latency, not every signature behind it. A noted line is
// written at once and made durable by the next flush someone waits for, or
// kLazySync after it: a signature's outcome line does not put a flush of
// its own in front of the next signature's begun line (the lazy sync may,
// at most once per kLazySync). A failed sync cuts the file back to the last
// durable line and the chain goes on from there.
class AuditLog final : public service::AuditSink {
 public:
  explicit AuditLog(const std::string& file);
  ~AuditLog() override;
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // `done(false)`, with the reason logged, when the line is not on disk
  // (disk full, file removed and not re-creatable, permissions).
  void record(service::AuditRecord record, std::function<void(bool)> done) override;
  void note(service::AuditRecord record) override;

  // Writes what is queued and ends the writer's thread, waiting at most
  // `timeout`; false if it is still stuck (a disk that does not answer).
  // The destructor does it too, for a korttid that never reached shutdown.
  bool stop(std::chrono::milliseconds timeout);

 private:
  struct Chain;
  std::shared_ptr<spdlog::logger> logger_;  // without a file
  std::shared_ptr<Chain> chain_;            // with one
};

// How long a noted line may wait for its fdatasync when no other line comes.
inline constexpr std::chrono::milliseconds kLazySync{100};

// The first line of a chain with no predecessor korttid knows of names this
// instead of a hash (a new trail, or a restart after the file was moved).
inline constexpr const char* kChainStart = "start";

// `korttid audit verify [--last-known HASH] FILE...`: checks the chain
// through the files in the order given (oldest first). Prints what it
// found; returns 0 when every line is intact and linked, 1 at the first
// broken or missing line (or when no line hashes to `last_known`, a last
// hash an earlier verify printed and someone kept elsewhere), 2 when every
// line is intact but the chain starts anew after its beginning (a link that
// cannot be checked), 74 when a file cannot be read.
int verify_audit_files(const std::vector<std::string>& files, const std::optional<std::string>& last_known);

// A hash as the chain writes it (and --last-known takes it): SHA-256 in 64
// lowercase hex digits.
bool is_sha256_hex(std::string_view text);

// The hash of a line as the next line's `prev` names it.
std::string line_hash(std::string_view line);

}  // namespace kortti::daemon
