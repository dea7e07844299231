#include "client/pin_entry.hpp"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>

#include "common/encoding.hpp"

namespace kortti::client {

namespace {

constexpr std::size_t kMaxPin = 64;

// One line: the PIN. Nothing of it is quoted in an error (a PIN of bytes
// that are not text would otherwise be named in JSON's own message).
SecretString read_line(int fd, const std::string& from) {
  std::array<char, kMaxPin + 1> buf{};
  std::size_t n = 0;
  bool ended = false;
  auto fail = [&](const std::string& why) {
    wipe(buf.data(), buf.size());
    throw std::runtime_error(why);
  };
  while (!ended) {
    char c = 0;
    const ssize_t r = ::read(fd, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail("cannot read the PIN from " + from + ": " + std::strerror(errno));
    if (r == 0 || c == '\n') {
      ended = true;
    } else if (n == kMaxPin) {
      fail("the PIN from " + from + " is longer than 64 characters");
    } else {
      buf[n++] = c;
    }
  }
  if (n > 0 && buf[n - 1] == '\r') --n;  // a line ended CR LF
  if (n == 0) fail("no PIN from " + from + " (an empty line, or nothing before the end of input)");
  if (!plain_text(std::string_view(buf.data(), n)))
    fail("the PIN from " + from + " holds bytes that are not text or control characters; nothing was sent");
  SecretString pin(std::string_view(buf.data(), n));
  wipe(buf.data(), buf.size());
  return pin;
}

// Restores the terminal when a signal ends kortti while echo is off.
int g_tty = -1;
termios g_saved{};
void restore_and_exit(int signo) {
  if (g_tty >= 0) tcsetattr(g_tty, TCSAFLUSH, &g_saved);
  // The process ends either way; a lost newline is all that can go wrong.
  [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, "\n", 1);
  _exit(128 + signo);
}

// The terminal's echo off, and the signals that would end or stop kortti
// meanwhile taken, until it goes out of scope: a terminal left without
// echo after Ctrl-C, Ctrl-\ or a hang-up, or stopped with Ctrl-Z, would
// show the next thing typed, or leave the user at a shell that echoes
// nothing.
class QuietTerminal {
 public:
  QuietTerminal(int tty, const termios& saved) : tty_(tty), saved_(saved) {
    g_tty = tty;
    g_saved = saved;
    for (std::size_t i = 0; i < kEnding.size(); ++i) old_[i] = std::signal(kEnding[i], restore_and_exit);
    old_stop_ = std::signal(SIGTSTP, SIG_IGN);
    termios quiet = saved;
    quiet.c_lflag &= static_cast<tcflag_t>(~(ECHO | ECHOE | ECHOK | ECHONL));
    tcsetattr(tty, TCSAFLUSH, &quiet);
  }
  ~QuietTerminal() {
    tcsetattr(tty_, TCSAFLUSH, &saved_);
    std::signal(SIGTSTP, old_stop_);
    for (std::size_t i = 0; i < kEnding.size(); ++i) std::signal(kEnding[i], old_[i]);
    g_tty = -1;
  }
  QuietTerminal(const QuietTerminal&) = delete;
  QuietTerminal& operator=(const QuietTerminal&) = delete;

 private:
  static constexpr std::array<int, 4> kEnding{SIGINT, SIGTERM, SIGQUIT, SIGHUP};
  int tty_;
  termios saved_;
  std::array<void (*)(int), kEnding.size()> old_{};
  void (*old_stop_)(int) = nullptr;
};

}  // namespace

SecretString read_pin_from_fd(int fd) {
  const std::string from = "descriptor " + std::to_string(fd) + " (--pin-fd)";
  if (fcntl(fd, F_GETFD) < 0)
    throw std::runtime_error("--pin-fd " + std::to_string(fd) + " is not an open file descriptor");
  if (::isatty(fd))
    throw std::runtime_error("--pin-fd " + std::to_string(fd) +
                             " is a terminal, which would show the PIN as it is typed: leave --pin-fd out and "
                             "kortti asks with echo off");
  return read_line(fd, from);
}

SecretString prompt_pin(const std::string& prompt) {
  const int tty = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (tty < 0) throw std::runtime_error("no terminal to ask for the PIN on; give it with --pin-fd N");
  termios saved{};
  if (tcgetattr(tty, &saved) != 0) {
    ::close(tty);
    throw std::runtime_error("cannot switch off echo on the terminal; give the PIN with --pin-fd N");
  }
  (void)!::write(tty, prompt.data(), prompt.size());
  SecretString pin;
  try {
    QuietTerminal quiet(tty, saved);
    pin = read_line(tty, "the terminal");
  } catch (...) {
    (void)!::write(tty, "\n", 1);
    ::close(tty);
    throw;
  }
  (void)!::write(tty, "\n", 1);
  ::close(tty);
  return pin;
}

}  // namespace kortti::client
