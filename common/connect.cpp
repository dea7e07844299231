#include "common/connect.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

namespace kortti {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct AddrinfoFree {
  void operator()(addrinfo* a) const { ::freeaddrinfo(a); }
};
using Addresses = std::unique_ptr<addrinfo, AddrinfoFree>;

// Lookup threads running now: each started after taking a place here, and
// gives it back when its getaddrinfo returns, waited for or not.
std::atomic<std::size_t> lookups_running{0};

bool take_a_place() {
  std::size_t now = lookups_running.load();
  while (now < kMaxLookups)
    if (lookups_running.compare_exchange_weak(now, now + 1)) return true;
  return false;
}

// One lookup, shared by its thread and the caller that may give up on it.
struct Lookup {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  int rc = 0;
  Addresses found;
};

// The addresses of host:port, or null with `error` set.
Addresses look_up(const std::string& host, const std::string& port, Clock::time_point deadline, std::string& error,
                  const std::function<bool()>& stopped) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  // An address needs no name server: no thread for it.
  hints.ai_flags = AI_NUMERICHOST;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) == 0) return Addresses(found);
  if (!take_a_place()) {
    error = "cannot look up " + host + ": " + std::to_string(kMaxLookups) +
            " lookups are under way already (the name servers do not answer)";
    return nullptr;
  }
  auto lookup = std::make_shared<Lookup>();
  try {
    std::thread([lookup, host, port] {
      addrinfo h{};
      h.ai_socktype = SOCK_STREAM;
      addrinfo* a = nullptr;
      const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &h, &a);
      std::lock_guard lock(lookup->mutex);
      lookup->rc = rc;
      lookup->found.reset(a);
      lookup->done = true;
      --lookups_running;
      lookup->done_cv.notify_all();
    }).detach();
  } catch (const std::system_error& e) {
    --lookups_running;
    error = "cannot look up " + host + ": " + e.what();
    return nullptr;
  }
  std::unique_lock lock(lookup->mutex);
  while (!lookup->done) {
    const auto now = Clock::now();
    if (now >= deadline || (stopped && stopped())) {
      error = "cannot look up " + host + ": " +
              (now >= deadline ? std::string("no answer in time") : std::string("given up"));
      return nullptr;
    }
    lookup->done_cv.wait_until(lock, std::min(deadline, now + 200ms));
  }
  if (lookup->rc != 0) {
    error = "cannot resolve " + host + ": " + ::gai_strerror(lookup->rc);
    return nullptr;
  }
  return std::move(lookup->found);
}

}  // namespace

long ms_left(Clock::time_point deadline) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
}

int poll_slice(int fd, short events, Clock::time_point deadline) {
  const long left = ms_left(deadline);
  if (left <= 0) return 0;
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, static_cast<int>(std::min<long>(left, 200)));
}

int connect_within(const std::string& host, const std::string& port, Clock::time_point deadline, std::string& error,
                   const std::function<bool()>& stopped) {
  const Addresses found = look_up(host, port, deadline, error, stopped);
  if (!found) return -1;
  const auto is_stopped = [&] { return stopped && stopped(); };
  int fd = -1;
  for (const addrinfo* a = found.get(); a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      error = "cannot connect to " + host + ":" + port + ": " + std::strerror(errno);
      continue;
    }
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      error = "cannot connect to " + host + ":" + port + ": " + std::strerror(errno);
      ::close(fd);
      fd = -1;
      continue;
    }
    // Connected, refused, or out of time, looking at `stopped` every 200 ms.
    int ready = 0;
    while (ready == 0 && !is_stopped() && ms_left(deadline) > 0) {
      ready = poll_slice(fd, POLLOUT, deadline);
      if (ready < 0 && errno == EINTR) ready = 0;
    }
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (ready != 1 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error != 0) {
      error = "cannot connect to " + host + ":" + port + ": " +
              (so_error != 0  ? std::strerror(so_error)
               : is_stopped() ? std::string("given up")
                              : "timed out");
      ::close(fd);
      fd = -1;
      if (is_stopped() || Clock::now() >= deadline) break;
    }
  }
  return fd;
}

}  // namespace kortti
