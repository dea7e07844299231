// One dialog: start the pinentry program, tell it what to show, read the
// PIN, end the program. Runs on its own worker thread, one dialog at a time.

#include "pinentry/pinentry.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "common/encoding.hpp"
#include "common/error.hpp"
#include "common/worker.hpp"
#include "pinentry/assuan.hpp"

extern char** environ;

namespace kortti::pinentry {

namespace {

using namespace std::chrono_literals;

// Greeting and the words of the dialog: a program that takes longer to
// start than this is broken, not slow.
constexpr auto kSetupTime = 10s;

Error cannot_start(const std::string& program, int error) {
  return Error(Errc::service_unavailable,
               "the PIN dialog program '" + program + "' cannot be started: " + std::strerror(error));
}

// The pinentry process: its pipes until the conversation takes them, and
// its end — asked to exit, then made to.
class Program {
 public:
  explicit Program(const std::string& path) {
    int in[2];
    int out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) throw cannot_start(path, errno);
    if (::pipe2(out, O_CLOEXEC) != 0) {
      const int error = errno;
      ::close(in[0]);
      ::close(in[1]);
      throw cannot_start(path, error);
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    // Nothing of korttid's — sockets, the card's connections — reaches it.
    posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
    // A session of its own, whose id is the program's: what it starts (a
    // wrapper's real pinentry, a dialog helper) ends with it (end()). Not
    // a process group in korttid's session: one in the background of
    // korttid's terminal would be stopped when it used that terminal.
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    // Nor korttid's signal dispositions: it ignores SIGPIPE, and its threads
    // may block what a parent blocked (pinentry's --timeout is a SIGALRM).
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attributes, &none);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::string name = path;
    char* argv[] = {name.data(), nullptr};
    const int error = ::posix_spawnp(&pid_, path.c_str(), &actions, &attributes, argv, environ);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    if (error != 0) {
      ::close(in[1]);
      ::close(out[0]);
      pid_ = -1;
      throw cannot_start(path, error);
    }
    to_ = in[1];
    from_ = out[0];
  }

  ~Program() {
    if (to_ >= 0) ::close(to_);
    if (from_ >= 0) ::close(from_);
    if (pid_ > 0) end();
  }
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  int take_stdin() { return std::exchange(to_, -1); }
  int take_stdout() { return std::exchange(from_, -1); }

 private:
  // Whether the program has exited, left unreaped (WNOWAIT): until it is
  // reaped its id cannot be another process's, nor its session's group
  // another group's.
  bool exited_within(std::chrono::milliseconds time) {
    for (auto left = time; left > 0ms; left -= 20ms) {
      siginfo_t info{};
      int r = 0;
      do r = ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT);
      while (r != 0 && errno == EINTR);
      if (r != 0) return true;
      if (info.si_pid == pid_) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  // With its pipes closed a pinentry exits at once; one that stalls (a
  // dialog still open on the screen) is told, then killed. Whatever it
  // started and left behind is killed with its group before it is reaped.
  void end() noexcept {
    if (!exited_within(500ms)) {
      ::kill(-pid_, SIGTERM);
      (void)exited_within(500ms);
    }
    ::kill(-pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }

  pid_t pid_ = -1;
  int to_ = -1;
  int from_ = -1;
};

std::string terminal_type() {
  const char* term = std::getenv("TERM");
  return term != nullptr && *term != '\0' ? term : "vt100";
}

// The dialog's words, told to a program that has just started; the
// question (GETPIN or CONFIRM) follows.
void set_up(const Options& options, const Dialog& dialog, Conversation& talk) {
  const auto setup = Clock::now() + kSetupTime;
  talk.greeting(setup);
  if (!options.tty.empty()) {
    talk.command("OPTION", "ttyname=" + options.tty, setup, true);
    talk.command("OPTION", "ttytype=" + terminal_type(), setup, true);
  }
  talk.command("SETTIMEOUT", std::to_string(options.timeout.count()), setup);
  // The words come partly from cards, certificates and clients: a NUL
  // would end the text where pinentry reads it as a C string (dropping a
  // last-try warning after it), an escape sequence would redraw a
  // terminal's screen, a bidi override reorder what the user reads. Each
  // becomes U+FFFD; the description's own line breaks stay.
  auto say = [&](const char* verb, const std::string& words) { talk.command(verb, displayable(words), setup); };
  if (!dialog.title.empty()) say("SETTITLE", dialog.title);
  say("SETDESC", dialog.description);
  if (!dialog.prompt.empty()) say("SETPROMPT", dialog.prompt);
  if (!dialog.error.empty()) say("SETERROR", dialog.error);
  say("SETOK", dialog.ok);
  say("SETCANCEL", dialog.cancel);
}

SecretString run_dialog(const Options& options, const Dialog& dialog, std::stop_token stop) {
  Program program(options.program);
  Conversation talk(program.take_stdin(), program.take_stdout(), std::move(stop));
  set_up(options, dialog, talk);
  const auto setup = Clock::now() + kSetupTime;
  const bool repeat = !dialog.repeat.empty();
  if (repeat) {
    talk.command("SETREPEAT", dialog.repeat, setup);
    talk.command("SETREPEATERROR", "The two PINs differ", setup, true);
  }
  // The program keeps its own time (SETTIMEOUT); this bounds one that does not.
  SecretString pin = talk.getpin(Clock::now() + options.timeout + 5s, repeat);
  talk.bye();
  return pin;
}

Unit run_confirm(const Options& options, const Dialog& dialog, std::stop_token stop) {
  Program program(options.program);
  Conversation talk(program.take_stdin(), program.take_stdout(), std::move(stop));
  set_up(options, dialog, talk);
  talk.confirm(Clock::now() + options.timeout + 5s);
  talk.bye();
  return Unit{};
}

// The program as posix_spawnp would find it, or empty.
std::string find_program(const std::string& program) {
  namespace fs = std::filesystem;
  if (program.find('/') != std::string::npos) return ::access(program.c_str(), X_OK) == 0 ? program : "";
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/bin:/bin";
  while (!dirs.empty()) {
    const auto colon = dirs.find(':');
    const fs::path candidate = fs::path(std::string(dirs.substr(0, colon))) / program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    dirs.remove_prefix(colon == std::string_view::npos ? dirs.size() : colon + 1);
  }
  return "";
}

}  // namespace

struct PinEntry::Impl {
  Impl(Options o) : options(std::move(o)), worker("pinentry", {kMaxWaiting, 0}) {}
  Options options;
  Worker worker;
};

PinEntry::PinEntry(boost::asio::io_context& /*io*/, Options options)
    : impl_(std::make_shared<Impl>(std::move(options))) {}

// The worker's thread ends before korttid does: a thread still handing its
// OpenSSL state back while the process exits races OpenSSL's own cleanup.
PinEntry::~PinEntry() { impl_->worker.stop_and_wait(std::chrono::seconds(2)); }

std::optional<std::string> PinEntry::unavailable() const {
  const Options& o = impl_->options;
  if (find_program(o.program).empty())
    return "the PIN dialog program '" + o.program + "' is not installed ([pin] pinentry)";
  if (!o.tty.empty()) {
    if (::access(o.tty.c_str(), R_OK | W_OK) != 0)
      return "the terminal " + o.tty + " for the PIN dialog cannot be opened ([pin] tty): " + std::strerror(errno);
    return std::nullopt;
  }
  const auto set = [](const char* name) {
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0';
  };
  if (!set("DISPLAY") && !set("WAYLAND_DISPLAY"))
    return "this korttid has no user session to show a PIN dialog in (no DISPLAY or WAYLAND_DISPLAY, "
           "no [pin] tty): use the per-user instance (korttid-user.service) or a PIN pad";
  return std::nullopt;
}

Task<Unit> PinEntry::confirm(Dialog dialog, std::stop_token stop) {
  const Options options = impl_->options;
  auto job = [options, dialog = std::move(dialog), stop]() { return run_confirm(options, dialog, stop); };
  Ticket ticket(stop);
  co_return co_await on(impl_->worker, std::move(ticket), std::move(job));
}

Task<SecretString> PinEntry::ask(Dialog dialog, std::stop_token stop) {
  const Options options = impl_->options;
  auto job = [options, dialog = std::move(dialog), stop]() { return run_dialog(options, dialog, stop); };
  Ticket ticket(stop);
  co_return co_await on(impl_->worker, std::move(ticket), std::move(job));
}

}  // namespace kortti::pinentry
