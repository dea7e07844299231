#pragma once

// Test doubles for revocation peers that `openssl ocsp` cannot play: a host
// that accepts and never answers, one that sends its answer a byte a second,
// and an OCSP responder that replays one fixed answer (a response without the
// request's nonce, or with another request's). Each counts the connections it
// accepted and notices when korttid hung up on it, so a test can assert that
// korttid gave up and did not come back, without measuring time.

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/bytes.hpp"

namespace kortti::test {

class PeerDouble {
 public:
  enum class Behaviour {
    silent,   // reads the request, never answers
    trickle,  // status line and headers at once, then the body one byte a second
    replay,   // answers every request with `body` at once
  };
  // How long a trickle lasts before the double gives up itself: far beyond
  // any timeout the tests configure, so only a client that cut it off ends
  // it earlier.
  static constexpr std::size_t kTrickleBytes = 40;

  explicit PeerDouble(Behaviour behaviour, Bytes body = {}, std::string content_type = "application/ocsp-response")
      : behaviour_(behaviour), body_(std::move(body)), content_type_(std::move(content_type)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 16) != 0 || ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        ::pipe2(stop_, O_CLOEXEC) != 0)
      throw std::runtime_error("the peer double cannot listen");
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~PeerDouble() {
    (void)!::write(stop_[1], "x", 1);  // wakes every poll below
    acceptor_.join();
    for (auto& t : connections_threads_) t.join();
    ::close(listener_);
    ::close(stop_[0]);
    ::close(stop_[1]);
  }
  PeerDouble(const PeerDouble&) = delete;
  PeerDouble& operator=(const PeerDouble&) = delete;

  [[nodiscard]] int port() const noexcept { return port_; }
  [[nodiscard]] std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  [[nodiscard]] int connections() const {
    std::lock_guard lock(mutex_);
    return connections_;
  }
  // Connections the client closed before the double was done with them.
  [[nodiscard]] int hung_up() const {
    std::lock_guard lock(mutex_);
    return hung_up_;
  }
  // Waits (bounded) until `n` connections were accepted; the count then.
  int wait_connections(int n, std::chrono::seconds limit = std::chrono::seconds(60)) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, limit, [&] { return connections_ >= n; });
    return connections_;
  }
  // Waits (bounded) until `n` connections were hung up on; the count then.
  int wait_hung_up(int n, std::chrono::seconds limit = std::chrono::seconds(60)) {
    std::unique_lock lock(mutex_);
    // Also done when every connection has ended without reaching `n`.
    changed_.wait_for(lock, limit, [&] { return hung_up_ >= n || finished_ == connections_; });
    return hung_up_;
  }
  // What a replaying double answers from now on.
  void replay(Bytes body) {
    std::lock_guard lock(mutex_);
    body_ = std::move(body);
  }

  // The body of the last request (an OCSP request: DER).
  [[nodiscard]] Bytes last_request() const {
    std::lock_guard lock(mutex_);
    return last_request_;
  }

 private:
  // Waits for the connection to be readable or the double to stop; false
  // when stopping or after `ms` without anything.
  enum class Wait { readable, idle, stopping };
  Wait wait(int fd, int ms) const {
    pollfd fds[2] = {{fd, POLLIN, 0}, {stop_[0], POLLIN, 0}};
    if (::poll(fds, 2, ms) <= 0) return Wait::idle;
    if (fds[1].revents != 0) return Wait::stopping;
    return Wait::readable;
  }

  void accept_loop() {
    for (;;) {
      pollfd fds[2] = {{listener_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) <= 0 || fds[1].revents != 0) return;
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      {
        std::lock_guard lock(mutex_);
        ++connections_;
      }
      changed_.notify_all();
      connections_threads_.emplace_back([this, fd] {
        const bool hung_up = serve(fd);
        ::close(fd);
        {
          std::lock_guard lock(mutex_);
          ++finished_;
          if (hung_up) ++hung_up_;
        }
        changed_.notify_all();
      });
    }
  }

  // True when the client hung up first.
  bool serve(int fd) {
    std::string request;
    std::size_t body_at = std::string::npos, length = 0;
    // The request: headers, then Content-Length bytes of body.
    while (body_at == std::string::npos || request.size() < body_at + length) {
      if (const Wait w = wait(fd, -1); w != Wait::readable) return false;
      char buf[4096];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return true;
      request.append(buf, static_cast<std::size_t>(n));
      if (body_at == std::string::npos && (body_at = request.find("\r\n\r\n")) != std::string::npos) {
        body_at += 4;
        for (const char* name : {"Content-Length:", "content-length:"})
          if (auto at = request.find(name); at != std::string::npos && at < body_at)
            length = std::stoul(request.substr(at + std::string(name).size()));
      }
    }
    {
      std::lock_guard lock(mutex_);
      last_request_.assign(request.begin() + static_cast<std::ptrdiff_t>(body_at), request.end());
    }
    switch (behaviour_) {
      case Behaviour::silent:
        return until_hung_up(fd, -1);
      case Behaviour::replay: {
        Bytes body;
        {
          std::lock_guard lock(mutex_);
          body = body_;
        }
        const std::string head = "HTTP/1.0 200 OK\r\nContent-Type: " + content_type_ +
                                 "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
        return !send_all(fd, head) || !send_all(fd, std::string(body.begin(), body.end()));
      }
      case Behaviour::trickle: {
        // A DER SEQUENCE announcing 4092 bytes of content, never delivered.
        if (!send_all(fd, "HTTP/1.0 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: 4096\r\n\r\n"))
          return true;
        const std::string body = std::string("\x30\x82\x0f\xfc", 4) + std::string(kTrickleBytes, '\0');
        for (std::size_t i = 0; i < kTrickleBytes; ++i) {
          if (!send_all(fd, body.substr(i, 1))) return true;
          if (until_hung_up(fd, 1000)) return true;
        }
        return false;
      }
    }
    return false;
  }

  // Reads and ignores until the client hangs up (true), `ms` pass without
  // anything (false), or the double stops (false).
  bool until_hung_up(int fd, int ms) const {
    for (;;) {
      const Wait w = wait(fd, ms);
      if (w != Wait::readable) return false;
      char buf[4096];
      if (::recv(fd, buf, sizeof buf, 0) <= 0) return true;
    }
  }

  static bool send_all(int fd, const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }

  Behaviour behaviour_;
  Bytes body_;
  std::string content_type_;
  int listener_ = -1;
  int stop_[2] = {-1, -1};
  int port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> connections_threads_;  // the acceptor's; joined after it
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  int connections_ = 0;
  int finished_ = 0;
  int hung_up_ = 0;
  Bytes last_request_;
};

}  // namespace kortti::test
