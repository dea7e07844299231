#include "tests/support/support.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grp.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/loopback_peer.hpp"
#include "tests/support/process.hpp"

namespace kortti::test {

namespace {

// The test programs' view of the daemons they run (see set_problem_reporter).
std::mutex registry_mutex;
std::function<void(const std::string&)> problem_reporter;
std::set<const Daemon*> live_daemons;

}  // namespace

Daemon::Daemon(DaemonOptions options)
    : socket_(options.socket.value_or(dir_ / "korttid.sock")),
      audit_file_(options.audit_file.value_or(dir_ / "audit.log")) {
  std::string modules;
  for (const auto& m : options.modules) modules += (modules.empty() ? "\"" : ", \"") + m + "\"";
  std::ostringstream text;
  text << "[ipc]\nsocket = \"" << socket() << "\"\nsocket_mode = \"0666\"\n"
       << options.ipc << "\n"
       << "[pkcs11]\nmodules = [" << modules << "]\n"
       << options.pkcs11 << "\n"
       << "[pcsc]\nenabled = " << (options.pcsc ? "true" : "false") << "\n"
       << "[session]\n"
       << options.session << "\n"
       << "[log]\nlevel = \"" << options.log_level << "\"\n"
       << "[audit]\nfile = \"" << audit_file_.string() << "\"\n"
       << options.audit << "\n"
       << "[trust]\nanchors = \"" << (pki_dir() / "trust").string() << "\"\n"
       << "intermediates = \"" << (pki_dir() / "intermediates").string() << "\"\n"
       << options.trust << "\n"
       << "[revocation]\n"
       << options.revocation << "\n"
       << "[registry]\ndatabase = \"" << registry().string() << "\"\n"
       << options.registry << "\n"
       << options.extra << "\n";
  write_file(config(), text.str());

  const fs::path notify = dir_ / "notify.sock";
  notify_fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  notify.string().copy(addr.sun_path, sizeof addr.sun_path - 1);
  if (::bind(notify_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("bind notify");
  options.env["NOTIFY_SOCKET"] = notify.string();

  std::vector<std::string> argv = options.wrapper;
  for (const std::string& a : {korttid_binary().string(), std::string("--config"), config().string()})
    argv.push_back(a);
  argv.insert(argv.end(), options.args.begin(), options.args.end());
  pid_ = spawn_logged(argv, options.env, dir_ / "korttid.log");
  if (options.wait_ready && !wait_notify("READY=1", std::chrono::seconds(30))) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    throw std::runtime_error("korttid did not become ready; its log:\n" + this->log());
  }
  std::lock_guard lock(registry_mutex);
  live_daemons.insert(this);
}

namespace {

void report_problem(const std::string& problem) {
  std::function<void(const std::string&)> reporter;
  {
    std::lock_guard lock(registry_mutex);
    reporter = problem_reporter;
  }
  if (reporter)
    reporter(problem);
  else
    std::cerr << "korttid problem: " << problem << "\n";
}

std::string tail(const std::string& text, std::size_t bytes) {
  return text.size() <= bytes ? text : "..." + text.substr(text.size() - bytes);
}

}  // namespace

void check_output_of(const std::string& program, const std::string& output) {
  if (const std::string reports = sanitizer_reports(output); !reports.empty())
    report_problem("sanitizer reports in the output of " + program + ":\n" + reports + "the output:\n" +
                   tail(output, 8000));
}

void set_problem_reporter(std::function<void(const std::string&)> reporter) {
  std::lock_guard lock(registry_mutex);
  problem_reporter = std::move(reporter);
}

std::string sanitizer_reports(const std::string& log) {
  static const char* const kMarkers[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                         "runtime error:", "WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer"};
  std::string found;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);)
    for (const char* marker : kMarkers)
      if (line.find(marker) != std::string::npos) {
        found += line + "\n";
        break;
      }
  return found;
}

void for_each_daemon_log(const std::function<void(const std::string&)>& fn) {
  std::vector<const Daemon*> daemons;
  {
    std::lock_guard lock(registry_mutex);
    daemons.assign(live_daemons.begin(), live_daemons.end());
  }
  for (const Daemon* d : daemons) fn(d->log());
}

Daemon::~Daemon() {
  {
    std::lock_guard lock(registry_mutex);
    live_daemons.erase(this);
  }
  const bool was_running = running();
  const bool died_unseen = !was_running && !status_seen_;
  const int status = was_running ? stop(SIGTERM, std::chrono::seconds(10)) : status_.value_or(-1);
  if (running()) stop(SIGKILL);
  if (notify_fd_ >= 0) ::close(notify_fd_);
  const std::string log = this->log();
  if (died_unseen)
    report_problem("korttid exited on its own with status " + std::to_string(status) + "; its log:\n" +
                   tail(log, 4000));
  else if (was_running && status != 0)
    report_problem("korttid did not stop cleanly on SIGTERM (status " + std::to_string(status) + "); its log:\n" +
                   tail(log, 4000));
  if (const std::string reports = sanitizer_reports(log); !reports.empty())
    report_problem("sanitizer reports in korttid's log:\n" + reports + "the log:\n" + tail(log, 8000));
}

std::string Daemon::log() const { return read_file(dir_ / "korttid.log"); }

std::vector<Json> Daemon::audit() const {
  // Whole lines only: the writer may be halfway through one.
  auto read = [this] {
    std::vector<Json> lines;
    const std::string text = read_file(audit_file_);
    for (std::size_t at = 0, end; (end = text.find('\n', at)) != std::string::npos; at = end + 1)
      if (end > at) lines.push_back(Json::parse(text.substr(at, end - at)));
    return lines;
  };
  auto settled = [](const std::vector<Json>& lines) {
    std::set<std::string> open;
    for (const Json& l : lines) {
      if (!l.contains("attempt")) continue;
      const std::string attempt = str(l["attempt"]);
      if (l["outcome"] == "begun")
        open.insert(attempt);
      else
        open.erase(attempt);
    }
    return open.empty();
  };
  std::vector<Json> lines;
  // Unsettled after the wait, the lines are returned as they are: the
  // test's own assertions then say what is missing.
  (void)eventually(
      [&] {
        lines = read();
        return settled(lines);
      },
      std::chrono::seconds(10));
  return lines;
}

std::vector<Json> outcomes(const std::vector<Json>& lines) {
  std::vector<Json> out;
  for (const Json& l : lines)
    if (l["outcome"] != "begun") out.push_back(l);
  return out;
}

bool Daemon::running() {
  if (status_) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = decode_status(status);
    return false;
  }
  return r == 0;
}

void Daemon::signal(int signo) const { ::kill(pid_, signo); }

std::optional<int> Daemon::exit_status(std::chrono::seconds timeout) {
  status_seen_ = true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status_;
}

int Daemon::stop(int signo, std::chrono::seconds timeout) {
  status_seen_ = true;
  if (!running()) return status_.value_or(-1);
  ::kill(pid_, signo);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      status_ = -1;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return *status_;
}

bool Daemon::wait_notify(const std::string& what, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !running()) return false;
    pollfd p{notify_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 200))) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(notify_fd_, buf, sizeof buf, 0);
    if (n > 0 && std::string(buf, static_cast<std::size_t>(n)).find(what) != std::string::npos) return true;
  }
}

fs::path registry_fixture_dir() { return source_dir() / "tests" / "fixtures" / "registry"; }

CommandResult registry_command(const Daemon& daemon, const std::vector<std::string>& args) {
  std::vector<std::string> argv{korttid_binary().string(), "--config", daemon.config().string(), "registry"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv);
}

void import_registry_fixture(const Daemon& daemon) {
  const fs::path dir = registry_fixture_dir();
  std::vector<std::vector<std::string>> commands{{"import", (dir / "professionals.jsonl").string()}};
  for (const char* set : {"rights", "restriction_targets", "medicine_classes"})
    commands.push_back({"import-codes", set, (dir / (std::string(set) + ".csv")).string()});
  for (const auto& c : commands) {
    auto r = registry_command(daemon, c);
    if (r.status != 0) throw std::runtime_error("korttid registry " + c[0] + " failed: " + r.err);
  }
}

int connect_fd_as(const std::string& socket, uid_t uid, gid_t gid, const std::vector<gid_t>& groups) {
  // The other user must be able to reach the socket (its mode is the test
  // daemon's 0666): let anyone through the folder it is in.
  if (!loopback_endpoint(socket))
    fs::permissions(fs::path(socket).parent_path(), fs::perms::others_exec | fs::perms::group_exec,
                    fs::perm_options::add);
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) throw std::runtime_error("socketpair");
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pair[0]);
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) _exit(2);
    const int fd = client::connect_listener(socket);
    if (fd < 0) _exit(3);
    char byte = 'x';
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
    _exit(::sendmsg(pair[1], &msg, 0) == 1 ? 0 : 4);
  }
  ::close(pair[1]);
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = ::recvmsg(pair[0], &msg, MSG_CMSG_CLOEXEC);
  ::close(pair[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (n != 1 || cmsg == nullptr || cmsg->cmsg_type != SCM_RIGHTS)
    throw std::runtime_error("connect_as: the child could not connect as uid " + std::to_string(uid) +
                             " (exit status " + std::to_string(WEXITSTATUS(status)) + ")");
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
  return fd;
}

std::unique_ptr<client::Client> connect_as(const std::string& socket, uid_t uid, gid_t gid,
                                           const std::vector<gid_t>& groups) {
  return client::Client::adopt(connect_fd_as(socket, uid, gid, groups));
}

void PinentryDouble::use_in(DaemonOptions& options) const {
  options.extra += "[pin]\npinentry = \"" + (source_dir() / "tests/pinentry/pinentry-double").string() + "\"\n";
  options.env["KORTTI_PINENTRY_DOUBLE"] = dir_.path().string();
  options.env["DISPLAY"] = ":kortti-test";
}

void PinentryDouble::answer(const std::vector<std::string>& answers) const {
  std::string text;
  for (const auto& a : answers) text += a + "\n";
  write_file(dir_ / "answers", text);
}

std::string PinentryDouble::dialog(int n) const { return read_file(dir_ / ("dialog-" + std::to_string(n) + ".txt")); }

}  // namespace kortti::test
