#include "tests/support/process.hpp"

#include "tests/support/support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/support/support.hpp"

extern char** environ;

namespace kortti::test {

namespace {

std::vector<std::string> environment(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : extra) merged[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : merged) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Starts argv[0] (looked up in PATH) with extra environment; `actions` set up
// its descriptors. Throws when it cannot start.
pid_t start_process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                    const posix_spawn_file_actions_t& actions) {
  std::vector<std::string> args = argv;
  auto cargs = c_strings(args);
  auto envs = environment(env);
  auto cenv = c_strings(envs);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, cargs[0], &actions, nullptr, cargs.data(), cenv.data());
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

}  // namespace

pid_t spawn_logged(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                   const fs::path& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  try {
    const pid_t pid = start_process(argv, env, actions);
    posix_spawn_file_actions_destroy(&actions);
    return pid;
  } catch (...) {
    posix_spawn_file_actions_destroy(&actions);
    throw;
  }
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

void reap(pid_t& pid, int signo) {
  if (pid <= 0) return;
  ::kill(pid, signo);
  int status = 0;
  ::waitpid(pid, &status, 0);
  pid = -1;
}

BackgroundCommand::BackgroundCommand(const std::vector<std::string>& argv, const fs::path& log)
    : pid_(spawn_logged(argv, {}, log)) {}

void BackgroundCommand::kill() { reap(pid_, SIGKILL); }

int BackgroundCommand::wait() {
  if (pid_ <= 0) return -1;
  int status = 0;
  const pid_t waited = ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return waited > 0 ? decode_status(status) : -1;
}

CommandResult run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                  const std::string& input, const std::map<int, fs::path>& fds) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  for (const auto& [fd, path] : fds) posix_spawn_file_actions_addopen(&actions, fd, path.c_str(), O_RDONLY, 0);
  pid_t pid = -1;
  std::string failure;
  try {
    pid = start_process(argv, env, actions);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (!failure.empty()) {
    ::close(in[1]);
    ::close(out[0]);
    ::close(err[0]);
    throw std::runtime_error(failure);
  }
  if (!input.empty()) (void)!::write(in[1], input.data(), input.size());
  ::close(in[1]);
  CommandResult result;
  pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (::poll(p, 2, -1) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || p[i].revents == 0) continue;
      char buf[8192];
      const ssize_t n = ::read(p[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(p[i].fd);
        p[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? result.out : result.err).append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.status = decode_status(status);
  // korttid --check-config, audit verify, kortti...: a short run is checked
  // like a Daemon's log (an ASan report exits 1, a status some tests expect).
  if (argv[0].rfind(programs_dir().string() + "/", 0) == 0) check_output_of(argv[0], result.out + result.err);
  return result;
}

// Whether a TCP socket listens on `port`, from /proc/net: a probing
// connection would wedge OpenSSL 3.0's single-threaded responder, which then
// waits for a request on it.
bool listening(int port) {
  char local[16];
  std::snprintf(local, sizeof local, ":%04X ", port);
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    while (std::getline(in, line)) {
      // sl local_address rem_address st ...; st 0A is LISTEN.
      std::istringstream fields(line);
      std::string sl, address, remote, state;
      fields >> sl >> address >> remote >> state;
      if (state == "0A" && (address + " ").find(local) != std::string::npos) return true;
    }
  }
  return false;
}

pid_t spawn_listening(const std::vector<std::string>& argv, const std::filesystem::path& log, int port) {
  pid_t pid = spawn_logged(argv, {}, log);
  for (int i = 0; i < 100 && !listening(port); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (!listening(port)) {
    reap(pid, SIGTERM);
    throw std::runtime_error(argv[0] + " " + argv[1] + " did not listen on " + std::to_string(port) + ":\n" +
                             read_file(log));
  }
  return pid;
}

}  // namespace kortti::test
