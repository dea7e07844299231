// One tunnel on its own thread: connect, handshake with the card key,
// relay. Blocking calls here are bounded by the handshake timeout and by
// `stop`, which the relay loop looks at every 200 ms.

#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "tls/tunnels.hpp"

namespace kortti::tls {

namespace {

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};

// A TCP connection to host:port by `deadline` (all addresses together),
// given up at `stop`; -1 with `error` set. The name is resolved first
// (getaddrinfo has no time limit: an address in `connect` needs no lookup).
int connect_upstream(const Upstream& u, std::chrono::steady_clock::time_point deadline, const std::atomic<bool>& stop,
                     std::string& error) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(u.host.c_str(), u.port.c_str(), &hints, &found); rc != 0) {
    error = "cannot resolve " + u.host + ": " + ::gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      error = "cannot connect to " + u.host + ":" + u.port + ": " + std::strerror(errno);
      ::close(fd);
      fd = -1;
      continue;
    }
    // Connected, refused, or out of time, looking at `stop` every 200 ms.
    pollfd p{fd, POLLOUT, 0};
    int ready = 0;
    while (ready == 0 && !stop) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) break;
      ready = ::poll(&p, 1, static_cast<int>(std::min<long>(left, 200)));
      if (ready < 0 && errno == EINTR) ready = 0;
    }
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (ready != 1 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error != 0) {
      error = "cannot connect to " + u.host + ":" + u.port + ": " +
              (so_error != 0 ? std::strerror(so_error) : std::string(stop ? "the tunnel was ended" : "timed out"));
      ::close(fd);
      fd = -1;
      if (stop || std::chrono::steady_clock::now() >= deadline) break;
    }
  }
  ::freeaddrinfo(found);
  return fd;
}

// Bytes both ways until either side closes or `stop`, full duplex: a server
// that answers while it still reads (an echo) must never wait for us while
// we wait for it. Each direction has a bounded buffer; a full one stops
// reading from its source (back-pressure), so a slow side slows the other
// and korttid holds at most kBuffer bytes per direction. A client that has
// sent all it will (a half-close) still gets the answer until the server
// closes.
void relay(SSL* ssl, int upstream, int local, TunnelState& state) {
  constexpr std::size_t kBuffer = 256 * 1024;
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  std::string to_upstream;
  std::string to_local;
  bool local_open = true;     // the client may still send
  bool upstream_open = true;  // the server may still send
  char buf[16384];
  while (!state.stop) {
    const bool room_up = to_upstream.size() < kBuffer;
    const bool room_down = to_local.size() < kBuffer;
    pollfd p[2] = {{upstream, 0, 0}, {local, 0, 0}};
    if (upstream_open && room_down) p[0].events |= POLLIN;
    if (!to_upstream.empty()) p[0].events |= POLLOUT;
    if (local_open && room_up) p[1].events |= POLLIN;
    if (!to_local.empty()) p[1].events |= POLLOUT;
    // Records OpenSSL already decrypted are not visible to poll().
    const bool decrypted = upstream_open && room_down && SSL_pending(ssl) > 0;
    // poll() reports a hang-up whatever was asked: a side nothing is wanted
    // from is left out, or a server's reset while the client's buffer is
    // full would wake this loop at once, round after round.
    if (p[0].events == 0) p[0].fd = -1;
    if (::poll(p, 2, decrypted ? 0 : 200) < 0 && errno != EINTR) return;
    if ((p[1].revents & (POLLERR | POLLNVAL)) != 0) return;
    // A client gone entirely takes nothing more; what it sent before its
    // hang-up is read first (below), while it may still send.
    if ((p[1].revents & POLLHUP) != 0 && !(local_open && room_up)) return;

    if (local_open && room_up && (p[1].revents & (POLLIN | POLLHUP)) != 0) {
      const ssize_t n = ::read(local, buf, sizeof buf);
      if (n > 0) {
        to_upstream.append(buf, static_cast<std::size_t>(n));
      } else if (n == 0) {
        if ((p[1].revents & POLLHUP) != 0) return;  // gone entirely
        local_open = false;
      } else if (errno != EAGAIN && errno != EINTR) {
        return;
      }
    }
    if (!to_upstream.empty()) {
      std::size_t written = 0;
      const int rc = SSL_write_ex(ssl, to_upstream.data(), to_upstream.size(), &written);
      if (rc == 1) {
        to_upstream.erase(0, written);
        state.sent += written;
      } else if (const int why = SSL_get_error(ssl, rc); why != SSL_ERROR_WANT_READ && why != SSL_ERROR_WANT_WRITE) {
        return;
      }
    }
    while (upstream_open && to_local.size() < kBuffer) {
      std::size_t got = 0;
      const int rc = SSL_read_ex(ssl, buf, sizeof buf, &got);
      if (rc == 1) {
        to_local.append(buf, got);
        state.received += got;
        continue;
      }
      const int why = SSL_get_error(ssl, rc);
      if (why != SSL_ERROR_WANT_READ && why != SSL_ERROR_WANT_WRITE) upstream_open = false;  // closed, or an alert
      break;
    }
    if (!to_local.empty()) {
      const ssize_t n = ::write(local, to_local.data(), to_local.size());
      if (n > 0)
        to_local.erase(0, static_cast<std::size_t>(n));
      else if (n < 0 && errno != EAGAIN && errno != EINTR)
        return;
    }
    if (!upstream_open && to_local.empty()) return;
  }
}

// Our own CertificateVerify's algorithm as s_server names it: "RSA-PSS+SHA256".
std::string describe_sigalg(SSL* ssl) {
  int type = NID_undef;
  int md = NID_undef;
  if (SSL_get_signature_type_nid(ssl, &type) != 1 || SSL_get_signature_nid(ssl, &md) != 1) return "";
  const std::string kind = type == EVP_PKEY_RSA_PSS ? "RSA-PSS" : type == EVP_PKEY_RSA ? "RSA" : "ECDSA";
  return kind + "+" + OBJ_nid2sn(md);
}

}  // namespace

std::shared_ptr<SSL_CTX> upstream_context(const CardKeys& keys, const Upstream& u) {
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new_ex(keys.context(), nullptr, TLS_client_method()), SslCtxFree{});
  if (!ctx) throw std::runtime_error(openssl_error("cannot make a TLS context"));
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(ctx.get(), u.ca_file.c_str(), nullptr) != 1)
    throw std::runtime_error(openssl_error("tls upstream " + u.name + ": cannot read ca_file " + u.ca_file));
  SSL_CTX_set_min_proto_version(ctx.get(), u.min_version);
  // Every handshake a full one with the card: no session resumption.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  if (!u.alpn.empty()) {
    Bytes wire;
    for (const auto& p : u.alpn) {
      wire.push_back(static_cast<std::uint8_t>(p.size()));
      wire.insert(wire.end(), p.begin(), p.end());
    }
    SSL_CTX_set_alpn_protos(ctx.get(), wire.data(), static_cast<unsigned>(wire.size()));
  }
  return ctx;
}

void run_tunnel(const CardKeys& keys, TunnelPlan plan, const HandshakeSigner& signer, TunnelState& state,
                const std::function<void(const HandshakeReport&)>& handshake_done) {
  OwnedFd local(plan.local_fd);
  HandshakeReport report;
  auto fail = [&](std::string why) {
    report.error = std::move(why);
    handshake_done(report);
  };
  std::string error;
  OwnedFd upstream(connect_upstream(plan.upstream, plan.handshake_deadline, state.stop, error));
  if (upstream.get() < 0) return fail(error);

  // The upstream's context (its roots, versions, ALPN) is made once, at
  // start; the card's certificate and key go on this connection only.
  std::unique_ptr<SSL, SslFree> ssl(plan.context ? SSL_new(plan.context.get()) : nullptr);
  // By the time the card is asked, the version and our signature algorithm
  // are settled: the audit line of the signature names them.
  EvpPkeyPtr key = keys.key(plan.certificate, [&](DigestAlgorithm a, Scheme s, const Bytes& digest) {
    report.card_asked = true;
    return signer(a, s, digest, std::string(SSL_get_version(ssl.get())) + " " + describe_sigalg(ssl.get()));
  });
  X509Ptr cert = keys.certificate(plan.certificate);
  if (!key || !cert || !ssl) return fail(openssl_error("cannot set up TLS"));
  const bool pkcs1_only = !plan.rsa_pss && EVP_PKEY_is_a(key.get(), "RSA") == 1;
  if (pkcs1_only) {
    // TLS 1.3 needs RSA-PSS; a token without it signs PKCS#1 on TLS 1.2.
    SSL_set_max_proto_version(ssl.get(), TLS1_2_VERSION);
    SSL_set1_client_sigalgs_list(ssl.get(), "RSA+SHA256:RSA+SHA384:RSA+SHA512");
  }
  if (SSL_use_certificate(ssl.get(), cert.get()) != 1 || SSL_use_PrivateKey(ssl.get(), key.get()) != 1)
    return fail(openssl_error("the card certificate does not go with its key"));
  // A name is sent as SNI and checked against the certificate's DNS names;
  // an address is not sent (RFC 6066) and is checked against its IP names.
  const std::string& name = plan.upstream.server_name;
  X509_VERIFY_PARAM* check = SSL_get0_param(ssl.get());
  if (X509_VERIFY_PARAM_set1_ip_asc(check, name.c_str()) != 1) {
    ERR_clear_error();
    // Without the name set nothing would check it: no handshake then.
    if (SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(name.c_str())) !=
            1 ||
        SSL_set1_host(ssl.get(), name.c_str()) != 1)
      return fail(openssl_error("cannot set the server name " + name));
  }
  SSL_set_fd(ssl.get(), upstream.get());

  const auto deadline = plan.handshake_deadline;
  for (;;) {
    const int rc = SSL_connect(ssl.get());
    if (rc == 1) break;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (state.stop || left <= 0) return fail("the handshake did not finish in time");
    const int why = SSL_get_error(ssl.get(), rc);
    if (why != SSL_ERROR_WANT_READ && why != SSL_ERROR_WANT_WRITE) {
      const long verify = SSL_get_verify_result(ssl.get());
      if (verify != X509_V_OK)
        return fail(std::string("the upstream's certificate is not trusted: ") + X509_verify_cert_error_string(verify));
      if (pkcs1_only && ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION)
        return fail("the upstream wants TLS 1.3, whose RSA signatures are PSS, and the token has no RSA-PSS (" +
                    openssl_error("") + ")");
      return fail(openssl_error("the handshake failed"));
    }
    // Wait for what OpenSSL wants, looking at `stop` and the deadline every 200 ms.
    pollfd p{upstream.get(), static_cast<short>(why == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), 0};
    ::poll(&p, 1, static_cast<int>(std::min<long>(left, 200)));
  }
  report.ok = true;
  report.version = SSL_get_version(ssl.get());
  report.signature = describe_sigalg(ssl.get());
  handshake_done(report);
  ::fcntl(local.get(), F_SETFL, ::fcntl(local.get(), F_GETFL) | O_NONBLOCK);
  relay(ssl.get(), upstream.get(), local.get(), state);
  // Whoever ended it, the upstream hears so (close_notify), not a bare reset.
  SSL_shutdown(ssl.get());
}

}  // namespace kortti::tls
