// `kortti tunnels` and `kortti tls connect`: the forward tunnels that log in
// with the card, listed, and one of them joined to standard input and output.

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>
#include <stdexcept>

#include "client/commands.hpp"
#include "client/table.hpp"

namespace kortti::cli {

namespace {

using client::Client;

int cmd_tunnels(Client& c, const Globals& g) {
  const Json upstreams = c.call("tls.upstreams");
  const Json tunnels = c.call("tls.tunnels");
  if (g.json) return print_json({{"upstreams", upstreams}, {"tunnels", tunnels}}), 0;
  client::Table u({"UPSTREAM", "SERVER", "NAME CHECKED", "LISTEN", "STATE"});
  for (const auto& x : upstreams)
    u.add({text(x, "name"), text(x, "connect"), text(x, "server_name"), text(x, "listen"), text(x, "state")});
  u.print(std::cout);
  if (tunnels.empty()) {
    std::cout << "\nno tunnel open\n";
    return 0;
  }
  std::cout << "\n";
  client::Table t({"ID", "UPSTREAM", "UID", "CERT ID", "TLS", "SIGNATURE", "SINCE", "SENT", "RECEIVED"});
  for (const auto& x : tunnels)
    t.add({std::to_string(x.value("id", 0)), text(x, "upstream"), std::to_string(x.value("uid", 0)), text(x, "cert_id"),
           text(x, "version"), text(x, "signature_algorithm"), text(x, "since"),
           std::to_string(x.value("bytes_sent", 0ULL)), std::to_string(x.value("bytes_received", 0ULL))});
  t.print(std::cout);
  return 0;
}

// To a socket without SIGPIPE: a tunnel korttid closed is an ordinary end.
bool write_all(int fd, const char* data, std::size_t size, bool socket) {
  while (size > 0) {
    const ssize_t n = socket ? ::send(fd, data, size, MSG_NOSIGNAL) : ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// Standard input to the tunnel and the tunnel to standard output, until the
// tunnel closes; end of input is passed on as a half-close. `heard`: whether
// any byte came from the tunnel. 1 when a side broke: the tunnel, standard
// output, or standard input (whose end so far is passed on all the same).
int relay(int tunnel, bool& heard) {
  char buf[16384];
  bool input_open = true;
  int status = 0;
  bool unheard_write_failed = false;  // a write the tunnel refused before anything came
  auto end_input = [&](bool broke) {
    input_open = false;
    ::shutdown(tunnel, SHUT_WR);
    if (broke) status = 1;
  };
  for (;;) {
    pollfd p[2] = {{tunnel, POLLIN, 0}, {STDIN_FILENO, static_cast<short>(input_open ? POLLIN : 0), 0}};
    if (::poll(p, input_open ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t n = ::read(tunnel, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      // korttid refuses a tunnel (no session, say) by closing it unread:
      // a reset, before anything came, which the caller explains.
      if (n < 0) return errno == ECONNRESET && !heard ? 0 : 1;
      // An answer that came after our bytes were refused is not a whole
      // exchange: the server never had them all.
      if (n == 0) return unheard_write_failed && heard ? 1 : status;
      heard = true;
      if (!write_all(STDOUT_FILENO, buf, static_cast<std::size_t>(n), false)) return 1;
    }
    if (input_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        end_input(n < 0);
      } else if (!write_all(tunnel, buf, static_cast<std::size_t>(n), true)) {
        // The server stopped reading (or the tunnel broke): what it sent
        // before, an error page say, is still read to its end. Closed before
        // anything came, it is korttid's refusal, which the caller explains,
        // whether it came before our first bytes or after.
        const bool closed = errno == EPIPE || errno == ECONNRESET;
        unheard_write_failed = !heard && closed;
        end_input(!unheard_write_failed);
      }
    }
  }
}

int cmd_connect(Client& c, const std::string& name) {
  std::string path;
  for (const auto& u : c.call("tls.upstreams"))
    if (text(u, "name") == name) path = text(u, "listen");
  if (path.empty()) throw std::runtime_error("no upstream '" + name + "' in korttid's [tls] (kortti tunnels)");
  const int fd = client::connect_listener(path);
  if (fd < 0) throw std::runtime_error("cannot connect to " + path + ": " + std::strerror(errno));
  bool heard = false;
  const int rc = relay(fd, heard);
  ::close(fd);
  // korttid closes a tunnel it will not open without a word on it (the
  // bytes belong to the server); the reason is in its log.
  if (rc == 0 && !heard) {
    std::cerr << "kortti: the tunnel closed before the server sent anything. korttid closes it when you have no\n"
                 "PIN1 session (kortti login), the server cannot be reached or is not trusted, or the handshake\n"
                 "fails; its log says which (journalctl -u korttid).\n";
    return 1;
  }
  if (rc != 0) std::cerr << "kortti: the tunnel to " << name << " broke (a reset, or a read or write error)\n";
  return rc;
}

}  // namespace

Runner define_tunnels(CLI::App& cmd) {
  cmd.footer(
      "\nThe upstreams korttid's [tls] names, and the tunnels open to them: whose,\n"
      "with which card certificate, the TLS version and signature algorithm, bytes.\n"
      "Only your own tunnels are listed unless you are in [access] admin.");
  return {[](Client& c, const Globals& g) { return cmd_tunnels(c, g); }, {}};
}

Runner define_tls(CLI::App& cmd) {
  cmd.footer(
      "\nkortti tls connect NAME joins standard input and output to upstream NAME's\n"
      "tunnel: korttid makes the TLS connection and logs in with your card's\n"
      "authentication key (log in first: kortti login). Logged in on several\n"
      "cards, the server gets the first whose key signs with an algorithm its\n"
      "certificate request takes, issued under a CA it names if one is (more in\n"
      "docs/authentication.md).\n"
      "\n"
      "The data in the tunnel is what the server speaks, in the clear: korttid\n"
      "does the TLS. Use it as an ssh ProxyCommand:\n"
      "  ssh -o ProxyCommand='kortti tls connect git' git@git.example.fi\n"
      "or give the upstream's socket (the LISTEN column of kortti tunnels) to\n"
      "a client that can use one:\n"
      "  curl --unix-socket /run/korttid/tls/sso.sock http://sso.example.fi/\n"
      "An upstream that listens on a loopback TCP port (127.0.0.1:18443) serves\n"
      "programs that speak first, never a web browser: korttid refuses a\n"
      "connection whose first bytes a browser would send (an Origin, Sec-Fetch-*\n"
      "or Mozilla/ User-Agent header, a Host that is neither the listener nor\n"
      "the server, TLS), answering an HTTP request with 403 and the reason.\n"
      "  curl http://127.0.0.1:18443/\n"
      "\n"
      "Exit status: 0 when the tunnel ends after the server sent something and\n"
      "took all that was sent to it; 1 when it closed before the server sent\n"
      "anything (no PIN1 session, the server unreachable or untrusted, a failed\n"
      "handshake: korttid's log says which) or the connection broke.");
  auto name = std::make_shared<std::string>();
  auto* connect = cmd.add_subcommand("connect", "join standard input and output to an upstream's tunnel");
  connect->add_option("NAME", *name, "the upstream (kortti tunnels)")->required();
  cmd.require_subcommand(1);
  return {[name](Client& c, const Globals&) { return cmd_connect(c, *name); }, {}};
}

}  // namespace kortti::cli
