#pragma once

// scs/: DVV's Signature Creation Service interface (SCS 1.1) for browser
// EHRs, on https://localhost:53952 — the interface mPollux DigiSign and
// Atostek ID serve, so a page written for them signs through kortti
// unchanged. HTTPS on the loopback addresses only; every signature goes
// through the service core (certificate checks, PIN dialog naming the page,
// audit line with the origin) like one asked over the Unix socket.
//
// The defences (docs/browsers.md): an exact origin allow-list, Host checked
// against DNS rebinding, JSON-only /sign (a preflight for every page),
// a body limit, a rate per origin, connections from the instance's own user
// only, and the authentication key used only for data that names the page.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

namespace kortti::service {
class Service;
}

namespace kortti::scs {

struct Options {
  bool enabled = false;
  std::uint16_t port = 53952;
  std::vector<std::string> allowed_origins;  // exact https://host[:port] origins
  std::string certificate;                   // PEM: the listener's certificate, then its issuer
  std::string key;                           // PEM: its private key
  std::size_t max_body_bytes = 8 * 1024 * 1024;
  std::size_t max_connections = 16;
  std::size_t max_pending_signatures = 2;  // /sign requests running at once (each may wait on a dialog)
  int signatures_per_minute = 20;          // per origin
  std::chrono::seconds request_timeout{120};
  // The port's request lines per second ([ipc] log_lines_per_second_per_uid;
  // a budget of its own): any page the browser lets reach the port can send
  // requests at network speed, and journald's rate limit would then drop
  // other lines, the audit's among them where it goes to the journal.
  std::size_t log_lines_per_second_per_uid = 20;
};

// Thrown by start() when the listener cannot serve: its certificate or key
// cannot be read, or a port is taken. The message says which.
class StartError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Listener {
 public:
  // Connections are taken from the uid `owner` only (the per-user instance's
  // user); another local user's are closed before the TLS handshake.
  Listener(boost::asio::io_context& io, service::Service& service, Options options, uid_t owner);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Binds 127.0.0.1 and ::1 (::1 may be missing) and serves. Throws StartError.
  void start();
  // Takes no more connections and closes those between requests; a request
  // under way (a signature waiting for its user among them) carries on and
  // is answered (korttid's stop gives it [ipc] shutdown_grace_s).
  void stop_accepting();
  // Requests whose headers are in and whose answer is not yet written.
  [[nodiscard]] std::size_t requests_in_progress() const;
  // Closes the listeners and every connection; a signature in flight is
  // cancelled with its request.
  void stop();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace kortti::scs
