#pragma once

// ipc/: the Unix-socket JSON-RPC server of docs/protocol.md — framing and
// limits, peer credentials, per-method access control, request deadlines,
// the method table, and event fan-out. What a method does is service/'s.

#include <sys/types.h>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/json.hpp"
#include "common/peer.hpp"

namespace kortti::pkcs11 {
class TokenService;
}
namespace kortti::pcsc {
class Monitor;
}
namespace kortti::policy {
class PolicyService;
}
namespace kortti::service {
class Service;
}

namespace kortti::tls {
class Tunnels;
}

namespace kortti::ipc {

// Who is on the other end of a connection, read once when it is accepted.
struct Peer : PeerCredentials {
  std::uint64_t connection = 0;
  std::string client;  // as the client named itself in system.hello
};

enum class MethodGroup { read, session, sign, admin };
std::string_view name_of(MethodGroup group) noexcept;

// Who may call which group of methods. Entries: "*", "uid:N", "user:NAME",
// "gid:N", "group:NAME". Names are resolved when the policy is built.
class AccessPolicy {
 public:
  AccessPolicy();  // read, session, sign: anyone who can open the socket; admin: root
  // Throws std::invalid_argument naming the entry it cannot use.
  void set(MethodGroup group, const std::vector<std::string>& entries);
  [[nodiscard]] bool allows(const Peer& peer, MethodGroup group) const;

 private:
  std::array<Principals, 4> rules_;
};

struct ServerOptions {
  std::size_t max_message_bytes = 16 * 1024 * 1024;
  std::size_t max_connections = 64;
  // One uid cannot take every connection (root's included); connections with
  // nothing in flight and no subscription are closed after idle_timeout
  // (zero: never).
  std::size_t max_connections_per_uid = 16;
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(300)};
  std::size_t max_inflight_per_connection = 32;
  // Requests carrying a PIN that one uid may have in flight (queued or
  // running): PINs live in a small locked heap shared by everyone.
  std::size_t max_pin_requests_per_uid = 4;
  // Request and connection log lines one uid may cause a second, averaged
  // over 10 s (common/log_budget.hpp); 0: no limit.
  std::size_t log_lines_per_second_per_uid = 20;
  std::chrono::milliseconds request_timeout{std::chrono::seconds(120)};
  AccessPolicy access;
};

// What the method handlers work with: the operations (service/), and for
// listings and events the services themselves. Pointers are non-owning and
// must outlive the Server.
struct Services {
  service::Service* service = nullptr;
  pkcs11::TokenService* tokens = nullptr;
  pcsc::Monitor* pcsc = nullptr;            // null when [pcsc] enabled = false
  policy::PolicyService* policy = nullptr;  // null: the policy's methods are not offered
  bool documents = false;                   // whether the document methods are offered
  tls::Tunnels* tunnels = nullptr;          // null: the tls.* methods are not offered
  // system.status's "scs": the browsers' interface as korttid serves it (a
  // front end beside this one); empty: null.
  std::function<Json()> scs_status = {};
};

class Server {
 public:
  Server(boost::asio::io_context& io, ServerOptions options, Services services);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds `path` (refusing if another daemon answers there), sets its mode
  // and group. Throws std::system_error. Clients may connect at once; they
  // wait in the backlog until serve().
  void listen(const std::string& path, mode_t mode, std::optional<gid_t> group);
  // Takes a listening socket passed by systemd (sd_listen_fds). Its mode
  // and group are the socket unit's (SocketMode=, SocketGroup=): a warning
  // says where they differ from `mode` and `group` (those given), which
  // only a socket korttid binds itself gets.
  void adopt(int fd, std::optional<mode_t> mode, std::optional<gid_t> group);
  // Starts accepting. korttid calls it once the first token scan is done, so
  // that the first request of a client that started it (socket activation)
  // sees the cards that were already there. Calling it again does nothing.
  void serve();

  // Stops accepting, lets in-flight requests finish for up to `grace`, fails
  // the rest with service_unavailable, closes every connection and removes
  // the socket file it created. `done` runs on the io thread. `others_busy`
  // (optional): work of another front end that the same grace waits for.
  void stop(std::chrono::milliseconds grace, std::function<void()> done, std::function<bool()> others_busy = {});

  void set_access(AccessPolicy access);
  void set_request_timeout(std::chrono::milliseconds timeout);

  // Sends an `event` notification to every connection subscribed to `topic`.
  void publish(std::string_view topic, Json params);

  [[nodiscard]] std::size_t connections() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace kortti::ipc
