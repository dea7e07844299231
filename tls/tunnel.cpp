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

#include "tls/tunnels.hpp"

namespace kortti::tls {

namespace {

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};

// A TCP connection to host:port within `timeout`; -1 with `error` set.
int connect_upstream(const Upstream& u, std::chrono::seconds timeout, std::string& error) {
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
    pollfd p{fd, POLLOUT, 0};
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (::poll(&p, 1, static_cast<int>(timeout.count() * 1000)) != 1 ||
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error != 0) {
      error = "cannot connect to " + u.host + ":" + u.port + ": " +
              (so_error != 0 ? std::strerror(so_error) : std::string("timed out"));
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  return fd;
}

// Waits for what OpenSSL wants on `fd`, at most `ms`; false on timeout.
bool wait_for(SSL* ssl, int rc, int fd, int ms) {
  const int why = SSL_get_error(ssl, rc);
  if (why != SSL_ERROR_WANT_READ && why != SSL_ERROR_WANT_WRITE) return false;
  pollfd p{fd, static_cast<short>(why == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), 0};
  return ::poll(&p, 1, ms) == 1;
}

bool write_all(int fd, const char* data, std::size_t size, const std::atomic<bool>& stop) {
  while (size > 0 && !stop) {
    const ssize_t n = ::write(fd, data, size);
    if (n > 0) {
      data += n;
      size -= static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 200);
    } else {
      return false;
    }
  }
  return size == 0;
}

bool ssl_write_all(SSL* ssl, int fd, const char* data, std::size_t size, const std::atomic<bool>& stop) {
  while (size > 0 && !stop) {
    std::size_t written = 0;
    const int rc = SSL_write_ex(ssl, data, size, &written);
    if (rc == 1) {
      data += written;
      size -= written;
    } else if (!wait_for(ssl, rc, fd, 200) && SSL_get_error(ssl, rc) != SSL_ERROR_WANT_WRITE &&
               SSL_get_error(ssl, rc) != SSL_ERROR_WANT_READ) {
      return false;
    }
  }
  return size == 0;
}

// Bytes both ways until either side closes or `stop`. Each direction is
// written out before more is read from the other: a slow reader slows its
// writer (back-pressure), nothing piles up here.
// A client that has sent all it will (a half-close) still gets the answer:
// the tunnel then only reads from upstream until the server closes.
void relay(SSL* ssl, int upstream, int local, TunnelState& state) {
  char buf[16384];
  bool local_open = true;
  while (!state.stop) {
    // Records OpenSSL already decrypted are not visible to poll().
    if (SSL_pending(ssl) == 0) {
      pollfd p[2] = {{upstream, POLLIN, 0}, {local, static_cast<short>(local_open ? POLLIN : 0), 0}};
      const int ready = ::poll(p, 2, 200);
      if (ready < 0 && errno != EINTR) return;
      if (ready <= 0) continue;
      if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        const ssize_t n = ::read(local, buf, sizeof buf);
        if (n == 0 && (p[1].revents & POLLHUP) != 0) return;  // gone entirely
        if (n == 0) local_open = false;
        if (n < 0 && errno != EAGAIN && errno != EINTR) return;
        if (n > 0) {
          if (!ssl_write_all(ssl, upstream, buf, static_cast<std::size_t>(n), state.stop)) return;
          state.sent += static_cast<std::uint64_t>(n);
        }
      }
      if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    }
    std::size_t got = 0;
    const int rc = SSL_read_ex(ssl, buf, sizeof buf, &got);
    if (rc == 1) {
      if (!write_all(local, buf, got, state.stop)) return;
      state.received += got;
    } else {
      const int why = SSL_get_error(ssl, rc);
      if (why != SSL_ERROR_WANT_READ && why != SSL_ERROR_WANT_WRITE) return;  // closed, or an alert
    }
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

void run_tunnel(const CardKeys& keys, TunnelPlan plan, const Signer& signer, TunnelState& state,
                const std::function<void(const HandshakeReport&)>& handshake_done) {
  Fd local(plan.local_fd);
  HandshakeReport report;
  auto fail = [&](std::string why) {
    report.error = std::move(why);
    handshake_done(report);
  };
  std::string error;
  Fd upstream(connect_upstream(plan.upstream, plan.handshake_timeout, error));
  if (upstream.fd < 0) return fail(error);

  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new_ex(keys.context(), nullptr, TLS_client_method()));
  EvpPkeyPtr key = keys.key(plan.certificate, signer);
  X509Ptr cert = parse_certificate(plan.certificate);
  if (!ctx || !key || !cert) return fail(openssl_error("cannot set up TLS"));
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(ctx.get(), plan.upstream.ca_file.c_str(), nullptr) != 1)
    return fail(openssl_error("cannot read ca_file " + plan.upstream.ca_file));
  SSL_CTX_set_min_proto_version(ctx.get(), plan.upstream.min_version);
  if (!plan.rsa_pss && EVP_PKEY_is_a(key.get(), "RSA") == 1) {
    // TLS 1.3 needs RSA-PSS; a token without it signs PKCS#1 on TLS 1.2.
    SSL_CTX_set_max_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set1_client_sigalgs_list(ctx.get(), "RSA+SHA256:RSA+SHA384:RSA+SHA512");
  }
  if (SSL_CTX_use_certificate(ctx.get(), cert.get()) != 1 || SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1)
    return fail(openssl_error("the card certificate does not go with its key"));
  if (!plan.upstream.alpn.empty()) {
    Bytes wire;
    for (const auto& p : plan.upstream.alpn) {
      wire.push_back(static_cast<std::uint8_t>(p.size()));
      wire.insert(wire.end(), p.begin(), p.end());
    }
    SSL_CTX_set_alpn_protos(ctx.get(), wire.data(), static_cast<unsigned>(wire.size()));
  }
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  // A name is sent as SNI and checked against the certificate's DNS names;
  // an address is not sent (RFC 6066) and is checked against its IP names.
  const std::string& name = plan.upstream.server_name;
  X509_VERIFY_PARAM* check = SSL_get0_param(ssl.get());
  if (X509_VERIFY_PARAM_set1_ip_asc(check, name.c_str()) != 1) {
    ERR_clear_error();
    SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(name.c_str()));
    SSL_set1_host(ssl.get(), name.c_str());
  }
  SSL_set_fd(ssl.get(), upstream.fd);

  const auto deadline = std::chrono::steady_clock::now() + plan.handshake_timeout;
  for (;;) {
    const int rc = SSL_connect(ssl.get());
    if (rc == 1) break;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (state.stop || left <= 0) return fail("the handshake did not finish in time");
    if (!wait_for(ssl.get(), rc, upstream.fd, static_cast<int>(std::min<long>(left, 200)))) {
      const int why = SSL_get_error(ssl.get(), rc);
      if (why == SSL_ERROR_WANT_READ || why == SSL_ERROR_WANT_WRITE) continue;
      const long verify = SSL_get_verify_result(ssl.get());
      if (verify != X509_V_OK)
        return fail(std::string("the upstream's certificate is not trusted: ") + X509_verify_cert_error_string(verify));
      return fail(openssl_error("the handshake failed"));
    }
  }
  report.ok = true;
  report.version = SSL_get_version(ssl.get());
  report.signature = describe_sigalg(ssl.get());
  handshake_done(report);
  ::fcntl(local.fd, F_SETFL, ::fcntl(local.fd, F_GETFL) | O_NONBLOCK);
  relay(ssl.get(), upstream.fd, local.fd, state);
  // Whoever ended it, the upstream hears so (close_notify), not a bare reset.
  SSL_shutdown(ssl.get());
}

}  // namespace kortti::tls
