#pragma once

// tls/: TLS client authentication with a card key. CardKeys is a small
// OpenSSL 3 provider in its own library context: a card certificate becomes
// an EVP_PKEY whose one private-key operation — the handshake's
// CertificateVerify — is handed to a Signer, which korttid points at the
// token worker. libssl sees an ordinary key; the private key never leaves
// the card. docs/authentication.md has the design and its pitfalls.

#include <openssl/ssl.h>
#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "common/keys.hpp"
#include "common/openssl.hpp"
#include "common/peer.hpp"

namespace kortti::service {
class Service;
}

namespace kortti::tls {

// Signs `digest` (made with `algorithm`) with the card key by `scheme`; an
// ECDSA signature comes back DER-encoded. Runs on the handshake's thread and
// may block until the card answers; throws kortti::Error when it cannot sign.
using Signer = std::function<Bytes(DigestAlgorithm algorithm, Scheme scheme, const Bytes& digest)>;

class CardKeys {
 public:
  CardKeys();
  ~CardKeys();
  CardKeys(const CardKeys&) = delete;
  CardKeys& operator=(const CardKeys&) = delete;

  // The library context TLS runs in (SSL_CTX_new_ex): OpenSSL's default
  // provider for everything, this provider only for card keys.
  [[nodiscard]] OSSL_LIB_CTX* context() const noexcept;

  // The certificate, parsed once: OpenSSL 3 decodes its public key through
  // the decoder framework, which cost 140 µs of every handshake here. Null
  // for bytes that are not a certificate. Thread-safe.
  [[nodiscard]] X509Ptr certificate(const Bytes& der) const;

  // The certificate's public key, its private operation `signer`. Null for
  // a certificate that is not RSA or EC, or when OpenSSL cannot make the key
  // (its error queue says why).
  [[nodiscard]] EvpPkeyPtr key(const Bytes& certificate_der, Signer signer) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// --- forward tunnels ---

// An upstream is configuration only: no client can make korttid present a
// clinician's certificate to a host the admin did not name.
struct Upstream {
  std::string name;
  std::string host;  // of `connect`
  std::string port;
  std::string server_name;    // SNI and the name checked in its certificate
  std::string ca_file;        // roots its certificate is checked against; may be empty with system_roots
  bool system_roots = false;  // the system's roots too: only when the admin asks
  std::string listen;         // a Unix socket's path, or a loopback address and port (127.0.0.1:18443)
  int min_version = TLS1_2_VERSION;
  std::vector<std::string> alpn;
  Principals access = Principals::anyone();  // who may open its tunnels

  bool operator==(const Upstream&) const = default;
};

struct Options {
  bool enabled = false;
  // Who may connect to the listeners: as for the main socket ([ipc]).
  mode_t socket_mode = 0660;
  std::optional<gid_t> socket_group;
  std::chrono::seconds handshake_timeout{30};
  std::size_t max_tunnels = 16;
  // One uid's share of them: a session holder who opens tunnels in a loop
  // leaves room for the other users' cards.
  std::size_t max_tunnels_per_uid = 8;
  // The connection lines of one uid a second, over 10 s, as for korttid's
  // socket ([ipc] log_lines_per_second_per_uid; a budget of its own): a
  // uid that may connect but not tunnel cannot flood the log.
  std::size_t log_lines_per_second_per_uid = 20;
  std::vector<Upstream> upstreams;
};

// The listeners and their tunnels. A local connection is accepted on the io
// thread, its peer's uid read (SO_PEERCRED on a Unix socket, the kernel's
// socket table on a loopback TCP port); that uid must hold a live PIN1
// session on a token with an authentication certificate. A TCP client's
// first bytes must not be a web browser's (browser_guard.hpp). The tunnel then runs on its own
// thread: the upstream's certificate checked against its CA file and name,
// the handshake with the card key (the signature asked of the service core,
// audited there), then bytes both ways until either side closes.
class Tunnels {
 public:
  Tunnels(boost::asio::io_context& io, service::Service& service, Options options);
  ~Tunnels();
  Tunnels(const Tunnels&) = delete;
  Tunnels& operator=(const Tunnels&) = delete;

  // Binds every upstream's socket (with [ipc] socket_mode and socket_group);
  // throws std::runtime_error naming the one that cannot be bound.
  void start();
  // SIGHUP's new list of upstreams, on the io thread: a removed or changed
  // upstream's listener closes and its open tunnels end; a new or changed
  // one's listener opens. One that cannot listen is logged and left closed
  // (tls.upstreams shows it); the others are not held up by it. An
  // unchanged one's CA file is read again for the tunnels opened after.
  void reconfigure(std::vector<Upstream> upstreams);
  struct UpstreamStatus {
    std::string name;
    std::string connect;  // host:port
    std::string server_name;
    std::string listen;
    bool listening = false;
  };
  struct TunnelStatus {
    std::uint64_t id = 0;
    std::string upstream;
    uid_t uid = 0;
    pid_t pid = 0;
    std::string cert_id;
    std::string version;    // "TLSv1.3"; empty during the handshake
    std::string signature;  // e.g. "RSA-PSS+SHA256"
    std::chrono::system_clock::time_point since;
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
  };
  // Snapshots, from the io thread.
  [[nodiscard]] std::vector<UpstreamStatus> upstreams() const;
  [[nodiscard]] std::vector<TunnelStatus> tunnels() const;

  // SIGTERM's first step, with the main socket's: the listeners close and
  // no reload opens one again; the tunnels already open carry on until
  // stop(). On the io thread.
  void stop_accepting();
  // Closes the listeners and ends every tunnel; waits at most `grace`.
  // False when a tunnel thread did not end in time.
  [[nodiscard]] bool stop(std::chrono::milliseconds grace);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace kortti::tls
