// The tunnels' listeners and admission, on the io thread; each admitted
// connection becomes a tunnel on its own thread (tunnel.cpp).

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <stop_token>
#include <thread>

#include "common/encoding.hpp"
#include "common/log_budget.hpp"
#include "common/loopback_peer.hpp"
#include "service/service.hpp"
#include "tls/browser_guard.hpp"
#include "tls/tunnels.hpp"

namespace kortti::tls {

namespace asio = boost::asio;
using Local = asio::local::stream_protocol;
// A listener is a Unix socket or a loopback TCP port: one acceptor type.
using Generic = asio::generic::stream_protocol;
using Acceptor = asio::basic_socket_acceptor<Generic>;

struct Tunnels::Impl : std::enable_shared_from_this<Impl> {
  struct Listener {
    Upstream upstream;
    Acceptor acceptor;
    std::shared_ptr<SSL_CTX> context;
    std::optional<asio::ip::tcp::endpoint> tcp;  // a loopback TCP listener's address
  };

  Impl(asio::io_context& i, service::Service& s, Options o)
      : io(i), service(s), options(std::move(o)), log_budget(options.log_lines_per_second_per_uid) {}

  asio::io_context& io;
  service::Service& service;
  Options options;
  LogBudget log_budget;  // the io thread's: refused connections
  CardKeys keys;
  std::vector<std::shared_ptr<Listener>> listeners;
  bool accepting = true;  // io thread only; false from stop_accepting() on
  std::atomic<bool> stopping{false};
  mutable std::mutex mutex;
  std::condition_variable ended;
  std::size_t running = 0;  // tunnel threads not yet ended

  // The tunnels open now, by id; guarded by `mutex`.
  struct Open {
    Tunnels::TunnelStatus status;
    // The tokens it stands on: every candidate's until the handshake has
    // chosen a certificate, then that one's.
    std::vector<std::string> token_ids;
    std::shared_ptr<TunnelState> state = std::make_shared<TunnelState>();
  };
  std::map<std::uint64_t, Open> open;
  std::uint64_t next_id = 1;
  // Loopback TCP connections whose first bytes are being read (screened()),
  // io thread only; at most kMaxScreening, each for kFirstBytesTimeout.
  std::size_t screening = 0;
  static constexpr std::size_t kMaxScreening = 64;
  static constexpr std::chrono::seconds kFirstBytesTimeout{5};

  // A card pulled or a session ended closes every tunnel that stands on it.
  void on_token_event(const pkcs11::TokenEvent& e) {
    if (e.type != pkcs11::TokenEvent::Type::absent && e.type != pkcs11::TokenEvent::Type::logged_out) return;
    // A pulled card ends its session first; the token is gone by then.
    const bool removed =
        e.type == pkcs11::TokenEvent::Type::absent || !service.services().tokens->token(e.token.token_id).has_value();
    const char* why = removed ? "the card was removed (1020 card_removed)" : "the PIN1 session ended";
    std::lock_guard lock(mutex);
    // Every stop is set under `mutex`: the reason goes with the first.
    for (auto& [id, t] : open)
      if (std::find(t.token_ids.begin(), t.token_ids.end(), e.token.token_id) != t.token_ids.end() && !t.state->stop) {
        t.state->card_removed = removed;
        t.state->stop = true;
        spdlog::info("tls {}: tunnel {} of uid {} ends: {}", t.status.upstream, id, t.status.uid, why);
      }
  }

  // The handler holds its listener: one closed by a reload may still have
  // an accepted connection on its way, which is then closed unserved.
  void accept(const std::shared_ptr<Listener>& l) {
    l->acceptor.async_accept([self = shared_from_this(), l](const boost::system::error_code& ec, Generic::socket s) {
      if (ec == asio::error::operation_aborted || self->stopping || !l->acceptor.is_open()) return;
      if (ec) {
        // Out of descriptors, most likely: retrying at once would spin, and
        // not retrying would leave the socket listening with no one accepting.
        spdlog::warn("tls {}: accept: {}; retrying in 100 ms", l->upstream.name, ec.message());
        auto pause = std::make_shared<asio::steady_timer>(self->io, std::chrono::milliseconds(100));
        pause->async_wait([self, l, pause](const boost::system::error_code&) {
          if (!self->stopping && l->acceptor.is_open()) self->accept(l);
        });
        return;
      }
      asio::co_spawn(self->io, self->admit(l, s.release()), asio::detached);
      self->accept(l);
    });
  }

  // Throws std::runtime_error naming the upstream that cannot listen.
  void listen(const Upstream& u) {
    auto l = std::make_shared<Listener>(Listener{u, Acceptor(io), nullptr, loopback_endpoint(u.listen)});
    l->context = upstream_context(keys, u);
    struct stat st {};
    // A socket left by an earlier korttid; anything else is not ours to remove.
    if (!l->tcp && ::lstat(u.listen.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(u.listen.c_str());
    const Generic::endpoint where = l->tcp ? Generic::endpoint(*l->tcp) : Generic::endpoint(Local::endpoint(u.listen));
    boost::system::error_code ec;
    l->acceptor.open(where.protocol(), ec);
    // A port that an earlier korttid's connections still hold (TIME_WAIT).
    if (!ec && l->tcp) l->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) l->acceptor.bind(where, ec);
    if (ec) throw std::runtime_error("tls upstream " + u.name + ": cannot listen on " + u.listen + ": " + ec.message());
    // Who may connect to a Unix socket is its mode and group, as for
    // korttid's own socket, set before it listens (until then a connect is
    // refused): a listener that cannot be given them is not opened. A TCP
    // port has no such thing: anyone on this machine may connect, and the
    // kernel's socket table names who did.
    if (!l->tcp &&
        (::chmod(u.listen.c_str(), options.socket_mode) != 0 ||
         (options.socket_group && ::chown(u.listen.c_str(), static_cast<uid_t>(-1), *options.socket_group) != 0)))
      throw std::runtime_error("tls upstream " + u.name + ": cannot set the mode and group of " + u.listen + ": " +
                               std::strerror(errno));
    l->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("tls upstream " + u.name + ": cannot listen on " + u.listen + ": " + ec.message());
    spdlog::info("tls {}: listening on {} for {}:{}", u.name, u.listen, u.host, u.port);
    accept(l);
    listeners.push_back(std::move(l));
  }

  void close_listener(const std::shared_ptr<Listener>& l) {
    boost::system::error_code ignored;
    l->acceptor.close(ignored);
    if (!l->tcp) ::unlink(l->upstream.listen.c_str());
  }

  // Who connected, and whether they may: in the upstream's `access`, with
  // their own PIN1 session on a token with an authentication certificate.
  // Nothing reaches a card otherwise. Whatever goes wrong here, the
  // connection is closed and the log says why.
  Task<void> admit(std::shared_ptr<Listener> l, int fd) {
    auto self = shared_from_this();
    OwnedFd client(fd);
    const std::string name = l->upstream.name;
    try {
      co_await admit_owned(l, client);
    } catch (const std::exception& e) {
      spdlog::error("tls {}: connection closed: {}", name, e.what());
    }
  }

  // The caller's authentication certificates, in token order: those that
  // serve authentication only, on tokens where the caller holds the PIN1
  // session.
  Task<std::vector<ClientCertificate>> authentication_certificates(uid_t uid) {
    std::vector<ClientCertificate> out;
    const std::vector<pkcs11::TokenInfo> tokens = service.services().tokens->tokens();
    for (const auto& t : tokens) {
      if (t.live_session_owner() != uid) continue;
      std::optional<std::string> token_id = t.token_id;
      const std::vector<pkcs11::CertificateInfo> certs =
          co_await service.services().tokens->certificates(std::move(token_id));
      // An authentication key only: a non-repudiation key never signs a handshake.
      for (const auto& c : certs)
        if (pkcs11::serves_only(c, pkcs11::Purpose::authentication))
          out.push_back({c.cert_id, t.token_id, c.der, c.chain, c.subject, c.key_type, c.curve, t.rsa_pss});
    }
    // A list may have come from the card, which takes a while: a session
    // that ended meanwhile (its logout's event came before this tunnel was
    // registered to hear it) serves no tunnel.
    std::erase_if(out, [&](const ClientCertificate& c) {
      const std::optional<pkcs11::TokenInfo> now = service.services().tokens->token(c.token_id);
      return !now || now->live_session_owner() != uid;
    });
    co_return out;
  }

  // Those of `certificates` a handshake can use. An RSA key whose token lacks
  // PSS limits it to TLS 1.2 with PKCS#1: such keys take part only when
  // there is no other.
  static std::vector<ClientCertificate> usable(std::vector<ClientCertificate> certificates,
                                               const std::string& upstream) {
    auto pkcs1_only = [](const ClientCertificate& c) { return c.pkcs1_only(); };
    if (!std::all_of(certificates.begin(), certificates.end(), pkcs1_only))
      std::erase_if(certificates, pkcs1_only);
    else if (!certificates.empty())
      spdlog::warn("tls {}: token {} offers no RSA-PSS: at most TLS 1.2 with PKCS#1 signatures", upstream,
                   certificates.front().token_id);
    return certificates;
  }

  // A slot within [tls] max_tunnels and the uid's share of them
  // (max_tunnels_per_uid), and the tunnel's entry, or nothing. The
  // entry names the certificate once one is chosen (here, if there is only
  // one; else when the server asks: presented()).
  std::optional<std::pair<std::uint64_t, std::shared_ptr<TunnelState>>> reserve(
      const std::string& upstream, const PeerCredentials& cred, const std::vector<ClientCertificate>& certificates) {
    std::lock_guard lock(mutex);
    if (running >= options.max_tunnels) {
      if (log_budget.allow(cred.uid))
        spdlog::warn("tls {}: {} tunnels are open, the most [tls] max_tunnels allows; connection of uid {} closed",
                     upstream, running, cred.uid);
      return std::nullopt;
    }
    const auto own = static_cast<std::size_t>(std::count_if(
        open.begin(), open.end(), [&](const auto& entry) { return entry.second.status.uid == cred.uid; }));
    if (own >= options.max_tunnels_per_uid) {
      if (log_budget.allow(cred.uid))
        spdlog::warn("tls {}: uid {} has {} tunnels open, the most [tls] max_tunnels_per_uid allows; connection closed",
                     upstream, cred.uid, own);
      return std::nullopt;
    }
    ++running;
    const std::uint64_t id = next_id++;
    Open& o = open[id];
    o.status.id = id;
    o.status.upstream = upstream;
    o.status.uid = cred.uid;
    o.status.pid = cred.pid;
    o.status.since = std::chrono::system_clock::now();
    if (certificates.size() == 1) o.status.cert_id = certificates.front().cert_id;
    for (const auto& c : certificates) o.token_ids.push_back(c.token_id);
    return std::pair{id, o.state};
  }

  // The certificate the handshake presents: from now on the tunnel stands on
  // its token.
  void presented(std::uint64_t id, const ClientCertificate& c) {
    std::lock_guard lock(mutex);
    auto it = open.find(id);
    if (it == open.end()) return;
    it->second.status.cert_id = c.cert_id;
    it->second.token_ids = {c.token_id};
  }

  TunnelPlan plan_for(const Listener& l, const PeerCredentials& cred, std::vector<ClientCertificate> certificates,
                      int fd, std::string first) const {
    TunnelPlan plan;
    plan.upstream = l.upstream;
    plan.context = l.context;  // as the last reload left it
    plan.uid = cred.uid;
    plan.pid = cred.pid;
    plan.handshake_deadline = std::chrono::steady_clock::now() + options.handshake_timeout;
    plan.drain_timeout = options.handshake_timeout;
    plan.local_fd = fd;
    plan.certificates = std::move(certificates);
    plan.first = std::move(first);
    return plan;
  }

  // The Host values a program's HTTP request through the TCP listener `l`
  // may carry, lower case: the listener's address or localhost with its
  // port, the upstream's name with its port or without (a client that
  // connects here but names the server: curl --connect-to).
  static std::vector<std::string> request_hosts(const Listener& l) {
    const std::string port = std::to_string(l.tcp->port());
    const std::string address =
        l.tcp->address().is_v6() ? "[" + l.tcp->address().to_string() + "]" : l.tcp->address().to_string();
    const std::string name = l.upstream.server_name.find(':') == std::string::npos
                                 ? ascii_lower(l.upstream.server_name)
                                 : "[" + ascii_lower(l.upstream.server_name) + "]";
    std::vector<std::string> hosts = {address + ":" + port, "localhost:" + port, name, name + ":" + l.upstream.port};
    if (port == "80") hosts.insert(hosts.end(), {address, "localhost"});
    return hosts;
  }

  Task<void> admit_owned(const std::shared_ptr<Listener>& l, OwnedFd& client) {
    const Upstream& upstream = l->upstream;
    // TCP carries no credentials: the kernel's socket table names the owner
    // of the client's end, and pid is unknown (0).
    const std::optional<PeerCredentials> cred =
        l->tcp ? loopback_peer_credentials(client.get(), upstream.access.names_groups())
               : peer_credentials(client.get());
    if (!cred) {
      spdlog::error("tls {}: cannot read the peer's credentials{}; connection closed", upstream.name,
                    l->tcp ? " (the kernel names no owner of the client's end: closed already?)" : "");
      co_return;
    }
    if (l->tcp) {
      // Relayed requests are small writes: none waits for the next.
      const int on = 1;
      (void)::setsockopt(client.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    }
    if (!upstream.access.includes(*cred)) {
      if (log_budget.allow(cred->uid))
        spdlog::warn(
            "tls {}: uid {} pid {} is not in the upstream's access (1040 permission_denied); connection closed",
            upstream.name, cred->uid, cred->pid);
      co_return;
    }
    // A web browser's connection is refused before anything else is looked
    // at: a page must not learn whether the clinician is logged in, nor
    // hold a tunnel's slot.
    std::string first;
    if (l->tcp && !co_await screened(l, *cred, client, first)) co_return;
    std::vector<ClientCertificate> found = co_await authentication_certificates(cred->uid);
    std::vector<ClientCertificate> certificates = usable(std::move(found), upstream.name);
    if (certificates.empty()) {
      if (log_budget.allow(cred->uid))
        spdlog::warn(
            "tls {}: uid {} pid {} has no PIN1 session on a token with an authentication certificate (1010 "
            "pin_required); connection closed, nothing sent upstream",
            upstream.name, cred->uid, cred->pid);
      co_return;
    }
    // A reload or stop while the certificates were read: the upstream as
    // it was is no longer served.
    if (stopping || !l->acceptor.is_open()) {
      if (log_budget.allow(cred->uid))
        spdlog::info("tls {}: the upstream was closed meanwhile; connection of uid {} closed", upstream.name,
                     cred->uid);
      co_return;
    }
    auto reserved = reserve(upstream.name, *cred, certificates);
    if (!reserved) co_return;
    const std::uint64_t id = reserved->first;
    std::shared_ptr<TunnelState> state = std::move(reserved->second);
    try {
      TunnelPlan plan = plan_for(*l, *cred, std::move(certificates), client.get(), std::move(first));
      service::Caller caller;
      caller.uid = cred->uid;
      caller.gid = cred->gid;
      caller.pid = cred->pid;
      caller.client = "tls upstream " + plan.upstream.name + " (" + plan.upstream.host + ":" + plan.upstream.port + ")";
      std::thread(&Impl::tunnel, shared_from_this(), id, state, std::move(plan), std::move(caller)).detach();
    } catch (const std::exception& e) {
      // No thread (EAGAIN), or no memory for its plan: the slot and the
      // entry go again (they would be lost for good), the client is closed.
      spdlog::error("tls {}: cannot start a tunnel for uid {}: {}; connection closed", upstream.name, cred->uid,
                    e.what());
      ended_tunnel(id);
      co_return;
    }
    (void)client.release();  // the tunnel's now
  }

  // A loopback TCP client's first bytes, read here until the browser guard
  // can judge them (browser_guard.hpp), within kFirstBytesTimeout; false
  // when they are a web browser's, or too slow, or too many connections
  // wait to be judged (then the connection is closed, and an HTTP request
  // told why). Judged bytes are kept in `first`, to be relayed first.
  Task<bool> screened(const std::shared_ptr<Listener>& l, const PeerCredentials& cred, OwnedFd& client,
                      std::string& first) {
    const std::string& name = l->upstream.name;
    if (screening >= kMaxScreening) {
      if (log_budget.allow(cred.uid))
        spdlog::warn("tls {}: {} connections wait for their first bytes; connection of uid {} closed", name, screening,
                     cred.uid);
      co_return false;
    }
    ++screening;
    // The socket and the timer that cancels its read outlive this frame in
    // the timer's handler, which may run after the read ended.
    struct Wait {
      Wait(asio::io_context& io, const Generic& protocol, int fd) : socket(io, protocol, fd), timer(io) {}
      Generic::socket socket;
      asio::steady_timer timer;
      bool expired = false;
    };
    // The protocol named before the descriptor leaves `client`, which
    // closes it on any throw until then.
    const Generic protocol(l->tcp->address().is_v4() ? AF_INET : AF_INET6, IPPROTO_TCP);
    auto wait = std::make_shared<Wait>(io, protocol, client.release());
    wait->timer.expires_after(
        std::min<std::chrono::steady_clock::duration>(kFirstBytesTimeout, options.handshake_timeout));
    wait->timer.async_wait([wait](const boost::system::error_code& ec) {
      if (ec) return;
      wait->expired = true;
      boost::system::error_code ignored;
      wait->socket.cancel(ignored);
    });
    const std::vector<std::string> hosts = request_hosts(*l);
    FirstBytes verdict;
    std::array<char, 4096> buffer{};
    for (;;) {
      bool over = wait->expired || first.size() >= kMaxFirstBytes;
      if (!over) {
        boost::system::error_code ec;
        const std::size_t room = std::min(buffer.size(), kMaxFirstBytes - first.size());
        const std::size_t n = co_await wait->socket.async_read_some(asio::buffer(buffer.data(), room),
                                                                    asio::redirect_error(asio::use_awaitable, ec));
        first.append(buffer.data(), n);
        // Its end (a half-close), a reset or the timeout: what came is all.
        over = static_cast<bool>(ec);
      }
      verdict = screen_first_bytes(first, hosts, over);
      if (verdict.verdict != FirstBytes::more) break;
    }
    wait->timer.cancel();
    --screening;
    client.reset(wait->socket.release());
    if (verdict.verdict == FirstBytes::pass) co_return true;
    // Logged before the client hears of it, which may end its wait.
    if (log_budget.allow(cred.uid))
      spdlog::warn(
          "tls {}: connection of uid {} refused before the session, the server and the card: {} (a TCP "
          "listener does not serve web browsers; docs/authentication.md)",
          name, cred.uid, verdict.why);
    if (verdict.http) answer_refusal(client.get(), verdict.why);
    co_return false;
  }

  // A refused HTTP request gets a plain answer: a program that tripped the
  // guard (curl with a browser's User-Agent, say) is told why. The reason
  // names a rule, never the client's bytes.
  static void answer_refusal(int fd, const std::string& why) {
    const std::string body = "korttid: this tunnel does not serve web browsers: " + why + "\n";
    const std::string answer = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                               std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    (void)::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    // The end of the answer, before a close that may reset the connection
    // (bytes of the request left unread).
    (void)::shutdown(fd, SHUT_WR);
  }

  // A tunnel's slot and entry go; stop() may be waiting for the last one.
  void ended_tunnel(std::uint64_t id) {
    std::lock_guard lock(mutex);
    open.erase(id);
    --running;
    ended.notify_all();
  }

  // The card's signature for the handshake, through the service core (which
  // checks the session and writes the handshake's audit line before the
  // signature leaves), waited for here.
  Bytes sign(const service::Caller& base, const std::string& cert_id, std::string action, std::string detail,
             DigestAlgorithm algorithm, Scheme scheme, const Bytes& digest,
             std::chrono::steady_clock::time_point deadline, const TunnelState& tunnel) {
    auto stop = std::make_shared<std::stop_source>();
    auto answer = std::make_shared<std::promise<Result<pkcs11::SignResult>>>();
    auto future = answer->get_future();
    service::Caller caller = base;
    caller.stop = stop->get_token();
    // A signature the tunnel gave up on never leaves korttid: its outcome
    // line says it was not delivered.
    caller.listening = [stop] { return !stop->stop_requested(); };
    service::SignItem item;
    item.method = std::move(action);
    item.detail = std::move(detail);
    item.what = service::DigestToSign{algorithm, digest, scheme, true};
    asio::post(io, [self = shared_from_this(), caller, cert_id, item, answer]() mutable {
      asio::co_spawn(self->io, self->service.sign(caller, cert_id, std::move(item), pkcs11::Credentials{}),
                     [answer](std::exception_ptr failure, service::Signed s) {
                       if (!failure) return answer->set_value(std::move(s.card));
                       try {
                         std::rethrow_exception(failure);
                       } catch (const Error& e) {
                         // The original ends on this thread, the tunnel
                         // thread reads its copy.
                         answer->set_value(e.unshared());
                       } catch (const std::exception& e) {
                         answer->set_value(Error(Errc::internal_error, e.what()));
                       }
                     });
    });
    while (future.wait_for(std::chrono::milliseconds(200)) != std::future_status::ready) {
      std::optional<Error> over;
      if (stopping)
        over = Error(Errc::service_unavailable, "korttid is stopping");
      else if (tunnel.stop && tunnel.card_removed)
        over = Error(Errc::card_removed, "the card was removed while it signed");
      else if (tunnel.stop)
        over = Error(Errc::service_unavailable, "the tunnel was ended while the card signed (the log says why)");
      else if (std::chrono::steady_clock::now() > deadline)
        over = Error(Errc::token_busy, "the card did not sign within the handshake timeout");
      if (over) {
        stop->request_stop();
        throw *over;
      }
    }
    Result<pkcs11::SignResult> result = future.get();
    if (!result.ok()) throw result.error();
    return result.value().signature;
  }

  // The handshake's end: a line of its own unless the card's two tell it (a
  // failure, or a server that asked for no certificate), the log, and the
  // tunnel's entry.
  void handshake_over(std::uint64_t id, const std::string& name, service::AuditRecord line, const std::string& where,
                      const HandshakeReport& r) {
    const uid_t uid = line.caller.uid;
    const std::string cert_id = line.cert_id.empty() ? "no certificate" : line.cert_id;
    if (!r.ok || !r.card_asked) {
      line.outcome = r.ok ? "ok" : "handshake_failed";
      line.detail = where + (r.ok ? ", " + r.version + " " + r.signature : ": " + r.error);
      line.origin = line.caller.origin;
      // After the card's lines, it is written from here: it has no budget to
      // keep on the io thread, which may be stopping korttid and would never
      // get to it. One the card had no part in goes through the io thread's
      // budget.
      if (r.card_asked)
        service.post_audit(line);
      else
        asio::post(io, [self = shared_from_this(), line = std::move(line)] {
          asio::co_spawn(self->io, self->service.record(line, true), asio::detached);
        });
    }
    if (!r.ok) {
      spdlog::warn("tls {}: no tunnel for uid {} with {}: {}", name, uid, cert_id, r.error);
      return;
    }
    spdlog::info("tls {}: tunnel open for uid {} with {}: {} {}", name, uid, cert_id, r.version, r.signature);
    std::lock_guard lock(mutex);
    open[id].status.version = r.version;
    open[id].status.signature = r.signature;
  }

  void tunnel(std::uint64_t id, std::shared_ptr<TunnelState> state, TunnelPlan plan, service::Caller caller) {
    const std::string name = plan.upstream.name;
    const uid_t uid = plan.uid;
    const auto opened = std::chrono::steady_clock::now();
    // The card's signature writes the handshake's audit lines (begun, then
    // the outcome), naming the upstream, its server name, the version and
    // the algorithm. A handshake that fails writes a line of its own (after
    // the card's two if the card had signed).
    service::AuditRecord line;
    line.action = "tls.handshake " + name;
    line.caller = caller;
    line.caller.origin = "tls://" + plan.upstream.host + ":" + plan.upstream.port;
    // The certificate, once the handshake has chosen it (at once if there
    // is only one).
    if (plan.certificates.size() == 1) {
      line.cert_id = plan.certificates.front().cert_id;
      line.subject = plan.certificates.front().subject;
    }
    const std::string where = "server_name " + plan.upstream.server_name;
    const auto deadline = plan.handshake_deadline;  // the card's time is the handshake's
    HandshakeHooks hooks;
    hooks.chosen = [this, id, &line](const ClientCertificate& c) {
      line.cert_id = c.cert_id;
      line.subject = c.subject;
      presented(id, c);
    };
    hooks.sign = [this, &line, &where, &name, deadline, &tunnel = *state](DigestAlgorithm a, Scheme s, const Bytes& d,
                                                                          const std::string& occasion) {
      try {
        return sign(line.caller, line.cert_id, line.action, where + ", " + occasion, a, s, d, deadline, tunnel);
      } catch (const Error& e) {
        spdlog::warn("tls {}: the card did not sign for uid {}: {} ({})", name, line.caller.uid, e.what(),
                     reason_of(e.code()));
        throw;
      }
    };
    hooks.done = [&](const HandshakeReport& r) { handshake_over(id, name, line, where, r); };
    // Nothing may end korttid from this thread: a bug here ends this tunnel.
    try {
      run_tunnel(keys, std::move(plan), hooks, *state);
    } catch (const std::exception& e) {
      spdlog::error("tls {}: tunnel {} of uid {} failed inside korttid: {}", name, id, uid, e.what());
    }
    spdlog::info("tls {}: tunnel {} of uid {} closed after {} s, {} bytes sent, {} received", name, id, uid,
                 std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - opened).count(),
                 state->sent.load(), state->received.load());
    // This thread's OpenSSL state goes now, as a Worker's does, not at an
    // exit that may come once stop() has seen the tunnel end.
    OPENSSL_thread_stop();
    ended_tunnel(id);
  }
};

Tunnels::Tunnels(asio::io_context& io, service::Service& service, Options options)
    : impl_(std::make_shared<Impl>(io, service, std::move(options))) {
  service.services().tokens->on_event([weak = std::weak_ptr<Impl>(impl_)](const pkcs11::TokenEvent& e) {
    if (auto impl = weak.lock()) impl->on_token_event(e);
  });
}

std::vector<Tunnels::UpstreamStatus> Tunnels::upstreams() const {
  std::vector<UpstreamStatus> out;
  for (const auto& u : impl_->options.upstreams) {
    UpstreamStatus s{u.name, u.host + ":" + u.port, u.server_name, u.listen, false};
    for (const auto& l : impl_->listeners)
      if (l->upstream.name == u.name) s.listening = l->acceptor.is_open();
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<Tunnels::TunnelStatus> Tunnels::tunnels() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<TunnelStatus> out;
  for (const auto& [id, t] : impl_->open) {
    out.push_back(t.status);
    out.back().sent = t.state->sent;
    out.back().received = t.state->received;
  }
  return out;
}

Tunnels::~Tunnels() { (void)stop(std::chrono::milliseconds(0)); }

void Tunnels::start() {
  if (!impl_->options.enabled) return;
  for (const auto& u : impl_->options.upstreams) impl_->listen(u);
}

void Tunnels::reconfigure(std::vector<Upstream> upstreams) {
  if (!impl_->options.enabled || impl_->stopping || !impl_->accepting) return;
  auto& listeners = impl_->listeners;
  const auto kept = [&](const Upstream& u) {
    return std::find(upstreams.begin(), upstreams.end(), u) != upstreams.end();
  };
  for (auto it = listeners.begin(); it != listeners.end();) {
    if (kept((*it)->upstream)) {
      // The CA file is read again (a rotated root): new tunnels use it.
      try {
        (*it)->context = upstream_context(impl_->keys, (*it)->upstream);
      } catch (const std::exception& e) {
        spdlog::error("{}; its tunnels keep the roots read before", e.what());
      }
      ++it;
      continue;
    }
    const std::string name = (*it)->upstream.name;
    impl_->close_listener(*it);
    it = listeners.erase(it);
    std::lock_guard lock(impl_->mutex);
    for (auto& [id, t] : impl_->open)
      if (t.status.upstream == name && !t.state->stop.exchange(true))
        spdlog::info("tls {}: tunnel {} of uid {} ends: the upstream was removed or changed (SIGHUP)", name, id,
                     t.status.uid);
  }
  for (const auto& u : upstreams) {
    const bool listening =
        std::any_of(listeners.begin(), listeners.end(), [&](const auto& l) { return l->upstream == u; });
    if (listening) continue;
    try {
      impl_->listen(u);
    } catch (const std::exception& e) {
      spdlog::error("{}; it stays closed until the next reload", e.what());
    }
  }
  impl_->options.upstreams = std::move(upstreams);
}

void Tunnels::stop_accepting() {
  impl_->accepting = false;
  for (auto& l : impl_->listeners) impl_->close_listener(l);
  impl_->listeners.clear();
}

bool Tunnels::stop(std::chrono::milliseconds grace) {
  impl_->stopping = true;
  stop_accepting();
  std::unique_lock lock(impl_->mutex);
  for (auto& [id, t] : impl_->open) t.state->stop = true;
  return impl_->ended.wait_for(lock, grace, [&] { return impl_->running == 0; });
}

}  // namespace kortti::tls
