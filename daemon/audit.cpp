#include "daemon/audit.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>

#include "common/digest.hpp"
#include "common/json.hpp"
#include "common/time.hpp"
#include "common/worker.hpp"

namespace kortti::daemon {

std::string line_hash(std::string_view line) {
  return sha256_hex(ByteView(reinterpret_cast<const std::uint8_t*>(line.data()), line.size()));
}

namespace {

// Where the line that ends at `end` begins: just after the last newline
// before `end`, read back from there a block at a time (a trail of years
// is not read whole at every start); 0 when there is none, -1 when the file
// cannot be read.
off_t line_start_before(int fd, off_t end) {
  char buffer[4096];
  while (end > 0) {
    const off_t from = std::max<off_t>(0, end - static_cast<off_t>(sizeof buffer));
    const ssize_t n = ::pread(fd, buffer, static_cast<std::size_t>(end - from), from);
    if (n != end - from) return -1;
    for (ssize_t i = n - 1; i >= 0; --i)
      if (buffer[i] == '\n') return from + i + 1;
    end = from;
  }
  return 0;
}

// The last non-empty line of a file that ends with a newline, or empty.
std::string last_line(const std::string& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  struct stat st {};
  std::string line;
  off_t end = ::fstat(fd, &st) == 0 ? st.st_size - 1 : 0;  // before the final newline
  while (line.empty() && end > 0) {
    const off_t from = line_start_before(fd, end);
    if (from < 0) break;
    line.resize(static_cast<std::size_t>(end - from));
    if (::pread(fd, line.data(), line.size(), from) != static_cast<ssize_t>(line.size())) line.clear();
    end = from - 1;
  }
  ::close(fd);
  return line;
}

// A file that does not end with a newline ends in a line half written when
// the machine stopped (or in the zeros some file systems leave after a power
// cut). No such line was acknowledged: a line counts once its sync returned,
// and a failed write or sync is cut back at once. Left there, the next line
// would be glued to it and the chain would break at both. Cut it off.
void cut_unfinished_line(const std::string& file) {
  const int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return;  // none yet (the writer creates it), or the writer says why not
  struct stat st {};
  char last = '\n';
  if (::fstat(fd, &st) != 0 || st.st_size == 0 || ::pread(fd, &last, 1, st.st_size - 1) != 1 || last == '\n') {
    ::close(fd);
    return;
  }
  const off_t keep = line_start_before(fd, st.st_size);
  if (keep >= 0 && ::ftruncate(fd, keep) == 0 && ::fsync(fd) == 0)
    spdlog::warn("audit: {} ended in {} bytes of an unfinished line, never acknowledged; cut off", file,
                 st.st_size - keep);
  else
    spdlog::error("audit: cannot cut the unfinished last line off {}: {}", file,
                  keep < 0 ? "it cannot be read" : std::strerror(errno));
  ::close(fd);
}

// Where the chain stood when korttid last stopped cleanly, kept beside the
// file (FILE.head): a file moved away while korttid was stopped leaves a
// new, empty one, and without the head its first line could not name the
// old file's last. The file it was taken from (device, inode, size) tells a
// file moved away from one cut or emptied in place (logrotate moves; its
// `copytruncate` is not supported). The head is removed just before the
// first line after it is written: from then on it is stale, and a crash
// must not leave it to link a later file to the wrong line.
struct Head {
  std::uint64_t seq = 0;
  std::string hash;
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  std::uint64_t size = 0;
};

std::string head_path(const std::string& file) { return file + ".head"; }

std::string directory_of(const std::string& file) {
  const auto slash = file.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : file.substr(0, slash);
}

// A rename or unlink is durable once its directory is synced.
bool sync_directory(const std::string& file) {
  const int dir = ::open(directory_of(file).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return false;
  const bool ok = ::fsync(dir) == 0;
  ::close(dir);
  return ok;
}

// The head the last clean stop left; nullopt when there is none, or when it
// cannot be used (then the log says why).
std::optional<Head> read_head(const std::string& file) {
  const std::string path = head_path(file);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT)
      spdlog::error("audit: cannot read {}: {}; if {} was moved while korttid was stopped, its chain starts anew", path,
                    std::strerror(errno), file);
    return std::nullopt;
  }
  char buffer[512];
  const ssize_t n = ::read(fd, buffer, sizeof buffer);
  ::close(fd);
  const Json parsed = Json::parse(std::string(buffer, static_cast<std::size_t>(std::max<ssize_t>(n, 0))), nullptr,
                                  /*allow_exceptions=*/false);
  auto number = [&](const char* key) {
    return parsed.is_object() && parsed.contains(key) && parsed[key].is_number_unsigned();
  };
  if (number("seq") && number("dev") && number("ino") && number("size") && parsed.contains("hash") &&
      parsed["hash"].is_string()) {
    Head head{parsed["seq"].get<std::uint64_t>(), to_std(parsed["hash"].get<WipingString>()),
              parsed["dev"].get<std::uint64_t>(), parsed["ino"].get<std::uint64_t>(),
              parsed["size"].get<std::uint64_t>()};
    if (is_sha256_hex(head.hash)) return head;
  }
  spdlog::error("audit: {} is not a chain head; ignored", path);
  return std::nullopt;
}

// Written and synced to a temporary name, then renamed over: a head is
// whole or absent.
void write_head(const std::string& file, const Head& head) {
  const std::string path = head_path(file);
  const std::string temporary = path + ".new";
  const std::string text =
      to_std(
          Json{{"seq", head.seq}, {"hash", wstr(head.hash)}, {"dev", head.dev}, {"ino", head.ino}, {"size", head.size}}
              .dump()) +
      "\n";
  ::unlink(temporary.c_str());  // a leftover, or something planted there
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
  bool ok =
      fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fdatasync(fd) == 0;
  if (fd >= 0) ::close(fd);
  ok = ok && ::rename(temporary.c_str(), path.c_str()) == 0 && sync_directory(path);
  if (!ok) {
    spdlog::error("audit: cannot write {}: {}; if {} is moved before korttid starts again, its chain starts anew", path,
                  std::strerror(errno), file);
    ::unlink(temporary.c_str());
  }
}

// Before the first line after a head: the head no longer says where the
// chain stands.
void remove_head(const std::string& file) {
  const std::string path = head_path(file);
  if (::unlink(path.c_str()) == 0 ? sync_directory(path) : errno == ENOENT) return;
  spdlog::error(
      "audit: cannot remove {}: {}; remove it by hand, or a start after a crash links the chain to an old "
      "line",
      path, std::strerror(errno));
}

Json to_line(const service::AuditRecord& r) {
  Json line = {{"time", wstr(to_rfc3339(std::chrono::system_clock::now()))},
               {"action", wstr(r.action)},
               {"uid", r.caller.uid},
               {"gid", r.caller.gid},
               {"pid", r.caller.pid},
               {"connection", r.caller.connection},
               {"outcome", wstr(r.outcome)}};
  // A begun line is written before there is anything to deliver.
  if (r.outcome != service::kAuditBegun) line["delivered"] = r.delivered;
  if (!r.attempt.empty()) line["attempt"] = wstr(r.attempt);
  if (!r.caller.client.empty()) line["client"] = wstr(r.caller.client);
  if (r.origin) line["origin"] = wstr(*r.origin);
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

struct AuditLog::Chain {
  struct Pending {
    Json line;
    std::function<void(bool)> done;  // empty: a noted line, nobody waits
  };

  explicit Chain(std::string path) : file(std::move(path)) {}
  // Reached with noted lines unsynced only when stop() gave up on a stuck
  // writer: they get their sync all the same.
  ~Chain() {
    if (fd < 0) return;
    sync_written();
    ::close(fd);
  }
  Chain(const Chain&) = delete;
  Chain& operator=(const Chain&) = delete;

  // Where the chain stands, for the next start (at a clean stop).
  void save_head() {
    struct stat st {};
    if (prev_hash.empty() || fd < 0 || ::fstat(fd, &st) != 0) return;
    write_head(file, {seq, prev_hash, static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                      static_cast<std::uint64_t>(st.st_size)});
  }

  void queue(Pending pending, const std::shared_ptr<Chain>& self);
  bool reopen_if_moved();
  bool append(const std::string& text, std::size_t lines, bool sync);
  void flush(const std::shared_ptr<Chain>& self);
  void sync_written();
  void mark_durable();
  void cut_back_to_durable();

  const std::string file;
  // The writer thread's alone (and the constructor's, before it starts).
  int fd = -1;
  dev_t dev = 0;
  ino_t ino = 0;
  std::uint64_t seq = 0;
  std::string prev_hash;        // of the last line written, hex
  bool head_to_remove = false;  // a FILE.head not yet removed (read_head)
  // Where the file and the chain stood at the last successful fdatasync: a
  // failed sync cuts the file back to it and the chain goes on from there,
  // so no line acknowledged as durable ever follows one that may be lost.
  // Lines past durable_seq are noted lines waiting for their sync.
  off_t durable_end = 0;
  std::uint64_t durable_seq = 0;
  std::string durable_hash;
  // Shared with record().
  std::mutex mutex;
  std::vector<Pending> pending;
  bool flush_queued = false;
  bool stopped = false;  // the writer is ending: a line now is refused
  Worker writer{"audit"};
  // Declared after the writer: destroyed before the io_context it runs on.
  boost::asio::steady_timer lazy_sync{writer.executor()};
};

AuditLog::AuditLog(const std::string& file) {
  if (file.empty()) {
    logger_ = spdlog::default_logger()->clone("audit");
    return;
  }
  chain_ = std::make_shared<Chain>(file);
  // First the file, locked: a second korttid on the same trail (started by
  // hand while the service runs) must neither cut its lines nor leave a
  // head of its own when it gives up.
  if (!chain_->reopen_if_moved())
    throw std::runtime_error(errno == EWOULDBLOCK ? "another korttid is writing the audit file " + file
                                                  : "cannot open the audit file " + file + ": " + std::strerror(errno));
  // Carry on the chain of the file as it is, from its last whole line.
  cut_unfinished_line(file);
  const std::string last = last_line(file);
  if (!last.empty()) {
    const Json parsed = Json::parse(last, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_object() && parsed.contains("seq") && parsed["seq"].is_number_unsigned()) {
      chain_->seq = parsed["seq"].get<std::uint64_t>();
    } else {
      spdlog::warn("audit: the last line of {} has no sequence number; the chain starts anew after it", file);
    }
    chain_->prev_hash = line_hash(last);
  }
  // What the last clean stop left says where the chain really stood. It
  // wins over the file: lines removed while korttid was stopped then show
  // as a break in the chain (the first new line names the line they ended
  // with), not as a chain that quietly goes on from a shorter file.
  if (const auto head = read_head(file)) {
    struct stat st {};
    const bool same_file = ::stat(file.c_str(), &st) == 0 && static_cast<std::uint64_t>(st.st_dev) == head->dev &&
                           static_cast<std::uint64_t>(st.st_ino) == head->ino;
    if (same_file && static_cast<std::uint64_t>(st.st_size) != head->size) {
      spdlog::error(
          "audit: {} held {} bytes through seq {} when korttid stopped and holds {} now: it was changed or cut while "
          "korttid was stopped; the chain goes on from seq {}, and `korttid audit verify` will show the break",
          file, head->size, head->seq, st.st_size, head->seq);
    } else if (last.empty()) {
      spdlog::info("audit: {} is new; the chain goes on from seq {} of the file before it", file, head->seq);
    } else if (head->hash != chain_->prev_hash) {
      spdlog::error(
          "audit: {} ends at seq {}, but korttid stopped at seq {}: the file was changed or replaced while korttid "
          "was stopped; the chain goes on from seq {}, and `korttid audit verify` will show the break",
          file, chain_->seq, head->seq, head->seq);
    }
    chain_->seq = head->seq;
    chain_->prev_hash = head->hash;
  }
  struct stat head_stat {};
  chain_->head_to_remove = ::lstat(head_path(file).c_str(), &head_stat) == 0;
  // The file as cut, and the chain as found: what is durable now.
  chain_->mark_durable();
}

// The writer's thread ends here at the latest, with its per-thread OpenSSL
// state, not while exit-time cleanup frees that state from under it. A
// writer stuck on a disk that does not answer keeps the chain alive itself.
AuditLog::~AuditLog() { (void)stop(std::chrono::seconds(1)); }

void AuditLog::record(service::AuditRecord record, std::function<void(bool)> done) {
  Json line = to_line(record);
  if (logger_) {
    logger_->info("{}", dump(line));
    return done(true);
  }
  chain_->queue({std::move(line), std::move(done)}, chain_);
}

void AuditLog::note(service::AuditRecord record) {
  Json line = to_line(record);
  if (logger_) return logger_->info("{}", dump(line));
  chain_->queue({std::move(line), nullptr}, chain_);
}

void AuditLog::Chain::queue(Pending p, const std::shared_ptr<Chain>& self) {
  bool queued = false;
  bool first = false;
  {
    std::lock_guard lock(mutex);
    if (!stopped) {
      pending.push_back(std::move(p));
      queued = true;
      first = !std::exchange(flush_queued, true);
    }
  }
  if (first) writer.post([self] { self->flush(self); });
  if (queued) return;
  // A job posted to a writer that has ended would never run.
  spdlog::error("audit: a line arrived after the audit writer stopped and is not written");
  if (p.done) p.done(false);
}

// Noted lines still waiting for their fdatasync get it before the writer
// ends. (Weak: a job posted to a writer that has already ended is never run,
// and a strong pointer in it would keep the chain alive in a cycle.)
bool AuditLog::stop(std::chrono::milliseconds timeout) {
  if (!chain_) return true;
  {
    std::lock_guard lock(chain_->mutex);
    chain_->stopped = true;
  }
  chain_->writer.post([weak = std::weak_ptr<Chain>(chain_)] {
    if (auto chain = weak.lock()) {
      chain->lazy_sync.cancel();
      chain->sync_written();
      // After the sync: a failed one cuts the chain back first.
      chain->save_head();
    }
  });
  return chain_->writer.stop_and_wait(timeout);
}

// Everything that arrived since the last flush, chained and written at once;
// made durable at once if anyone waits for one of the lines, else within
// kLazySync.
void AuditLog::Chain::flush(const std::shared_ptr<Chain>& self) {
  std::vector<Pending> batch;
  {
    std::lock_guard lock(mutex);
    batch.swap(pending);
    flush_queued = false;
  }
  if (batch.empty()) return;
  const bool awaited = std::any_of(batch.begin(), batch.end(), [](const Pending& p) { return p.done != nullptr; });
  bool ok = false;
  bool sync_pending = false;
  try {
    // A moved file is settled before the lines are numbered and linked: the
    // old file's last sync, if it fails then, cuts the chain back.
    if (!reopen_if_moved()) throw std::runtime_error("cannot open " + file + ": " + std::strerror(errno));
    // Noted lines already waiting have a sync on its way.
    sync_pending = seq != durable_seq;
    std::uint64_t next = seq;
    std::string prev = prev_hash;
    std::string text;
    for (auto& p : batch) {
      p.line["seq"] = ++next;
      p.line["prev"] = wstr(prev.empty() ? kChainStart : prev);
      const std::string line = dump(p.line);
      prev = line_hash(line);
      text += line;
      text += '\n';
    }
    if (std::exchange(head_to_remove, false)) remove_head(file);
    ok = append(text, batch.size(), awaited);
    if (ok) {
      seq = next;
      prev_hash = std::move(prev);
    }
  } catch (const std::exception& e) {
    spdlog::error("audit: {}; {} line(s) not written", e.what(), batch.size());
  }
  if (ok && awaited) {
    mark_durable();
  } else if (ok && !sync_pending) {
    lazy_sync.expires_after(kLazySync);
    lazy_sync.async_wait([weak = std::weak_ptr<Chain>(self)](const boost::system::error_code& ec) {
      if (auto chain = weak.lock(); chain && !ec) chain->sync_written();
    });
  }
  for (auto& p : batch)
    if (p.done) p.done(ok);
}

void AuditLog::Chain::sync_written() {
  if (seq == durable_seq || fd < 0) return;
  if (::fdatasync(fd) == 0) return mark_durable();
  spdlog::error("audit: cannot sync {}: {}", file, std::strerror(errno));
  cut_back_to_durable();
}

void AuditLog::Chain::mark_durable() {
  durable_end = ::lseek(fd, 0, SEEK_END);
  durable_seq = seq;
  durable_hash = prev_hash;
}

// After a failed fdatasync nothing written since the last good one is known
// to be on disk (the kernel reports a writeback error once): those lines —
// outcome lines, whose begun lines are durable — are cut off, and the chain
// goes on from the last durable line.
void AuditLog::Chain::cut_back_to_durable() {
  if (seq != durable_seq)
    spdlog::error("audit: lines {} to {} of {} were not made durable and are cut off; the chain goes on from {}",
                  durable_seq + 1, seq, file, durable_seq);
  if (::ftruncate(fd, durable_end) != 0) spdlog::error("audit: cannot cut unsynced lines from {}", file);
  seq = durable_seq;
  prev_hash = durable_hash;
}

// logrotate moves the file away; the next line goes to a new file at the
// configured path, still chained to the last line of the old one.
bool AuditLog::Chain::reopen_if_moved() {
  struct stat st {};
  if (fd >= 0 && ::stat(file.c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino) return true;
  const int opened = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (opened < 0) return false;
  if (::flock(opened, LOCK_EX | LOCK_NB) != 0 || ::fstat(opened, &st) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) spdlog::error("audit: another process holds {} locked: another korttid?", file);
    ::close(opened);
    errno = err;
    return false;
  }
  // A file just created is durable only once its directory entry is: else a
  // power cut could take the whole file, lines already answered for with it.
  if (!sync_directory(file)) {
    const int err = errno;
    ::close(opened);
    errno = err;
    return false;
  }
  if (fd >= 0) {
    sync_written();  // the moved file keeps its noted lines, durable
    ::close(fd);
    spdlog::info("audit: {} was moved; continuing the chain in a new file", file);
  }
  fd = opened;
  dev = st.st_dev;
  ino = st.st_ino;
  // What the file holds is as durable as the chain knows: a new file is
  // empty, and an old one was synced (or cut back) before it was left.
  mark_durable();
  return true;
}

// All of `text` or none of it: a failed write or sync is cut back off, so a
// half line never breaks every later check. `sync`: made durable too, with
// every line written before it. To the file flush() found at the path.
bool AuditLog::Chain::append(const std::string& text, std::size_t lines, bool sync) {
  auto fail = [&](const char* what) {
    spdlog::error("audit: cannot {} {}: {}; {} line(s) not written", what, file, std::strerror(errno), lines);
    return false;
  };
  const off_t end = ::lseek(fd, 0, SEEK_END);
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      if (end >= 0 && ::ftruncate(fd, end) != 0) spdlog::error("audit: cannot cut a partial line from {}", file);
      errno = err;
      return fail("write");
    }
    written += static_cast<std::size_t>(n);
  }
  if (sync && ::fdatasync(fd) != 0) {
    const int err = errno;
    cut_back_to_durable();
    errno = err;
    return fail("sync");
  }
  return true;
}

}  // namespace kortti::daemon
