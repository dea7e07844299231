#pragma once

// The TLS tunnels' tests against the real korttid and `openssl s_server`:
// korttid with one upstream, "sso", SoftHSM2 cards logged in, and a client
// on the tunnel's socket. Shared by tls_test.cpp (one card, the tunnel's
// life) and tls_cards_test.cpp (which of several cards is presented).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/softhsm_fixture.hpp"

namespace kortti::test {

struct Exchange {
  bool connected = false;
  std::string answer;  // everything the tunnel sent back before it closed
};

// A connection to a tunnel's listener: a Unix socket, or a loopback TCP port.
inline int connect_listener(const std::string& where) {
  const int fd = client::connect_listener(where);
  if (fd < 0) throw std::runtime_error("connect " + where);
  return fd;
}

// Reads from `fd` until `want` has arrived, the peer closes, or `timeout`.
// Returns what arrived; `closed` says whether the peer closed.
inline std::string read_until(int fd, const std::string& want, std::chrono::milliseconds timeout,
                              bool* closed = nullptr) {
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline && (want.empty() || got.find(want) == std::string::npos)) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) != 1) continue;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      if (closed != nullptr) *closed = true;
      break;
    }
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

// Connects to a tunnel's socket, sends an HTTP request and reads until the
// tunnel closes (or `timeout`).
// One request on a connected tunnel `fd`, which it closes.
inline Exchange through_fd(int fd, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  Exchange out;
  out.connected = true;
  const std::string request = "GET / HTTP/1.0\r\n\r\n";
  (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  out.answer = read_until(fd, "", timeout);
  ::close(fd);
  return out;
}

inline Exchange through(const std::string& socket, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  return through_fd(connect_listener(socket), timeout);
}

// A plain, non-blocking listener on 127.0.0.1, for an upstream: a
// connection completes in its backlog whether or not it is accepted, and
// accept() shows whether anyone came.
inline int plain_listener() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(fd, 8) != 0)
    throw std::runtime_error("cannot listen on 127.0.0.1");
  return fd;
}

inline int local_port(int fd) {
  sockaddr_in address{};
  socklen_t size = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  return ntohs(address.sin_port);
}

class Tls : public SoftHsmDaemonTest {
 protected:
  void SetUp() override {}

  // korttid with one upstream, "sso", at `server`.
  void start_with(const TlsServer& server, const std::string& ca_file = "",
                  const std::string& server_name = "localhost") {
    start_at(server.port(), ca_file.empty() ? server.certificate().string() : ca_file, server_name);
  }

  void start_at(int port, const std::string& ca_file, const std::string& server_name = "localhost",
                int handshake_timeout_s = 10, int max_tunnels = 16) {
    socket_ = tcp_ ? "127.0.0.1:" + std::to_string(closed_port()) : (tokens_dir_.path() / "sso.sock").string();
    DaemonOptions o = no_pss_ ? shim_options("KORTTI_SHIM_NO_PSS", "1") : DaemonOptions{};
    o.extra = "[tls]\nenabled = true\nhandshake_timeout_s = " + std::to_string(handshake_timeout_s) +
              "\nmax_tunnels = " + std::to_string(max_tunnels) + "\n" + tls_extra_ +
              "[[tls.upstream]]\nname = \"sso\"\nconnect = \"" + upstream_host_ + ":" + std::to_string(port) +
              "\"\nserver_name = \"" + server_name + "\"\n" +
              (ca_file.empty() ? "" : "ca_file = \"" + ca_file + "\"\n") + "listen = \"" + socket_ + "\"\n" +
              (access_.empty() ? "" : "access = " + access_ + "\n") + upstream_extra_ + "\n" + tables_;
    o.ipc = ipc_extra_;
    o.env.insert(env_.begin(), env_.end());
    o.wrapper = wrapper_;
    start(std::move(o));
  }

  void login(const std::string& card) {
    daemon_->connect()->call("session.login", {{"token_id", wstr(token_ids_.at(card))}, {"pin", kPin}});
  }

  // Logs `card` out through `c`: the tunnel whose client end is `fd` must
  // close for it (`fd` is closed here).
  void expect_logout_ends_tunnel(client::Client& c, const std::string& card, int fd) {
    c.call("session.logout", {{"token_id", wstr(token_ids_.at(card))}});
    bool closed = false;
    read_until(fd, "", std::chrono::seconds(5), &closed);
    ::close(fd);
    EXPECT_TRUE(closed) << "the tunnel outlived the session on " << card;
    EXPECT_NE(daemon_->log().find("ends: the PIN1 session ended"), std::string::npos) << daemon_->log();
  }

  // A line through the tunnel `fd` to an `s_server -rev` comes back reversed.
  void expect_reversed(int fd) {
    const std::string line = "yksi\n";
    ASSERT_EQ(::send(fd, line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
    EXPECT_NE(read_until(fd, "isky", std::chrono::seconds(10)).find("isky"), std::string::npos) << daemon_->log();
  }

  // A connection to the tunnel's socket is closed at once, nothing coming
  // back, and the log says `why`.
  void expect_closed_at_once(const std::string& why) {
    bool closed = false;
    const int fd = connect_listener(socket_);
    EXPECT_EQ(read_until(fd, "", std::chrono::seconds(5), &closed), "");
    EXPECT_TRUE(closed);
    ::close(fd);
    EXPECT_NE(daemon_->log().find(why), std::string::npos) << daemon_->log();
  }

  // korttid with `server` (an `s_server -rev`) as "sso", cardA logged in,
  // and a tunnel through which one line went and came back reversed; `fd`
  // is the client's end of it, half-closed after the line if `half_close`.
  // (A void function, so that it may ASSERT: call it in
  // ASSERT_NO_FATAL_FAILURE.)
  void open_reversing_tunnel(const TlsServer& server, int& fd, bool half_close = false) {
    start_with(server);
    login("cardA");
    fd = connect_listener(socket_);
    const std::string line = "hei\n";
    ASSERT_EQ(::send(fd, line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
    if (half_close) {
      ASSERT_EQ(::shutdown(fd, SHUT_WR), 0);
    }
    EXPECT_NE(read_until(fd, "ieh", std::chrono::seconds(10)).find("ieh"), std::string::npos)
        << (half_close ? "a half-closed client still gets the server's answer" : "");
  }

  // korttid with `server` as "sso", cardA and cardB logged in, and one
  // exchange through the tunnel: the server saw `signature` (its "Peer
  // signature type"), and the handshake's audit line and korttid's log name
  // `card`'s certificate. (Void, so that it may ASSERT.)
  void expect_two_cards_give(const TlsServer& server, const std::string& card, const std::string& signature) {
    start_with(server);
    login("cardA");
    login("cardB");
    const Exchange e = through(socket_);
    EXPECT_NE(e.answer.find(signature), std::string::npos) << e.answer << daemon_->log() << server.log();
    const std::vector<Json> lines = audit_lines_once(3);  // two logins, the handshake
    ASSERT_EQ(lines.size(), 3U) << daemon_->audit();
    EXPECT_EQ(lines[2]["cert_id"], wstr(cert_id(card, "02"))) << lines[2].dump();
    EXPECT_EQ(lines[2]["outcome"], "ok") << lines[2].dump();
    EXPECT_NE(daemon_->log().find("tunnel open for uid " + std::to_string(::getuid()) + " with " + cert_id(card, "02")),
              std::string::npos)
        << daemon_->log();
  }

  // The outcome lines (audit_test pins down the begun line before each).
  std::vector<Json> audit_lines() { return outcomes(daemon_->audit()); }

  // A failed handshake's line is written after the tunnel has closed.
  std::vector<Json> audit_lines_once(std::size_t count) {
    std::vector<Json> lines = audit_lines();
    for (int i = 0; i < 200 && lines.size() < count; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      lines = audit_lines();
    }
    return lines;
  }

  std::string socket_;                       // the listener: a Unix socket, or 127.0.0.1:PORT with tcp_
  bool tcp_ = false;                         // "sso" listens on a loopback TCP port
  bool no_pss_ = false;                      // the token through the test double that lacks RSA-PSS
  std::string access_;                       // the upstream's `access`, as TOML
  std::string upstream_extra_;               // more of the upstream's keys, as TOML lines
  std::string ipc_extra_;                    // lines for the [ipc] table
  std::string tls_extra_;                    // more of the [tls] table's keys, as TOML lines
  std::string tables_;                       // further tables, after the upstream
  std::map<std::string, std::string> env_;   // korttid's environment
  std::string upstream_host_ = "127.0.0.1";  // the upstream's host in `connect`
  std::vector<std::string> wrapper_;         // DaemonOptions::wrapper
};

}  // namespace kortti::test
