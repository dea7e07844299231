// TLS client authentication through korttid's forward tunnels: SoftHSM2
// authentication keys, `openssl s_server` demanding a client certificate,
// and what the server itself reports (protocol, peer signature type).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <sstream>
#include <thread>

#include "tests/integration/tls_fixture.hpp"
#include "tests/support/pcsc_fixture.hpp"

namespace kortti::test {
namespace {

TEST_F(Tls, RsaKeyLogsInOverTls13WithPssThroughATunnel) {
  TlsServer server({"-tls1_3"});
  start_with(server);
  login("cardA");
  const Exchange e = through(socket_);
  ASSERT_TRUE(e.connected);
  EXPECT_NE(e.answer.find("Client certificate"), std::string::npos) << e.answer << daemon_->log() << server.log();
  EXPECT_NE(e.answer.find("Protocol  : TLSv1.3"), std::string::npos) << e.answer;
  EXPECT_NE(e.answer.find("Peer signature type: RSA-PSS"), std::string::npos) << e.answer;
  EXPECT_NE(e.answer.find("Peer signing digest: SHA256"), std::string::npos) << e.answer;
  EXPECT_NE(e.answer.find("Testil"), std::string::npos) << "the physician's certificate";
  // The handshake's line is written before the card's signature leaves;
  // give a second line, were there one, time to show.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::vector<Json> lines = audit_lines();
  ASSERT_EQ(lines.size(), 2U);  // the login, the handshake
  EXPECT_EQ(lines[1]["action"], "tls.handshake sso");
  EXPECT_EQ(lines[1]["cert_id"], wstr(cert_id("cardA", "02")));
  EXPECT_EQ(lines[1]["outcome"], "ok");
  EXPECT_EQ(lines[1]["origin"], wstr("tls://127.0.0.1:" + std::to_string(server.port())));
  EXPECT_EQ(lines[1]["uid"], ::getuid());
  EXPECT_EQ(lines[1]["pid"], ::getpid()) << "the process that connected to the tunnel";
  EXPECT_NE(str(lines[1]["subject"]).find("Testil"), std::string::npos);
  EXPECT_EQ(str(lines[1]["digest_algorithm"]), "sha256");
  EXPECT_EQ(lines[1]["detail"], "server_name localhost, TLSv1.3 RSA-PSS+SHA256") << lines[1].dump();
  EXPECT_NE(daemon_->log().find("tls sso: tunnel open for uid " + std::to_string(::getuid()) + " with " +
                                cert_id("cardA", "02") + ": TLSv1.3 RSA-PSS+SHA256"),
            std::string::npos)
      << daemon_->log();
  // The login's PIN reached neither the log nor the audit trail.
  EXPECT_EQ(daemon_->log().find(kPin), std::string::npos);
  for (const Json& line : daemon_->audit()) EXPECT_EQ(line.dump().find(kPin), std::string::npos) << line.dump();
}

TEST_F(Tls, KorttiTlsConnectJoinsStandardInputAndOutputToATunnel) {
  TlsServer server;
  start_with(server);
  login("cardA");
  const auto kortti = [&](std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {kortti_binary().string(), "--socket", daemon_->socket()});
    return run(args, {}, input);
  };
  const auto r = kortti({"tls", "connect", "sso"}, "GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("Client certificate"), std::string::npos) << r.out << r.err << daemon_->log();
  const auto list = kortti({"tunnels"});
  EXPECT_EQ(list.status, 0) << list.err;
  EXPECT_NE(list.out.find("listening"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find(socket_), std::string::npos) << list.out;
  const auto unknown = kortti({"tls", "connect", "nosuch"});
  EXPECT_NE(unknown.status, 0);
  EXPECT_NE(unknown.err.find("no upstream 'nosuch'"), std::string::npos) << unknown.err;
}

TEST_F(Tls, RsaKeyOnTls12) {
  TlsServer server({"-tls1_2"});
  start_with(server);
  login("cardA");
  const Exchange e = through(socket_);
  EXPECT_NE(e.answer.find("Protocol  : TLSv1.2"), std::string::npos) << e.answer << daemon_->log();
  EXPECT_NE(e.answer.find("Client certificate"), std::string::npos);
  // What the server saw: PSS on 1.2 too, where the token offers it.
  EXPECT_NE(e.answer.find("Peer signature type: RSA-PSS"), std::string::npos) << e.answer;
  EXPECT_NE(e.answer.find("Peer signing digest: SHA256"), std::string::npos) << e.answer;
}

// TLS 1.3 allows RSA client keys only with PSS: a token without it signs
// PKCS#1 on TLS 1.2, and a server that insists on 1.3 is refused before
// the card is asked.
TEST_F(Tls, AnRsaTokenWithoutPssUsesPkcs1OnTls12AndCannotMeetTls13) {
  no_pss_ = true;
  TlsServer any;
  start_with(any);
  login("cardA");
  const Exchange e = through(socket_);
  EXPECT_NE(e.answer.find("Protocol  : TLSv1.2"), std::string::npos) << e.answer << daemon_->log();
  EXPECT_NE(e.answer.find("Peer signature type: RSA\n"), std::string::npos) << e.answer;
  EXPECT_NE(e.answer.find("Peer signing digest: SHA256"), std::string::npos) << e.answer;
  EXPECT_NE(daemon_->log().find("offers no RSA-PSS: at most TLS 1.2"), std::string::npos) << daemon_->log();

  TlsServer v13({"-tls1_3"});
  start_with(v13);
  login("cardA");
  EXPECT_EQ(through(socket_).answer, "");
  bool refused = false;
  for (const Json& line : audit_lines_once(2)) {  // the login, the handshake
    EXPECT_FALSE(line.contains("digest")) << "the card signed: " << line.dump();
    if (line["action"] == "tls.handshake sso") {
      EXPECT_EQ(line["outcome"], "handshake_failed");
      EXPECT_NE(str(line["detail"]).find("wants TLS 1.3, whose RSA signatures are PSS"), std::string::npos)
          << line.dump();
      refused = true;
    }
  }
  EXPECT_TRUE(refused) << daemon_->log();
}

TEST_F(Tls, EcP384KeyOnTls13AndTls12) {
  TlsServer v13({"-tls1_3"});
  start_with(v13);
  login("cardB");
  const Exchange e = through(socket_);
  EXPECT_NE(e.answer.find("Protocol  : TLSv1.3"), std::string::npos) << e.answer << daemon_->log();
  EXPECT_NE(e.answer.find("Peer signature type: ECDSA"), std::string::npos) << e.answer;
  EXPECT_NE(e.answer.find("Peer signing digest: SHA384"), std::string::npos) << e.answer;
  TlsServer v12({"-tls1_2"});
  start_with(v12);
  login("cardB");
  const Exchange again = through(socket_);
  EXPECT_NE(again.answer.find("Protocol  : TLSv1.2"), std::string::npos) << again.answer << daemon_->log();
  EXPECT_NE(again.answer.find("Peer signature type: ECDSA"), std::string::npos) << again.answer;
  EXPECT_NE(again.answer.find("Peer signing digest: SHA"), std::string::npos) << again.answer;
}

// A key that asks for its PIN at every signature is the signature (PIN2)
// key, whatever its certificate says: never used for a login.
TEST_F(Tls, AKeyThatAsksForThePinAtEverySignatureIsRefusedWith1050) {
  TlsServer server;
  start_with(server);  // makes cardA and cardB
  SoftHsm(tokens_dir_.path()).add_token("cardC", {"physician/auth/always-auth"});
  start_with(server);
  daemon_->connect()->call("session.login", {{"token_id", wstr(token_ids_.at("cardC"))}, {"pin", kPin}});
  EXPECT_EQ(through(socket_).answer, "");
  const std::string log = daemon_->log();
  EXPECT_NE(log.find("the card did not sign for uid " + std::to_string(::getuid()) +
                     ": this key asks for the PIN at every signature (a signature PIN key): it does not serve logins "
                     "(TLS client authentication, login tokens) (unsupported)"),
            std::string::npos)
      << log;
  bool refused = false;
  for (const Json& line : audit_lines_once(3)) {  // the login, the card's refusal, the failed handshake
    if (line["action"] != "tls.handshake sso") continue;
    EXPECT_NE(line["outcome"], "ok") << line.dump();
    refused |= line["outcome"] == "unsupported";
  }
  EXPECT_TRUE(refused);
}

// Eight clients of one uid at once: each gets its tunnel, the token's queue
// takes the handshakes' signatures one at a time, and another token is
// served meanwhile.
TEST_F(Tls, EightTunnelsOnOneTokenAllOpenAndAnotherTokenKeepsSigning) {
  TlsServer server({"-tls1_3"});
  start_with(server);
  login("cardA");
  std::vector<std::thread> clients;
  std::vector<std::string> answers(8);
  for (std::size_t i = 0; i < answers.size(); ++i)
    clients.emplace_back([&, i] { answers[i] = through(socket_).answer; });
  auto c = daemon_->connect();
  int signed_meanwhile = 0;
  for (int i = 0; i < 5; ++i) {
    const auto [r, digest] = sign_digest(*c, ec_sign_cert(), "sha384");
    signed_meanwhile += openssl_verify_digest(b64(r["certificate"]), digest, b64(r["signature"]), "sha384", "ecdsa");
  }
  for (auto& t : clients) t.join();
  for (const auto& a : answers) EXPECT_NE(a.find("Client certificate"), std::string::npos) << a << daemon_->log();
  EXPECT_EQ(signed_meanwhile, 5);
  int handshakes = 0;
  for (const Json& line : audit_lines())
    handshakes += line["action"] == "tls.handshake sso" && line["outcome"] == "ok" &&
                  line["cert_id"] == wstr(cert_id("cardA", "02"));
  EXPECT_EQ(handshakes, 8);
}

TEST_F(Tls, OnlyTheUpstreamsAccessMayOpenItsTunnels) {
  TlsServer server;
  access_ = R"(["uid:4242"])";
  start_with(server);
  login("cardA");
  EXPECT_EQ(through(socket_).answer, "");
  EXPECT_NE(daemon_->log().find("tls sso: uid " + std::to_string(::getuid()) + " pid " + std::to_string(::getpid()) +
                                " is not in the upstream's access (1040 permission_denied); connection closed"),
            std::string::npos)
      << daemon_->log();
  EXPECT_EQ(audit_lines().size(), 1U) << "only the login: nothing reached the card or the server";
  access_ = R"(["uid:4242", "gid:)" + std::to_string(::getgid()) + R"("])";
  start_with(server);
  login("cardA");
  EXPECT_NE(through(socket_).answer.find("Client certificate"), std::string::npos) << daemon_->log();
}

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
}

TEST_F(Tls, SighupRemovesAddsAndChangesUpstreams) {
  TlsServer echo({"-rev", "-tls1_3"});
  TlsServer status({"-tls1_2"});
  start_with(echo);
  login("cardA");
  const int fd = connect_listener(socket_);
  const std::string line = "kuulolla\n";
  ASSERT_EQ(::send(fd, line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
  ASSERT_NE(read_until(fd, "alloluuk", std::chrono::seconds(10)).find("alloluuk"), std::string::npos) << daemon_->log();

  // "sso" goes and "kela" comes, at another server and socket.
  const std::string kela = (tokens_dir_.path() / "kela.sock").string();
  std::string text = read_file(daemon_->config());
  replace_all(text, "name = \"sso\"", "name = \"kela\"");
  replace_all(text, ":" + std::to_string(echo.port()) + "\"", ":" + std::to_string(status.port()) + "\"");
  replace_all(text, echo.certificate().string(), status.certificate().string());
  replace_all(text, socket_, kela);
  write_file(daemon_->config(), text);
  daemon_->signal(SIGHUP);
  ASSERT_TRUE(daemon_->wait_notify("READY=1", std::chrono::seconds(10)));
  bool closed = false;
  read_until(fd, "", std::chrono::seconds(5), &closed);
  EXPECT_TRUE(closed) << "the removed upstream's tunnel outlived it";
  ::close(fd);
  EXPECT_FALSE(fs::exists(socket_));
  auto c = daemon_->connect();
  const Json upstreams = c->call("tls.upstreams");
  ASSERT_EQ(upstreams.size(), 1U) << upstreams.dump();
  EXPECT_EQ(upstreams[0]["name"], "kela");
  EXPECT_EQ(upstreams[0]["state"], "listening");
  EXPECT_NE(through(kela).answer.find("Protocol  : TLSv1.2"), std::string::npos) << daemon_->log();

  // "kela" changed: its access no longer takes us.
  replace_all(text, "name = \"kela\"", "name = \"kela\"\naccess = [\"uid:4242\"]");
  write_file(daemon_->config(), text);
  daemon_->signal(SIGHUP);
  ASSERT_TRUE(daemon_->wait_notify("READY=1", std::chrono::seconds(10)));
  EXPECT_EQ(through(kela).answer, "");
  EXPECT_NE(daemon_->log().find("is not in the upstream's access"), std::string::npos) << daemon_->log();
  EXPECT_EQ(daemon_->log().find("take effect at the next restart"), std::string::npos) << daemon_->log();
}

TEST_F(Tls, WithoutASessionTheConnectionClosesAndNothingReachesTheCard) {
  TlsServer server;
  start_with(server);
  const Exchange e = through(socket_);
  ASSERT_TRUE(e.connected);
  EXPECT_EQ(e.answer, "");
  EXPECT_TRUE(audit_lines().empty()) << "no handshake was tried";
  EXPECT_NE(daemon_->log().find("has no PIN1 session on a token with an authentication certificate (1010"),
            std::string::npos)
      << daemon_->log();
  // kortti says so, and fails, rather than ending as if the server had
  // nothing to say.
  const auto r = run({kortti_binary().string(), "--socket", daemon_->socket(), "tls", "connect", "sso"}, {},
                     "GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("the tunnel closed before the server sent anything"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kortti login"), std::string::npos) << r.err;
}

// A uid that may connect but holds no session cannot flood the log: the
// listeners' lines of one uid have a budget ([ipc]
// log_lines_per_second_per_uid, a budget of their own), and another uid's
// lines are not taken with them.
TEST_F(Tls, TheRefusedConnectionsOfOneUidHaveALogBudget) {
  TlsServer server;
  ipc_extra_ = "log_lines_per_second_per_uid = 1\n";  // 10 lines in 10 s
  start_with(server);
  auto refused = [&](const std::string& who) {
    const std::string log = daemon_->log();
    std::size_t n = 0;
    for (auto at = log.find(who); at != std::string::npos; at = log.find(who, at + 1)) ++n;
    return n;
  };
  for (int i = 0; i < 60; ++i) ::close(connect_fd_as(socket_, 4242, 4242));
  for (int i = 0; i < 50 && refused("uid 4242 pid ") < 10; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the rest of the 60 have been served
  // Ten a window; twenty if the connections spanned the start of a new one.
  EXPECT_GE(refused("uid 4242 pid "), 10U) << daemon_->log();
  EXPECT_LE(refused("uid 4242 pid "), 20U) << daemon_->log();
  EXPECT_EQ(through(socket_).answer, "");
  EXPECT_EQ(refused("uid 0 pid "), 1U) << daemon_->log();
}

// A session is its owner's: another uid connecting to the tunnel while this
// one is logged in gets nothing, and the card is not asked.
TEST_F(Tls, AnotherUidsSessionIsNotUsed) {
  TlsServer server;
  start_with(server);
  login("cardA");
  const Exchange e = through_fd(connect_fd_as(socket_, 4242, 4242));
  EXPECT_EQ(e.answer, "");
  for (const Json& line : audit_lines())
    EXPECT_EQ(str(line["action"]).rfind("tls.", 0), std::string::npos) << "no handshake was tried: " << line.dump();
  const std::string log = daemon_->log();
  const auto refused = log.find("uid 4242 pid ");
  ASSERT_NE(refused, std::string::npos) << log;
  EXPECT_NE(log.substr(refused, log.find('\n', refused) - refused).find("has no PIN1 session"), std::string::npos)
      << log;
  // The owner's own tunnel works.
  EXPECT_NE(through(socket_).answer.find("Client certificate"), std::string::npos) << daemon_->log();
}

// The system's roots only when the admin asks (system_roots); then OpenSSL's
// default paths, here SSL_CERT_FILE naming the server's own certificate.
TEST_F(Tls, TheSystemsRootsAreTrustedOnlyWhenAsked) {
  TlsServer server;
  upstream_extra_ = "system_roots = true\n";
  env_["SSL_CERT_FILE"] = server.certificate().string();
  start_at(server.port(), "");
  login("cardA");
  EXPECT_NE(through(socket_).answer.find("Client certificate"), std::string::npos) << daemon_->log();
  // The same server, the system's store without it: refused, the card not asked.
  env_.clear();
  start_at(server.port(), "");
  login("cardA");
  EXPECT_EQ(through(socket_).answer, "");
  EXPECT_NE(daemon_->log().find("the upstream's certificate is not trusted"), std::string::npos) << daemon_->log();
  for (const Json& line : audit_lines_once(2))
    EXPECT_FALSE(line.contains("digest")) << "the card signed: " << line.dump();
}

TEST(TlsConfig, AnUpstreamNeedsItsRootsNamed) {
  TempDir dir;
  write_file(dir / "k.toml",
             "[tls]\nenabled = true\n[[tls.upstream]]\nname = \"sso\"\nconnect = \"sso.example.fi:443\"\n"
             "listen = \"/run/korttid/tls/sso.sock\"\n");
  const auto r = run({korttid_binary().string(), "--config", (dir / "k.toml").string(), "--check-config"});
  EXPECT_EQ(r.status, 78);
  EXPECT_NE(r.err.find("ca_file: is required (or system_roots = true"), std::string::npos) << r.err;
}

TEST_F(Tls, AnUntrustedOrMisnamedServerIsRefusedBeforeTheCardSigns) {
  TlsServer server;
  // The test PKI's root did not issue the server's certificate.
  start_with(server, (pki_dir() / "trust" / "g2-root.pem").string());
  login("cardA");
  EXPECT_EQ(through(socket_).answer, "");
  EXPECT_NE(daemon_->log().find("the upstream's certificate is not trusted"), std::string::npos) << daemon_->log();
  start_with(server, "", "sso.example.fi");
  login("cardA");
  EXPECT_EQ(through(socket_).answer, "");
  EXPECT_NE(daemon_->log().find("the upstream's certificate is not trusted"), std::string::npos) << daemon_->log();
  // No card signature: only the login and the failed handshake.
  for (const Json& line : audit_lines_once(2)) {
    EXPECT_FALSE(line.contains("digest")) << "the card signed: " << line.dump();
    if (line["action"] == "tls.handshake sso") {
      EXPECT_EQ(line["outcome"], "handshake_failed");
      EXPECT_NE(str(line["detail"]).find("not trusted"), std::string::npos) << line.dump();
    }
  }
}

TEST_F(Tls, BytesFlowBothWaysUntilTheSessionEndsThenTheTunnelCloses) {
  TlsServer server({"-rev", "-tls1_3"});
  start_with(server);
  login("cardA");
  auto c = daemon_->connect();
  const Json upstreams = c->call("tls.upstreams");
  ASSERT_EQ(upstreams.size(), 1U);
  EXPECT_EQ(upstreams[0]["name"], "sso");
  EXPECT_EQ(upstreams[0]["listen"], wstr(socket_));
  EXPECT_EQ(upstreams[0]["state"], "listening");

  const int fd = connect_listener(socket_);
  const std::string line = "terveiset tunnelista\n";
  ASSERT_EQ(::send(fd, line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
  const std::string back = read_until(fd, "atsilennut tesievret", std::chrono::seconds(10));
  EXPECT_NE(back.find("atsilennut tesievret"), std::string::npos) << back << daemon_->log() << server.log();

  const Json tunnels = c->call("tls.tunnels");
  ASSERT_EQ(tunnels.size(), 1U) << tunnels.dump();
  EXPECT_EQ(tunnels[0]["upstream"], "sso");
  EXPECT_EQ(tunnels[0]["uid"], ::getuid());
  EXPECT_EQ(tunnels[0]["cert_id"], wstr(cert_id("cardA", "02")));
  EXPECT_EQ(tunnels[0]["version"], "TLSv1.3");
  EXPECT_EQ(tunnels[0]["signature_algorithm"], "RSA-PSS+SHA256");
  EXPECT_EQ(tunnels[0]["bytes_sent"], line.size());

  expect_logout_ends_tunnel(*c, "cardA", fd);
  for (int i = 0; i < 50 && !c->call("tls.tunnels").empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(c->call("tls.tunnels").empty());
}

TEST_F(Tls, AClientThatLeavesEndsItsTunnel) {
  TlsServer server({"-rev"});
  int fd = -1;
  ASSERT_NO_FATAL_FAILURE(open_reversing_tunnel(server, fd));
  auto c = daemon_->connect();
  ASSERT_EQ(c->call("tls.tunnels").size(), 1U);
  ::close(fd);
  for (int i = 0; i < 100 && !c->call("tls.tunnels").empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(c->call("tls.tunnels").empty()) << "the upstream connection outlived its client";
}

// Between korttid and a server: passes every byte on, except that when told
// (hold_half_of_next()) it passes on only the first half of the server's
// next TLS record, and keeps that record's rest and all after it until
// release(). One connection.
class RecordSplitter {
 public:
  explicit RecordSplitter(int server_port)
      : server_port_(server_port), listener_(plain_listener()), port_(local_port(listener_)) {
    thread_ = std::thread([this] { run(); });
  }
  ~RecordSplitter() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }
  RecordSplitter(const RecordSplitter&) = delete;
  RecordSplitter& operator=(const RecordSplitter&) = delete;

  [[nodiscard]] int port() const noexcept { return port_; }
  void hold_half_of_next() { hold_ = true; }
  // Whether half a record has gone on and its rest is held (waits up to 10 s).
  [[nodiscard]] bool holding() const {
    for (int i = 0; i < 500 && !held_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return held_;
  }
  void release() { release_ = true; }

 private:
  static bool send_all(int fd, const char* data, std::size_t size) {
    for (std::size_t sent = 0; sent < size;) {
      const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }

  void run() {
    pollfd l{listener_, POLLIN, 0};
    while (!stop_ && ::poll(&l, 1, 100) <= 0) {
    }
    if (stop_) return;
    const int korttid = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    const int server = client::connect_listener("127.0.0.1:" + std::to_string(server_port_));
    if (korttid >= 0 && server >= 0) relay(korttid, server);
    if (server >= 0) ::close(server);
    if (korttid >= 0) ::close(korttid);
  }

  void relay(int client, int server) {
    std::string from_server;  // not passed on yet
    char buf[16384];
    while (!stop_) {
      pollfd p[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      if (::poll(p, 2, 50) < 0) return;
      if ((p[0].revents & (POLLIN | POLLHUP)) != 0) {
        const ssize_t n = ::read(client, buf, sizeof buf);
        if (n <= 0 || !send_all(server, buf, static_cast<std::size_t>(n))) return;
      }
      if ((p[1].revents & (POLLIN | POLLHUP)) != 0) {
        const ssize_t n = ::read(server, buf, sizeof buf);
        if (n <= 0) return;
        from_server.append(buf, static_cast<std::size_t>(n));
      }
      if (held_ && release_) {
        if (!send_all(client, from_server.data(), from_server.size())) return;
        from_server.clear();
        held_ = hold_ = release_ = false;
      }
      // Whole records go on; the one to hold goes half.
      while (!held_ && from_server.size() >= 5) {
        const std::size_t length = 5 + (static_cast<std::size_t>(static_cast<unsigned char>(from_server[3])) << 8 |
                                        static_cast<unsigned char>(from_server[4]));
        if (from_server.size() < length) break;
        const bool hold = hold_;
        const std::size_t now = hold ? length / 2 : length;
        if (!send_all(client, from_server.data(), now)) return;
        from_server.erase(0, now);
        if (hold) held_ = true;
      }
    }
  }

  int server_port_;
  int listener_;
  int port_;
  std::atomic<bool> stop_{false}, hold_{false}, held_{false}, release_{false};
  std::thread thread_;
};

// The CPU time `pid` has used, in seconds (utime and stime of /proc/PID/stat).
double cpu_seconds(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (stat.rfind(')') == std::string::npos) throw std::runtime_error("no process " + std::to_string(pid));
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string field;
  unsigned long long ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i)
    if (i >= 14) ticks += std::stoull(field);
  return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// korttid reads ahead from the upstream, so a part of a record can sit in
// OpenSSL's buffer (SSL_has_pending says so) that only the socket can
// complete: the tunnel waits on the socket, and does not go round without
// waiting for as long as the server keeps the rest.
TEST_F(Tls, APartOfARecordFromTheServerIsWaitedForNotSpunOn) {
  TlsServer server({"-rev", "-tls1_3"});
  RecordSplitter splitter(server.port());
  start_at(splitter.port(), server.certificate().string());
  login("cardA");
  const int fd = connect_listener(socket_);
  expect_reversed(fd);
  splitter.hold_half_of_next();
  const std::string line = "kaksi\n";
  ASSERT_EQ(::send(fd, line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
  ASSERT_TRUE(splitter.holding());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // korttid has read the half
  const double before = cpu_seconds(daemon_->pid());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const double spent = cpu_seconds(daemon_->pid()) - before;
  EXPECT_LT(spent, 0.2) << "korttid used " << spent << " s of CPU in 1.5 s while the server held a record's rest";
  splitter.release();
  EXPECT_NE(read_until(fd, "iskak", std::chrono::seconds(10)).find("iskak"), std::string::npos) << daemon_->log();
  ::close(fd);
}

// Writes into the tunnel `fd` until nothing more goes in for half a second
// (the server reads nothing: its socket, korttid's buffer and the client's
// socket are full); returns how much went in.
std::uint64_t fill(int fd) {
  const std::string chunk(64 * 1024, 'k');
  std::uint64_t sent = 0;
  for (;;) {
    const ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<std::uint64_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN) return sent;
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 500) == 0) return sent;
  }
}

class TlsHeld : public Tls {
 protected:
  // A tunnel to a server that has read nothing yet, filled by its client
  // (`fd_`, `sent_` bytes) past korttid's own buffer. (Void, so that it may
  // ASSERT.)
  void open_filled_tunnel(int handshake_timeout_s = 10, bool read_greeting = false) {
    start_at(server_.port(), server_.certificate().string(), "localhost", handshake_timeout_s);
    login("cardA");
    fd_ = connect_listener(socket_);
    // Filled only once the relay runs: before, only the socket's own buffer
    // takes bytes.
    auto c = daemon_->connect();
    ASSERT_TRUE(eventually(
        [&] {
          const Json t = c->call("tls.tunnels");
          return t.size() == 1 && !str(t[0]["version"]).empty();
        },
        std::chrono::seconds(10)))
        << daemon_->log();
    // Unread, the server's greeting makes the client's close a reset.
    if (read_greeting) {
      ASSERT_NE(read_until(fd_, "hei\n", std::chrono::seconds(10)).find("hei\n"), std::string::npos);
    }
    sent_ = fill(fd_);
    ASSERT_GT(sent_, 256U * 1024U) << "korttid's buffer alone holds 256 KiB" << daemon_->log();
  }

  HoldingServer server_;
  int fd_ = -1;
  std::uint64_t sent_ = 0;
};

// A client that sends and leaves at once (`cat file | ...`, a fire-and-forget
// message) has all it sent written upstream before the tunnel ends, even
// when the server reads it only later; then the server gets close_notify.
// Here the client leaves the server's greeting unread, so korttid sees its
// socket reset, not just closed.
TEST_F(TlsHeld, AClientThatLeavesAtOnceHasAllItSentReachTheServer) {
  ASSERT_NO_FATAL_FAILURE(open_filled_tunnel());
  ::close(fd_);
  // The tunnel stays until the server has read all; let it see the client gone.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  server_.release();
  const auto got = server_.result();
  ASSERT_TRUE(got.has_value()) << server_.log() << daemon_->log();
  EXPECT_EQ(got->first, sent_) << "bytes the client sent were lost" << server_.log();
  EXPECT_TRUE(got->second) << "the server was not told the end with close_notify" << server_.log();
  auto c = daemon_->connect();
  EXPECT_TRUE(eventually([&] { return c->call("tls.tunnels").empty(); }, std::chrono::seconds(5))) << daemon_->log();
}

// A server that does not read what a client sent before it left does not
// hold the tunnel: it ends handshake_timeout_s after the client left, and
// the server, which never got those bytes, gets no close_notify.
TEST_F(TlsHeld, WhatALeftClientSentThatTheServerDoesNotReadEndsAtTheTimeout) {
  ASSERT_NO_FATAL_FAILURE(open_filled_tunnel(4, true));
  ::close(fd_);
  auto c = daemon_->connect();
  EXPECT_TRUE(eventually([&] { return c->call("tls.tunnels").empty(); }, std::chrono::seconds(15))) << daemon_->log();
  server_.release();
  const auto got = server_.result();
  ASSERT_TRUE(got.has_value()) << server_.log() << daemon_->log();
  EXPECT_LT(got->first, sent_);
  EXPECT_FALSE(got->second) << "a close_notify after a cut stream" << server_.log();
}

// On TLS 1.3 the server checks the client's certificate after the client's
// Finished, where the client's handshake is over: its refusal comes as an
// alert, the first thing the tunnel reads. Both versions end in a
// handshake_failed line after the card's, naming the server's alert.
TEST_F(Tls, AServerThatRefusesTheCardsCertificateIsAFailedHandshakeOnBothVersions) {
  for (const char* version : {"-tls1_3", "-tls1_2"}) {
    SCOPED_TRACE(version);
    // The server trusts the EC cards' CA only; cardA's key is RSA.
    TlsServer server({version}, {}, {"hc-ec"});
    start_with(server);
    login("cardA");
    EXPECT_EQ(through(socket_).answer, "");
    const std::vector<Json> lines = audit_lines_once(3);  // the login, the card's signature, the failure
    ASSERT_EQ(lines.size(), 3U) << daemon_->audit();
    EXPECT_EQ(lines[1]["outcome"], "ok") << "the card signed";
    EXPECT_EQ(lines[2]["action"], "tls.handshake sso");
    EXPECT_EQ(lines[2]["outcome"], "handshake_failed") << lines[2].dump();
    EXPECT_NE(str(lines[2]["detail"]).find("alert"), std::string::npos) << lines[2].dump();
    EXPECT_NE(daemon_->log().find("alert"), std::string::npos) << daemon_->log();
  }
}

// The client's end of input goes on to the server as close_notify (a
// half-close), after what the client sent before it: the server's answer
// still comes back, and a server that ends when its input does (s_server
// -rev) ends the tunnel, so the client, which has not closed, reads the end.
// (`kortti tls connect` half-closes at the end of its input.)
TEST_F(Tls, AClientsHalfCloseReachesTheServerAfterWhatItSent) {
  TlsServer server({"-rev"});
  int fd = -1;
  ASSERT_NO_FATAL_FAILURE(open_reversing_tunnel(server, fd, true));
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1) << "the server never heard the client's end of input" << server.log();
  char rest[64];
  ssize_t n = 0;
  while ((n = ::read(fd, rest, sizeof rest)) > 0) {
  }
  EXPECT_EQ(n, 0) << "the end, not an error";
  EXPECT_NE(server.log().find("CONNECTION CLOSED"), std::string::npos) << server.log();
  ::close(fd);
  auto c = daemon_->connect();
  EXPECT_TRUE(eventually([&] { return c->call("tls.tunnels").empty(); }, std::chrono::seconds(5))) << daemon_->log();
}

// TLS 1.2 has no half-close: a close_notify there makes the server drop
// what it has not sent yet. The client's end of input is kept from the
// server, the answer comes, and the tunnel ends when the client leaves.
TEST_F(Tls, OnTls12AClientsHalfCloseIsKeptFromTheServer) {
  TlsServer server({"-rev", "-tls1_2"});
  int fd = -1;
  ASSERT_NO_FATAL_FAILURE(open_reversing_tunnel(server, fd, true));
  pollfd p{fd, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 500), 0) << "the server ended: it was sent a close_notify";
  EXPECT_EQ(server.log().find("CONNECTION CLOSED"), std::string::npos) << server.log();
  auto c = daemon_->connect();
  ASSERT_EQ(c->call("tls.tunnels").size(), 1U);
  ::close(fd);
  EXPECT_TRUE(eventually([&] { return c->call("tls.tunnels").empty(); }, std::chrono::seconds(5))) << daemon_->log();
}

// A session holder can open tunnels as fast as the network lets it. Where
// the card has no part in them (here: a server that asks for no
// certificate), their audit lines are within the uid's budget ([audit]
// denial_lines_per_second_per_uid) and the rest counted: a full audit disk
// stops every signature.
TEST_F(Tls, HandshakesWithoutTheCardHaveAnAuditBudget) {
  TlsServer server({"-rev", "-tls1_3"}, {}, {});
  start_with(server);
  login("cardA");
  constexpr std::size_t kTunnels = 40;
  for (std::size_t i = 0; i < kTunnels; ++i) {
    const int fd = connect_listener(socket_);
    const std::string line = "hei\n";
    ASSERT_EQ(::send(fd, line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
    ASSERT_NE(read_until(fd, "ieh", std::chrono::seconds(10)).find("ieh"), std::string::npos) << daemon_->log();
    ::close(fd);
  }
  EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
  std::size_t written = 0;
  std::size_t counted = 0;
  for (const Json& line : daemon_->audit()) {
    if (line["action"] == "tls.handshake sso") {
      EXPECT_EQ(line["outcome"], "ok") << line.dump();
      ++written;
    }
    if (line["action"] == "audit.left_out") {
      EXPECT_EQ(line["outcome"], "handshake_without_card") << line.dump();
      counted += std::stoul(str(line["detail"]));
    }
  }
  // Ten a window (twenty, had the tunnels spanned the start of a new one).
  EXPECT_GE(written, 10U);
  EXPECT_LE(written, 20U);
  EXPECT_EQ(written + counted, kTunnels) << "every handshake is written or counted";
}

TEST_F(Tls, MaxTunnelsHoldsAndTheOpenTunnelKeepsWorking) {
  TlsServer server({"-rev"});
  start_at(server.port(), server.certificate().string(), "localhost", 10, 1);
  login("cardA");
  const int first = connect_listener(socket_);
  expect_reversed(first);
  // The second is closed at once: nothing comes back, nothing is signed.
  expect_closed_at_once("the most [tls] max_tunnels allows");
  expect_reversed(first);
  ::close(first);
}

// One uid's tunnels are a share of max_tunnels: a session holder who opens
// them in a loop leaves room for another user's card.
TEST_F(Tls, OneUidsTunnelsLeaveRoomForAnothers) {
  TlsServer server({"-rev"});
  tls_extra_ = "max_tunnels_per_uid = 1\n";
  start_with(server);
  login("cardA");
  connect_as(daemon_->socket(), 4242, 4242)
      ->call("session.login", {{"token_id", wstr(token_ids_.at("cardB"))}, {"pin", kPin}});
  const int first = connect_listener(socket_);
  expect_reversed(first);
  // The same uid's second is closed at once: nothing comes back.
  expect_closed_at_once("uid " + std::to_string(::getuid()) +
                        " has 1 tunnels open, the most [tls] max_tunnels_per_uid allows");
  // Another uid's is admitted beside it (s_server serves one connection at
  // a time, so its handshake waits for the first to end) and works.
  const int other = connect_fd_as(socket_, 4242, 4242);
  auto c = daemon_->connect();
  EXPECT_TRUE(eventually([&] { return c->call("tls.tunnels").size() == 2; }, std::chrono::seconds(5)))
      << daemon_->log();
  ::close(first);
  expect_reversed(other);
  ::close(other);
}

// SIGTERM closes the tunnels' listeners with the main socket, not after
// the grace that requests in flight are given (here a PIN dialog nobody
// answers): no new tunnel gets a card signature while korttid stops.
TEST_F(Tls, SigtermClosesTheListenersAtOnceNotAfterTheGrace) {
  TlsServer server;
  PinentryDouble dialog;
  dialog.answer({"stall"});
  DaemonOptions with_dialog;
  dialog.use_in(with_dialog);
  tables_ = with_dialog.extra;
  env_ = with_dialog.env;
  ipc_extra_ = "shutdown_grace_s = 5\n";
  start_with(server);
  login("cardA");
  auto c = daemon_->connect();
  (void)c->send("sign.digest", {{"cert_id", wstr(rsa_sign_cert())},
                                {"digest_algorithm", "sha256"},
                                {"digest", wstr(base64_encode(random_bytes(32)))},
                                {"pin_prompt", true}});
  for (int i = 0; i < 200 && !dialog.any_shown(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(dialog.any_shown()) << daemon_->log();
  const std::size_t handshakes = audit_lines().size();
  daemon_->signal(SIGTERM);
  ASSERT_TRUE(daemon_->wait_notify("STOPPING=1", std::chrono::seconds(10)));
  EXPECT_THROW(::close(connect_listener(socket_)), std::runtime_error) << "the listener still takes connections";
  EXPECT_EQ(daemon_->stop(SIGTERM, std::chrono::seconds(30)), 0);
  EXPECT_EQ(audit_lines().size(), handshakes) << daemon_->audit();
}

TEST_F(Tls, AServerThatNeverAnswersEndsAtTheHandshakeDeadline) {
  // A listener that never accepts: the connection completes in its backlog
  // and no TLS answer ever comes.
  const int silent = plain_listener();
  start_at(local_port(silent), (pki_dir() / "trust" / "g2-root.pem").string(), "localhost", 1);
  login("cardA");
  const auto began = std::chrono::steady_clock::now();
  EXPECT_EQ(through(socket_, std::chrono::seconds(10)).answer, "");
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(5));
  EXPECT_NE(daemon_->log().find("the handshake did not finish in time"), std::string::npos) << daemon_->log();
  ::close(silent);
}

// An upstream named by a name the name server never answers for: the
// lookup is held to the handshake's deadline like the rest (it was bounded
// only by the resolver's own timeout, here 30 s), and the card never signs.
TEST_F(Tls, AnUpstreamWhoseNameDoesNotResolveEndsAtTheHandshakeDeadline) {
  SilentNameServer dns;
  ASSERT_TRUE(dns.bound()) << "cannot listen on 127.0.0.2:53 (the test needs root, as CI has)";
  upstream_host_ = "sso.kortti-test.invalid";
  wrapper_ = dns.wrapper();
  start_at(443, (pki_dir() / "trust" / "g2-root.pem").string(), "localhost", 2);
  login("cardA");
  const auto began = std::chrono::steady_clock::now();
  EXPECT_EQ(through(socket_, std::chrono::seconds(20)).answer, "");
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(8)) << "the tunnel waited for the resolver";
  EXPECT_NE(daemon_->log().find("cannot look up sso.kortti-test.invalid"), std::string::npos) << daemon_->log();
  EXPECT_GT(dns.questions(), 0) << "korttid did not ask the name server: the test showed nothing";
  for (const Json& line : daemon_->audit()) EXPECT_FALSE(line.contains("digest")) << "the card signed: " << line.dump();
}

// The same tunnel on a real card stack: OpenSC, pcscd and the virtual PIV
// card; the card pulled while the tunnel is open.
class TlsOnCard : public PcscDaemonTest {
 protected:
  void SetUp() override {}

  // korttid over OpenSC with the upstream "sso" at `server`; returns its socket.
  std::string start_with(const TlsServer& server) {
    const std::string socket = (dir_ / "sso.sock").string();
    DaemonOptions o;
    o.extra = "[tls]\nenabled = true\n[[tls.upstream]]\nname = \"sso\"\nconnect = \"127.0.0.1:" +
              std::to_string(server.port()) + "\"\nserver_name = \"localhost\"\nca_file = \"" +
              server.certificate().string() + "\"\nlisten = \"" + socket + "\"\n";
    start_daemon(std::move(o));
    return socket;
  }

  TempDir dir_;
};

TEST_F(TlsOnCard, ThroughOpenScAndPcscdAndTheCardPulledEndsTheTunnel) {
  TlsServer server({"-rev", "-tls1_3"});
  const std::string socket = start_with(server);
  auto card = std::make_unique<VirtualCard>(pcscd_, CardOptions{});
  wait_for_token(card->token_id());
  auto c = daemon_->connect();
  c->call("session.login", {{"token_id", wstr(card->token_id())}, {"pin", kPin}});

  const int fd = connect_listener(socket);
  const std::string line = "kortilla sisaan\n";
  ASSERT_EQ(::send(fd, line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
  const std::string back = read_until(fd, "naasis allitrok", std::chrono::seconds(20));
  EXPECT_NE(back.find("naasis allitrok"), std::string::npos) << back << daemon_->log();
  const Json tunnels = c->call("tls.tunnels");
  ASSERT_EQ(tunnels.size(), 1U);
  EXPECT_EQ(tunnels[0]["version"], "TLSv1.3");
  EXPECT_EQ(tunnels[0]["signature_algorithm"], "RSA-PSS+SHA256");
  EXPECT_EQ(tunnels[0]["cert_id"], wstr(card->token_id() + "/01")) << "the PIV authentication key (9A)";

  const auto pulled = Clock::now();
  card->pull();
  bool closed = false;
  read_until(fd, "", std::chrono::seconds(5), &closed);
  EXPECT_TRUE(closed) << "the tunnel outlived its card";
  EXPECT_LT(Clock::now() - pulled, std::chrono::seconds(3));
  ::close(fd);
  EXPECT_NE(daemon_->log().find("ends: the card was removed (1020 card_removed)"), std::string::npos) << daemon_->log();
}

// The card leaves while it is signing the handshake: that handshake fails,
// the connection closes, and korttid goes on serving.
TEST_F(TlsOnCard, TheCardPulledMidHandshakeFailsThatHandshakeOnly) {
  TlsServer server({"-tls1_3"});
  const std::string socket = start_with(server);
  VirtualCard card(pcscd_, card_options("physician", 0, {"--vanish-ins", "87"}));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  c->call("session.login", {{"token_id", wstr(card.token_id())}, {"pin", kPin}});
  EXPECT_EQ(through(socket).answer, "");
  const std::string log = daemon_->log();
  const auto refused = log.find("tls sso: the card did not sign for uid " + std::to_string(::getuid()));
  ASSERT_NE(refused, std::string::npos) << log;
  EXPECT_NE(log.substr(refused, log.find('\n', refused) - refused).find("(card_removed)"), std::string::npos)
      << "1020: " << log;
  EXPECT_NE(log.find("tls sso: no tunnel for uid"), std::string::npos) << log;
  EXPECT_EQ(c->call("system.hello")["daemon"], "korttid");
  // The client's socket closes as the handshake fails; the tunnel's entry
  // goes when its thread has ended, a moment later.
  EXPECT_TRUE(eventually([&] { return c->call("tls.tunnels").empty(); }, std::chrono::seconds(5)));
}

}  // namespace
}  // namespace kortti::test
