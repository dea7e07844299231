#include "client/pin_entry.hpp"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <stdexcept>

namespace kortti::client {

namespace {

constexpr std::size_t kMaxPin = 64;

SecretString read_line(int fd) {
  std::array<char, kMaxPin + 1> buf{};
  std::size_t n = 0;
  for (;;) {
    char c = 0;
    const ssize_t r = ::read(fd, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || c == '\n') break;
    if (c == '\r') continue;
    if (n == kMaxPin) {
      wipe(buf.data(), buf.size());
      throw std::runtime_error("the PIN is longer than 64 characters");
    }
    buf[n++] = c;
  }
  SecretString pin(std::string_view(buf.data(), n));
  wipe(buf.data(), buf.size());
  return pin;
}

// Restores the terminal when Ctrl-C arrives while echo is off.
int g_tty = -1;
termios g_saved{};
void restore_and_exit(int signo) {
  if (g_tty >= 0) tcsetattr(g_tty, TCSAFLUSH, &g_saved);
  // The process ends either way; a lost newline is all that can go wrong.
  [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, "\n", 1);
  _exit(128 + signo);
}

}  // namespace

SecretString read_pin_from_fd(int fd) {
  if (fcntl(fd, F_GETFD) < 0)
    throw std::runtime_error("--pin-fd " + std::to_string(fd) + " is not an open file descriptor");
  return read_line(fd);
}

SecretString prompt_pin(const std::string& prompt) {
  const int tty = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (tty < 0) throw std::runtime_error("no terminal to ask for the PIN on; give it with --pin-fd N");
  termios saved{};
  if (tcgetattr(tty, &saved) != 0) {
    ::close(tty);
    throw std::runtime_error("cannot switch off echo on the terminal; give the PIN with --pin-fd N");
  }
  termios quiet = saved;
  quiet.c_lflag &= static_cast<tcflag_t>(~(ECHO | ECHOE | ECHOK | ECHONL));
  g_tty = tty;
  g_saved = saved;
  auto old_int = std::signal(SIGINT, restore_and_exit);
  auto old_term = std::signal(SIGTERM, restore_and_exit);
  (void)!::write(tty, prompt.data(), prompt.size());
  tcsetattr(tty, TCSAFLUSH, &quiet);
  SecretString pin;
  try {
    pin = read_line(tty);
  } catch (...) {
    tcsetattr(tty, TCSAFLUSH, &saved);
    ::close(tty);
    throw;
  }
  tcsetattr(tty, TCSAFLUSH, &saved);
  (void)!::write(tty, "\n", 1);
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  g_tty = -1;
  ::close(tty);
  return pin;
}

}  // namespace kortti::client
