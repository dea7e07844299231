#pragma once

// Internal to tls/ (docs/architecture.md, Layering); include tls/tls.hpp.
#if !defined(KORTTI_COMPONENT_TLS) && !defined(KORTTI_WHITE_BOX)
#error "tls/tunnels.hpp is internal to tls/; include tls/tls.hpp"
#endif

// One tunnel: a local client's connection, the TLS connection upstream made
// with the card key, and the bytes relayed between them. Runs on its own
// thread from the handshake to the end; the card signature is asked of the
// io thread's service core and waited for here.

#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/bytes.hpp"
#include "common/owned_fd.hpp"
#include "tls/tls.hpp"

namespace kortti::tls {

// An upstream's TLS context: its roots (ca_file), versions and ALPN. Throws
// std::runtime_error when ca_file cannot be read.
std::shared_ptr<SSL_CTX> upstream_context(const CardKeys& keys, const Upstream& upstream);

// One of the caller's authentication certificates, which a handshake may
// present.
struct ClientCertificate {
  std::string cert_id;
  std::string token_id;
  Bytes der;
  std::vector<Bytes> chain;  // its issuers, as pkcs11::CertificateInfo has them
  std::string subject;       // RFC 2253
  KeyType key_type = KeyType::rsa;
  std::string curve;    // "P-256", "P-384", "P-521" for EC keys
  bool rsa_pss = true;  // its token offers RSA-PSS

  // An RSA key on a token without PSS: TLS 1.2 with PKCS#1 signatures only.
  [[nodiscard]] bool pkcs1_only() const { return key_type == KeyType::rsa && !rsa_pss; }
  // Whether the card key makes signatures of the TLS signature scheme
  // `scheme` (RFC 8446 4.2.3's code point) on TLS 1.3 or on 1.2: RSA-PSS
  // where the token has it, PKCS#1 on 1.2, ECDSA on the key's own curve on
  // 1.3 (any curve on 1.2); SHA-256, -384 or -512.
  [[nodiscard]] bool signs_with(std::uint16_t scheme, bool tls13) const;
};

struct TunnelPlan {
  int local_fd = -1;  // owned: closed when the tunnel ends
  Upstream upstream;
  std::shared_ptr<SSL_CTX> context;  // upstream_context()
  uid_t uid = 0;
  pid_t pid = 0;
  // In token order, at least one. When the server asks for a certificate,
  // the one that fits its request is presented (present()).
  std::vector<ClientCertificate> certificates;
  // Connecting, the handshake and the card's signature, all together.
  std::chrono::steady_clock::time_point handshake_deadline;
  // How long what a client sent before it left may take to reach a server
  // that reads slowly (the handshake timeout).
  std::chrono::milliseconds drain_timeout{30000};
  // What a loopback TCP listener's client sent before it was admitted (its
  // first bytes, screened for a web browser's): relayed first.
  std::string first;
};

// What a server's certificate request says of the certificates it takes.
struct CertificateRequest {
  const STACK_OF(X509_NAME) * issuers = nullptr;  // the CA names it lists; none: it names none
  std::vector<std::uint16_t> schemes;             // the signature schemes it and korttid share; empty: unknown
  bool tls13 = true;
};

// Which of `certificates` to present, in token order: the first whose key
// signs with a scheme the server takes and that is issued under a CA it
// names (directly or higher up the chain the card carries); else the first
// whose key signs with such a scheme (without one OpenSSL would send no
// certificate at all); else the first issued under a named CA; else the
// first (the server decides then). `certificates` is not empty.
std::size_t present(const CardKeys& keys, const std::vector<ClientCertificate>& certificates,
                    const CertificateRequest& request);

// The card's signature for a handshake. `occasion` names the handshake as it
// stands when the card is asked, for the audit line: "TLSv1.3 RSA-PSS+SHA256".
using HandshakeSigner =
    std::function<Bytes(DigestAlgorithm algorithm, Scheme scheme, const Bytes& digest, const std::string& occasion)>;

// What the tunnel reports when the handshake is over (ok or not).
struct HandshakeReport {
  bool ok = false;
  bool card_asked = false;  // the handshake got as far as the card's signature
  std::string version;      // "TLSv1.3"
  std::string signature;    // the signature algorithm the card made, e.g. "rsa_pss_rsae_sha256"
  std::string error;
};

// What another thread may know of a running tunnel, and how it ends one.
struct TunnelState {
  std::atomic<bool> stop{false};           // set: the tunnel closes (close_notify upstream) within 200 ms
  std::atomic<bool> card_removed{false};   // why it was stopped, set before `stop`
  std::atomic<std::uint64_t> sent{0};      // bytes from the client to the upstream
  std::atomic<std::uint64_t> received{0};  // and back
};

// What a tunnel tells its owner as its handshake goes, on its own thread.
struct HandshakeHooks {
  // The server asked for a certificate, and this one was chosen
  // (present()); the card is asked next.
  std::function<void(const ClientCertificate&)> chosen;
  // The card's signature with the chosen certificate's key.
  HandshakeSigner sign;
  // The handshake is over, ok or not.
  std::function<void(const HandshakeReport&)> done;
};

// Blocks until the tunnel ends: either side closed, or `state.stop`.
void run_tunnel(const CardKeys& keys, TunnelPlan plan, const HandshakeHooks& hooks, TunnelState& state);

}  // namespace kortti::tls
