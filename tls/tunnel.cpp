// One tunnel on its own thread: connect, handshake with the card key,
// relay. Blocking calls here are bounded by the handshake timeout and by
// `stop`, which the relay loop looks at every 200 ms.

#include <fcntl.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <optional>
#include <stdexcept>

#include "common/connect.hpp"
#include "tls/tunnels.hpp"

namespace kortti::tls {

namespace {

using SslPtr = Owned<SSL, SSL_free>;

// Bytes both ways until either side closes or `stop`, full duplex: a server
// that answers while it still reads (an echo) must never wait for us while
// we wait for it. Each direction has a bounded buffer; a full one stops
// reading from its source (back-pressure), so a slow side slows the other
// and korttid holds at most kBuffer bytes per direction. A client that has
// sent all it will (a half-close) still gets the answer until the server
// closes. A client that leaves entirely still has all it sent before it
// left written upstream, within `drain` (what the server says meanwhile has
// nowhere to go and is dropped); then the tunnel ends.
class Relay {
 public:
  // `first`: what the client sent before the handshake, which goes first.
  Relay(SSL* ssl, int upstream, int local, TunnelState& state, std::chrono::milliseconds drain, std::string first)
      : ssl_(ssl), upstream_(upstream), local_(local), state_(state), to_upstream_(std::move(first)), drain_(drain) {
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  }

  void run() {
    while (!state_.stop && !(client_left_ && std::chrono::steady_clock::now() > drained_by_)) {
      pollfd p[2] = {{upstream_, 0, 0}, {local_, 0, 0}};
      // A read that must write first (OpenSSL answering a key update) waits
      // for room to write, not for bytes it cannot take yet: a server that
      // sent them and stopped reading would wake this loop round after round.
      const bool reading = upstream_open_ && room_down() && !read_wants_write_;
      if (reading) p[0].events |= POLLIN;
      if (!to_upstream_.empty() || half_close_due() || read_wants_write_) p[0].events |= POLLOUT;
      if (local_open_ && room_up()) p[1].events |= POLLIN;
      if (!to_local_.empty()) p[1].events |= POLLOUT;
      // Records OpenSSL already read ahead are not visible to poll(). But
      // SSL_has_pending counts a part of a record too, which only the socket
      // can complete: after a read that wanted more, poll() waits for it.
      const bool decrypted = reading && may_hold_records_ && SSL_has_pending(ssl_) == 1;
      // poll() reports a hang-up whatever was asked: a side nothing is wanted
      // from is left out, or a server's reset while the client's buffer is
      // full (or a client gone while the server's is) would wake this loop
      // at once, round after round.
      if (p[0].events == 0) p[0].fd = -1;
      if (p[1].events == 0 && client_left_) p[1].fd = -1;
      if (::poll(p, 2, decrypted ? 0 : 200) < 0 && errno != EINTR) return;
      if ((p[1].revents & POLLNVAL) != 0) return;
      // A client that closed with our answer unread is reset (POLLERR), one
      // that read it hung up: either way what it sent is still to be read.
      if ((p[1].revents & (POLLHUP | POLLERR)) != 0) left();
      if (!read_local(p[1].revents) || !write_upstream()) return;
      pass_on_half_close();
      read_upstream();
      if (!write_local()) return;
      if (!upstream_open_ && to_local_.empty()) return;
      // A client gone, and all it sent passed on: the end (close_notify).
      if (client_left_ && !local_open_ && to_upstream_.empty()) return;
    }
  }

  // Whether the client's bytes were cut short: some it sent never reached
  // the server. The server must then not get a close_notify, which would
  // tell it the stream was whole.
  [[nodiscard]] bool cut() const {
    if (!to_upstream_.empty()) return true;
    if (!local_open_) return false;
    // Ended while the client may send more (korttid stopping, the card
    // pulled): cut if bytes it sent wait unread, or it is gone with them.
    int unread = 0;
    return client_left_ || (::ioctl(local_, FIONREAD, &unread) == 0 && unread > 0);
  }
  // The alert the server ended the connection with, if it is one that
  // refuses a handshake (OpenSSL's words); empty otherwise.
  [[nodiscard]] const std::string& alert() const { return alert_; }

 private:
  static constexpr std::size_t kBuffer = 256 * 1024;

  [[nodiscard]] bool room_up() const { return to_upstream_.size() < kBuffer; }
  [[nodiscard]] bool room_down() const { return to_local_.size() < kBuffer; }

  // The client reads nothing more: what the server sends is dropped from now on.
  void left() {
    if (client_left_) return;
    client_left_ = true;
    drained_by_ = std::chrono::steady_clock::now() + drain_;
    to_local_.clear();
  }

  // Each step is false when the tunnel ends.
  bool read_local(short revents) {
    if (!local_open_ || !room_up() || (revents & (POLLIN | POLLHUP | POLLERR)) == 0) return true;
    const ssize_t n = ::read(local_, buf_, sizeof buf_);
    if (n > 0) {
      to_upstream_.append(buf_, static_cast<std::size_t>(n));
    } else if (n == 0 || (n < 0 && errno == ECONNRESET)) {
      // The reset comes once what the client sent is read: its end too.
      local_open_ = false;
    } else if (errno != EAGAIN && errno != EINTR) {
      return false;
    }
    return true;
  }

  bool write_upstream() {
    if (to_upstream_.empty()) return true;
    std::size_t written = 0;
    // SSL_get_error reads the thread's error queue: empty before each call.
    ERR_clear_error();
    const int rc = SSL_write_ex(ssl_, to_upstream_.data(), to_upstream_.size(), &written);
    if (rc == 1) {
      to_upstream_.erase(0, written);
      state_.sent += written;
      return true;
    }
    const int why = SSL_get_error(ssl_, rc);
    return why == SSL_ERROR_WANT_READ || why == SSL_ERROR_WANT_WRITE;
  }

  // The client's end of input, once all it sent is written, goes on as
  // close_notify on TLS 1.3: a server that answers at the end of its input
  // (or reads until it) gets it, and its answer still comes back. TLS 1.2
  // has no half-close (a close_notify there makes the server drop what it
  // has not sent yet): the server hears of the end when the client leaves.
  [[nodiscard]] bool half_close_due() const {
    return !local_open_ && !close_sent_ && to_upstream_.empty() && SSL_version(ssl_) == TLS1_3_VERSION;
  }
  void pass_on_half_close() {
    if (!half_close_due()) return;
    ERR_clear_error();
    if (SSL_shutdown(ssl_) >= 0) {
      close_sent_ = true;
      return;
    }
    // Not written yet (the socket's buffer is full): tried again next round;
    // anything else is the upstream gone, which its read will say.
    const int why = SSL_get_error(ssl_, -1);
    if (why != SSL_ERROR_WANT_WRITE && why != SSL_ERROR_WANT_READ) close_sent_ = true;
    ERR_clear_error();
  }

  void read_upstream() {
    read_wants_write_ = false;
    // Stopped for want of room, OpenSSL may still hold whole records.
    may_hold_records_ = true;
    while (upstream_open_ && room_down()) {
      std::size_t got = 0;
      ERR_clear_error();
      const int rc = SSL_read_ex(ssl_, buf_, sizeof buf_, &got);
      if (rc == 1) {
        if (!client_left_) to_local_.append(buf_, got);
        state_.received += got;
        continue;
      }
      const int why = SSL_get_error(ssl_, rc);
      may_hold_records_ = false;
      if (why == SSL_ERROR_WANT_WRITE) {
        read_wants_write_ = true;
      } else if (why != SSL_ERROR_WANT_READ) {
        upstream_open_ = false;  // closed, or an alert
        if (why == SSL_ERROR_SSL && refusal(ERR_peek_last_error())) alert_ = openssl_error("an alert");
        ERR_clear_error();
      }
      return;
    }
  }

  // Whether OpenSSL's error `e` is an alert received that refuses a
  // handshake: a certificate or its signature not taken. (OpenSSL's reason
  // for an alert received is its number past SSL_AD_REASON_OFFSET.)
  static bool refusal(unsigned long e) {
    if (ERR_GET_LIB(e) != ERR_LIB_SSL || ERR_GET_REASON(e) <= SSL_AD_REASON_OFFSET) return false;
    switch (ERR_GET_REASON(e) - SSL_AD_REASON_OFFSET) {
      case SSL_AD_HANDSHAKE_FAILURE:
      case SSL_AD_BAD_CERTIFICATE:
      case SSL_AD_UNSUPPORTED_CERTIFICATE:
      case SSL_AD_CERTIFICATE_REVOKED:
      case SSL_AD_CERTIFICATE_EXPIRED:
      case SSL_AD_CERTIFICATE_UNKNOWN:
      case SSL_AD_UNKNOWN_CA:
      case SSL_AD_ACCESS_DENIED:
      case SSL_AD_DECRYPT_ERROR:
      case SSL_AD_CERTIFICATE_REQUIRED:
        return true;
      default:
        return false;
    }
  }

  bool write_local() {
    if (to_local_.empty() || client_left_) return true;
    const ssize_t n = ::write(local_, to_local_.data(), to_local_.size());
    if (n > 0) to_local_.erase(0, static_cast<std::size_t>(n));
    // A client that closed since the poll: what it sent is still to be read.
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) left();
    return n >= 0 || errno == EAGAIN || errno == EINTR || client_left_;
  }

  SSL* ssl_;
  int upstream_;
  int local_;
  TunnelState& state_;
  std::string to_upstream_;
  std::string to_local_;
  bool local_open_ = true;    // the client may still send
  bool client_left_ = false;  // the client reads nothing more (hung up)
  std::chrono::milliseconds drain_;
  std::chrono::steady_clock::time_point drained_by_;  // what it sent has gone upstream by then, or is cut
  std::string alert_;                                 // the server's alert that refused the handshake
  bool upstream_open_ = true;                         // the server may still send
  bool close_sent_ = false;                           // the client's half-close went on as close_notify
  bool read_wants_write_ = false;                     // the last read waits to write (SSL_ERROR_WANT_WRITE)
  bool may_hold_records_ = true;  // OpenSSL may hold whole records read ahead (no read has wanted the socket since)
  char buf_[16384];
};

// Our own CertificateVerify's algorithm as s_server names it: "RSA-PSS+SHA256".
std::string describe_sigalg(SSL* ssl) {
  int type = NID_undef;
  int md = NID_undef;
  if (SSL_get_signature_type_nid(ssl, &type) != 1 || SSL_get_signature_nid(ssl, &md) != 1) return "";
  const std::string kind = type == EVP_PKEY_RSA_PSS ? "RSA-PSS" : type == EVP_PKEY_RSA ? "RSA" : "ECDSA";
  return kind + "+" + OBJ_nid2sn(md);
}

// Whether `name` is one of `names`.
bool named(const STACK_OF(X509_NAME) * names, const X509_NAME* name) {
  for (int i = 0; i < sk_X509_NAME_num(names); ++i)
    if (X509_NAME_cmp(sk_X509_NAME_value(names, i), name) == 0) return true;
  return false;
}

// Whether `c` is issued under a CA of `names`: directly, or higher up, as a
// server may name a root or an intermediate above the issuer.
bool issued_under(const CardKeys& keys, const ClientCertificate& c, const STACK_OF(X509_NAME) * names) {
  if (names == nullptr) return false;
  const X509Ptr leaf = keys.certificate(c.der);
  if (leaf && named(names, X509_get_issuer_name(leaf.get()))) return true;
  for (const Bytes& der : c.chain) {
    const X509Ptr ca = keys.certificate(der);
    if (ca && named(names, X509_get_issuer_name(ca.get()))) return true;
  }
  return false;
}

// The signature schemes both the server's request and this connection
// allow (RFC 8446 4.2.3's code points), as OpenSSL chooses among them.
std::vector<std::uint16_t> shared_schemes(SSL* ssl) {
  std::vector<std::uint16_t> schemes;
  const int n = SSL_get_shared_sigalgs(ssl, 0, nullptr, nullptr, nullptr, nullptr, nullptr);
  for (int i = 0; i < n; ++i) {
    unsigned char sig = 0;
    unsigned char hash = 0;
    SSL_get_shared_sigalgs(ssl, i, nullptr, nullptr, nullptr, &sig, &hash);
    schemes.push_back(static_cast<std::uint16_t>(hash << 8 | sig));
  }
  return schemes;
}

// The schemes of RFC 8446 4.2.3 a card key makes (card_keys.cpp signs with
// SHA-256, -384 and -512).
constexpr std::uint16_t kRsaPkcs1[] = {0x0401, 0x0501, 0x0601};  // rsa_pkcs1_sha256/384/512
constexpr std::uint16_t kRsaPss[] = {0x0804, 0x0805, 0x0806};    // rsa_pss_rsae_sha256/384/512
struct EcdsaScheme {
  std::uint16_t scheme;
  const char* curve;  // TLS 1.3's binding; TLS 1.2 names the hash only
};
constexpr EcdsaScheme kEcdsa[] = {{0x0403, "P-256"}, {0x0503, "P-384"}, {0x0603, "P-521"}};

// Puts a certificate and its card key on the connection when the server
// asks for a client certificate, which of the caller's present() says: the
// server's CA names come with its request, not before. Outlives the
// connection, whose key calls back into it.
class Presenter {
 public:
  Presenter(const CardKeys& keys, const std::vector<ClientCertificate>& certificates, const HandshakeHooks& hooks,
            HandshakeReport& report)
      : keys_(keys), certificates_(certificates), hooks_(hooks), report_(report) {}

  void attach(SSL* ssl) { SSL_set_cert_cb(ssl, &Presenter::callback, this); }
  // Why the certificate could not be put on, or empty.
  [[nodiscard]] const std::string& error() const { return error_; }

 private:
  // Called inside libssl's C frames: nothing may be thrown through them.
  static int callback(SSL* ssl, void* self) noexcept {
    auto* presenter = static_cast<Presenter*>(self);
    try {
      return presenter->put(ssl) ? 1 : 0;
    } catch (const std::exception& e) {
      presenter->error_ = std::string("cannot present the card certificate: ") + e.what();
      return 0;
    }
  }

  bool put(SSL* ssl) {
    // On a client, the CA names of the server's certificate request (TLS
    // 1.2's list, TLS 1.3's certificate_authorities) and its signature
    // algorithms.
    const CertificateRequest request{SSL_get_client_CA_list(ssl), shared_schemes(ssl),
                                     SSL_version(ssl) == TLS1_3_VERSION};
    const ClientCertificate& c = certificates_.at(present(keys_, certificates_, request));
    hooks_.chosen(c);
    // By the time the card is asked, the version and our signature algorithm
    // are settled: the audit line of the signature names them.
    EvpPkeyPtr key = keys_.key(c.der, [this, ssl](DigestAlgorithm a, Scheme s, const Bytes& digest) {
      report_.card_asked = true;
      return hooks_.sign(a, s, digest, std::string(SSL_get_version(ssl)) + " " + describe_sigalg(ssl));
    });
    X509Ptr cert = keys_.certificate(c.der);
    if (!key || !cert) {
      error_ = openssl_error("cannot make the card key of " + c.cert_id);
      return false;
    }
    if (SSL_use_certificate(ssl, cert.get()) != 1 || SSL_use_PrivateKey(ssl, key.get()) != 1) {
      error_ = openssl_error("the card certificate " + c.cert_id + " does not go with its key");
      return false;
    }
    add_issuers(ssl, c);
    return true;
  }

  // The issuers the token carries go with the certificate, nearest first, up
  // to a root (which the server has or does not trust anyway): a server
  // that trusts only the root needs them to build the path.
  void add_issuers(SSL* ssl, const ClientCertificate& c) const {
    SSL_clear_chain_certs(ssl);
    for (const Bytes& der : c.chain) {
      const X509Ptr issuer = keys_.certificate(der);
      if (!issuer || X509_check_issued(issuer.get(), issuer.get()) == X509_V_OK) break;
      if (SSL_add1_chain_cert(ssl, issuer.get()) != 1) {
        ERR_clear_error();  // the server may still have it
        break;
      }
    }
  }

  const CardKeys& keys_;
  const std::vector<ClientCertificate>& certificates_;
  const HandshakeHooks& hooks_;
  HandshakeReport& report_;
  std::string error_;
};

}  // namespace

bool ClientCertificate::signs_with(std::uint16_t scheme, bool tls13) const {
  const auto among = [scheme](const auto& schemes) {
    return std::find(std::begin(schemes), std::end(schemes), scheme) != std::end(schemes);
  };
  if (key_type == KeyType::rsa) return (rsa_pss && among(kRsaPss)) || (!tls13 && among(kRsaPkcs1));
  return std::any_of(std::begin(kEcdsa), std::end(kEcdsa),
                     [&](const EcdsaScheme& e) { return e.scheme == scheme && (!tls13 || curve == e.curve); });
}

std::size_t present(const CardKeys& keys, const std::vector<ClientCertificate>& certificates,
                    const CertificateRequest& request) {
  const auto signs = [&request](const ClientCertificate& c) {
    return request.schemes.empty() || std::any_of(request.schemes.begin(), request.schemes.end(),
                                                  [&](std::uint16_t s) { return c.signs_with(s, request.tls13); });
  };
  std::optional<std::size_t> signing;
  std::optional<std::size_t> issued;
  for (std::size_t i = 0; i < certificates.size(); ++i) {
    const bool can_sign = signs(certificates[i]);
    const bool named_issuer = issued_under(keys, certificates[i], request.issuers);
    if (can_sign && named_issuer) return i;
    if (can_sign && !signing) signing = i;
    if (named_issuer && !issued) issued = i;
  }
  return signing.value_or(issued.value_or(0));
}

std::shared_ptr<SSL_CTX> upstream_context(const CardKeys& keys, const Upstream& u) {
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new_ex(keys.context(), nullptr, TLS_client_method()), FreeWith<SSL_CTX_free>{});
  if (!ctx) throw std::runtime_error(openssl_error("cannot make a TLS context"));
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (!u.ca_file.empty() && SSL_CTX_load_verify_locations(ctx.get(), u.ca_file.c_str(), nullptr) != 1)
    throw std::runtime_error(openssl_error("tls upstream " + u.name + ": cannot read ca_file " + u.ca_file));
  // OpenSSL's default paths, in korttid's library context: the system's
  // store (/etc/ssl/certs), or what SSL_CERT_FILE and SSL_CERT_DIR name.
  if (u.system_roots && SSL_CTX_set_default_verify_paths(ctx.get()) != 1)
    throw std::runtime_error(openssl_error("tls upstream " + u.name + ": cannot read the system's roots"));
  SSL_CTX_set_min_proto_version(ctx.get(), u.min_version);
  // Every handshake a full one with the card: no session resumption.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  // The card signs in the tunnel's handshake only, within its deadline: a
  // TLS 1.2 server's later request to renegotiate is declined (the tunnel
  // goes on; a server that insists closes it).
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION);
  // The chain sent is the card's (Presenter::add_issuers): OpenSSL would
  // otherwise try to build one at every handshake from ca_file, the
  // upstream's roots, which have nothing to do with the card's.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_NO_AUTO_CHAIN);
  // A read takes what the socket has, up to 64 KiB, rather than a record's
  // header and then its body in two: fewer system calls and wake-ups in a
  // download (README, Benchmarks). The relay then asks SSL_has_pending, not
  // SSL_pending, before it waits.
  SSL_CTX_set_read_ahead(ctx.get(), 1);
  SSL_CTX_set_default_read_buffer_len(ctx.get(), 64 * 1024);
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

namespace {

// A name is sent as SNI and checked against the certificate's DNS names;
// an address is not sent (RFC 6066) and is checked against its IP names.
// False when the name could not be set: nothing would check it then.
bool check_server_name(SSL* ssl, const std::string& name) {
  X509_VERIFY_PARAM* check = SSL_get0_param(ssl);
  if (X509_VERIFY_PARAM_set1_ip_asc(check, name.c_str()) == 1) return true;
  ERR_clear_error();
  return SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(name.c_str())) == 1 &&
         SSL_set1_host(ssl, name.c_str()) == 1;
}

// The handshake on the upstream's socket, by the deadline and until `stop`;
// empty when it is done, else why not.
std::string handshake(SSL* ssl, int fd, std::chrono::steady_clock::time_point deadline, const TunnelState& state,
                      bool pkcs1_only) {
  for (;;) {
    ERR_clear_error();
    const int rc = SSL_connect(ssl);
    if (rc == 1) return {};
    if (state.stop) return "the tunnel was ended during the handshake (the log says why)";
    if (ms_left(deadline) <= 0) return "the handshake did not finish in time";
    const int why = SSL_get_error(ssl, rc);
    if (why != SSL_ERROR_WANT_READ && why != SSL_ERROR_WANT_WRITE) {
      const long verify = SSL_get_verify_result(ssl);
      if (verify != X509_V_OK)
        return std::string("the upstream's certificate is not trusted: ") + X509_verify_cert_error_string(verify);
      if (pkcs1_only && ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION)
        return "the upstream wants TLS 1.3, whose RSA signatures are PSS, and the token has no RSA-PSS (" +
               openssl_error("") + ")";
      return openssl_error("the handshake failed");
    }
    // Wait for what OpenSSL wants, looking at `stop` and the deadline every 200 ms.
    poll_slice(fd, why == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
  }
}

// The close_notify, given up to a second to leave when the socket's
// buffer is full, unless the tunnel was ended (then one try: korttid may be
// stopping, within its grace).
void send_close_notify(SSL* ssl, int fd, const TunnelState& state) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  for (;;) {
    ERR_clear_error();
    const int rc = SSL_shutdown(ssl);
    if (rc >= 0 || SSL_get_error(ssl, rc) != SSL_ERROR_WANT_WRITE || state.stop || ms_left(until) <= 0) break;
    poll_slice(fd, POLLOUT, until);
  }
  ERR_clear_error();
}

}  // namespace

void run_tunnel(const CardKeys& keys, TunnelPlan plan, const HandshakeHooks& hooks, TunnelState& state) {
  OwnedFd local(plan.local_fd);
  HandshakeReport report;
  auto fail = [&](std::string why) {
    report.error = std::move(why);
    hooks.done(report);
  };
  std::string error;
  // One deadline for the name's lookup, every address, the handshake and the card.
  OwnedFd upstream(connect_within(plan.upstream.host, plan.upstream.port, plan.handshake_deadline, error,
                                  [&state] { return state.stop.load(); }));
  if (upstream.get() < 0) return fail(error);

  // The upstream's context (its roots, versions, ALPN) is made once, at
  // start; the card's certificate and key go on this connection only.
  Presenter presenter(keys, plan.certificates, hooks, report);
  SslPtr ssl(plan.context ? SSL_new(plan.context.get()) : nullptr);
  if (!ssl) return fail(openssl_error("cannot set up TLS"));
  presenter.attach(ssl.get());
  // TLS 1.3 needs RSA-PSS; a token without it signs PKCS#1 on TLS 1.2. The
  // plan has such keys only when there is nothing else.
  const bool pkcs1_only = std::all_of(plan.certificates.begin(), plan.certificates.end(),
                                      [](const ClientCertificate& c) { return c.pkcs1_only(); });
  if (pkcs1_only) {
    SSL_set_max_proto_version(ssl.get(), TLS1_2_VERSION);
    SSL_set1_client_sigalgs_list(ssl.get(), "RSA+SHA256:RSA+SHA384:RSA+SHA512");
  }
  if (!check_server_name(ssl.get(), plan.upstream.server_name))
    return fail(openssl_error("cannot set the server name " + plan.upstream.server_name));
  SSL_set_fd(ssl.get(), upstream.get());
  if (std::string why = handshake(ssl.get(), upstream.get(), plan.handshake_deadline, state, pkcs1_only); !why.empty())
    return fail(presenter.error().empty() ? std::move(why) : presenter.error());
  report.ok = true;
  report.version = SSL_get_version(ssl.get());
  report.signature = describe_sigalg(ssl.get());
  hooks.done(report);
  ::fcntl(local.get(), F_SETFL, ::fcntl(local.get(), F_GETFL) | O_NONBLOCK);
  Relay relay(ssl.get(), upstream.get(), local.get(), state, plan.drain_timeout, std::move(plan.first));
  relay.run();
  // On TLS 1.3 the server checks the card's certificate after our Finished,
  // which is where SSL_connect ended: its refusal is an alert, the first
  // thing read.
  if (report.card_asked && SSL_version(ssl.get()) == TLS1_3_VERSION && state.received == 0 && !relay.alert().empty()) {
    HandshakeReport refused = report;
    refused.ok = false;
    refused.error = "the server refused the handshake: " + relay.alert();
    hooks.done(refused);
  }
  // Whoever ended it, the upstream hears so (close_notify), not a bare
  // reset; unless bytes the client sent are lost, when a close_notify would
  // tell the server it had them all.
  if (!relay.cut()) send_close_notify(ssl.get(), upstream.get(), state);
}

}  // namespace kortti::tls
