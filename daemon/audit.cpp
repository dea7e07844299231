#include "daemon/audit.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include "common/digest.hpp"
#include "common/json.hpp"
#include "common/time.hpp"

namespace kortti::daemon {

namespace {

std::string hash_of(std::string_view line) {
  return sha256_hex(ByteView(reinterpret_cast<const std::uint8_t*>(line.data()), line.size()));
}

// The last non-empty line of a file, or empty.
std::string last_line(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  std::string line;
  std::string last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last;
}

Json to_line(const service::AuditRecord& r) {
  Json line = {{"time", wstr(to_rfc3339(std::chrono::system_clock::now()))},
               {"action", wstr(r.action)},
               {"uid", r.caller.uid},
               {"gid", r.caller.gid},
               {"pid", r.caller.pid},
               {"connection", r.caller.connection},
               {"outcome", wstr(r.outcome)},
               {"delivered", r.delivered}};
  if (!r.caller.client.empty()) line["client"] = wstr(r.caller.client);
  if (!r.token_id.empty()) line["token_id"] = wstr(r.token_id);
  if (!r.cert_id.empty()) line["cert_id"] = wstr(r.cert_id);
  if (!r.subject.empty()) line["subject"] = wstr(r.subject);
  if (!r.digest_hex.empty()) {
    line["digest_algorithm"] = wstr(r.digest_algorithm);
    line["digest"] = wstr(r.digest_hex);
  }
  if (!r.detail.empty()) line["detail"] = wstr(r.detail);
  return line;
}

// Names and subjects come from clients and cards: a byte that is not UTF-8
// is replaced, never allowed to throw; the line is still written.
std::string dump(const Json& line) { return to_std(line.dump(-1, ' ', false, Json::error_handler_t::replace)); }

}  // namespace

AuditLog::AuditLog(const std::string& file) : file_(file) {
  if (file.empty()) {
    logger_ = spdlog::default_logger()->clone("audit");
    return;
  }
  // Carry on the chain of the file as it is.
  const std::string last = last_line(file);
  if (!last.empty()) {
    const Json parsed = Json::parse(last, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_object() && parsed.contains("seq") && parsed["seq"].is_number_unsigned()) {
      seq_ = parsed["seq"].get<std::uint64_t>();
    } else {
      spdlog::warn("audit: the last line of {} has no sequence number; the chain starts anew after it", file);
    }
    prev_hash_ = hash_of(last);
  }
  if (!reopen_if_moved()) throw std::runtime_error("cannot open the audit file " + file + ": " + std::strerror(errno));
}

AuditLog::~AuditLog() {
  if (fd_ >= 0) ::close(fd_);
}

// logrotate moves the file away; the next line goes to a new file at the
// configured path, still chained to the last line of the old one.
bool AuditLog::reopen_if_moved() {
  struct stat st {};
  if (fd_ >= 0 && ::stat(file_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) return true;
  const int fd = ::open(file_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return false;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return false;
  }
  if (fd_ >= 0) {
    ::close(fd_);
    spdlog::info("audit: {} was moved; continuing the chain in a new file", file_);
  }
  fd_ = fd;
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  return true;
}

bool AuditLog::record(const service::AuditRecord& record) {
  Json line = to_line(record);
  if (logger_) {
    logger_->info("{}", dump(line));
    return true;
  }
  std::lock_guard lock(mutex_);
  line["seq"] = seq_ + 1;
  line["prev"] = wstr(prev_hash_.empty() ? kChainStart : prev_hash_);
  return write_line(dump(line));
}

bool AuditLog::write_line(std::string line) {
  auto fail = [&](const char* what) {
    spdlog::error("audit: cannot {} {}: {}; refusing what needed this line", what, file_, std::strerror(errno));
    return false;
  };
  if (!reopen_if_moved()) return fail("open");
  const off_t end = ::lseek(fd_, 0, SEEK_END);
  const std::string text = line + "\n";
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd_, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      // A half line would break every later check: take it back.
      if (end >= 0 && ::ftruncate(fd_, end) != 0) spdlog::error("audit: cannot cut a partial line from {}", file_);
      errno = err;
      return fail("write");
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fdatasync(fd_) != 0) {
    const int err = errno;
    if (end >= 0 && ::ftruncate(fd_, end) != 0) spdlog::error("audit: cannot cut an unsynced line from {}", file_);
    errno = err;
    return fail("sync");
  }
  ++seq_;
  prev_hash_ = hash_of(line);
  return true;
}

int verify_audit_files(const std::vector<std::string>& files) {
  std::uint64_t seq = 0;
  std::string prev;
  std::string prev_where;
  std::uint64_t lines = 0;
  std::uint64_t restarts = 0;
  for (const std::string& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::cerr << "korttid audit verify: cannot read " << file << "\n";
      return 74;
    }
    std::size_t number = 0;
    for (std::string line; std::getline(in, line);) {
      ++number;
      const std::string where = file + ":" + std::to_string(number) + ": ";
      const Json parsed = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!parsed.is_object() || !parsed.contains("seq") || !parsed["seq"].is_number_unsigned() ||
          !parsed.contains("prev") || !parsed["prev"].is_string()) {
        std::cout << where << "BROKEN: not an audit line with seq and prev\n";
        return 1;
      }
      const auto line_seq = parsed["seq"].get<std::uint64_t>();
      const std::string line_prev = to_std(parsed["prev"].get<WipingString>());
      if (line_prev == kChainStart) {
        if (lines > 0) {
          if (number != 1) {
            std::cout << where << "BROKEN: a chain start in the middle of a file\n";
            return 1;
          }
          ++restarts;
          std::cout << where << "note: the chain starts anew here (seq " << line_seq
                    << "): korttid did not know the line before it, so the link cannot be checked\n";
        }
      } else if (lines == 0) {
        std::cout << where << "note: the chain begins before this file (seq " << line_seq
                  << "); give the older files first to check the link\n";
      } else if (line_prev != prev) {
        std::cout << prev_where << "BROKEN: this line (seq " << seq << ") does not hash to the prev of the next ("
                  << where.substr(0, where.size() - 2) << "): it was changed, or lines after it were removed\n";
        return 1;
      }
      if (lines > 0 && line_prev != kChainStart && line_seq != seq + 1) {
        std::cout << where << "BROKEN: seq " << line_seq << " follows " << seq << ": lines are missing\n";
        return 1;
      }
      seq = line_seq;
      prev = hash_of(line);
      prev_where = where;
      ++lines;
    }
  }
  if (restarts > 0) {
    std::cout << "INCOMPLETE: " << lines << " lines intact, but the chain starts anew " << restarts
              << " time(s) after its beginning; through seq " << seq << " (last hash " << prev << ")\n";
    return 2;
  }
  std::cout << "OK: " << lines << " lines, chain intact through seq " << seq << " (last hash " << prev << ")\n";
  return 0;
}

}  // namespace kortti::daemon
