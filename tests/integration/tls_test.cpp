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

#include <thread>

#include "tests/integration/softhsm_fixture.hpp"
#include "tests/support/pcsc_fixture.hpp"

namespace kortti::test {
namespace {

struct Exchange {
  bool connected = false;
  std::string answer;  // everything the tunnel sent back before it closed
};

int connect_unix(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("connect " + path);
  return fd;
}

// Reads from `fd` until `want` has arrived, the peer closes, or `timeout`.
// Returns what arrived; `closed` says whether the peer closed.
std::string read_until(int fd, const std::string& want, std::chrono::milliseconds timeout, bool* closed = nullptr) {
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline && (want.empty() || got.find(want) == std::string::npos)) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) != 1) continue;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      if (closed != nullptr) *closed = true;
      break;
    }
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

// Connects to a tunnel's socket, sends an HTTP request and reads until the
// tunnel closes (or `timeout`).
Exchange through(const std::string& socket, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  Exchange out;
  const int fd = connect_unix(socket);
  out.connected = true;
  const std::string request = "GET / HTTP/1.0\r\n\r\n";
  (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  out.answer = read_until(fd, "", timeout);
  ::close(fd);
  return out;
}

class Tls : public SoftHsmDaemonTest {
 protected:
  void SetUp() override {}

  // korttid with one upstream, "sso", at `server`.
  void start_with(const TlsServer& server, const std::string& ca_file = "",
                  const std::string& server_name = "localhost") {
    start_at(server.port(), ca_file.empty() ? server.certificate().string() : ca_file, server_name);
  }

  void start_at(int port, const std::string& ca_file, const std::string& server_name = "localhost",
                int handshake_timeout_s = 10, int max_tunnels = 16) {
    socket_ = (tokens_dir_.path() / "sso.sock").string();
    DaemonOptions o = no_pss_ ? shim_options("KORTTI_SHIM_NO_PSS", "1") : DaemonOptions{};
    o.extra = "[tls]\nenabled = true\nhandshake_timeout_s = " + std::to_string(handshake_timeout_s) +
              "\nmax_tunnels = " + std::to_string(max_tunnels) +
              "\n[[tls.upstream]]\nname = \"sso\"\nconnect = \"127.0.0.1:" + std::to_string(port) +
              "\"\nserver_name = \"" + server_name + "\"\nca_file = \"" + ca_file + "\"\nlisten = \"" + socket_ +
              "\"\n" + (access_.empty() ? "" : "access = " + access_ + "\n");
    start(std::move(o));
  }

  void login(const std::string& card) {
    daemon_->connect()->call("session.login", {{"token_id", wstr(token_ids_.at(card))}, {"pin", kPin}});
  }

  // Logs `card` out through `c`: the tunnel whose client end is `fd` must
  // close for it (`fd` is closed here).
  void expect_logout_ends_tunnel(client::Client& c, const std::string& card, int fd) {
    c.call("session.logout", {{"token_id", wstr(token_ids_.at(card))}});
    bool closed = false;
    read_until(fd, "", std::chrono::seconds(5), &closed);
    ::close(fd);
    EXPECT_TRUE(closed) << "the tunnel outlived the session on " << card;
    EXPECT_NE(daemon_->log().find("ends: the PIN1 session ended"), std::string::npos) << daemon_->log();
  }

  // korttid with `server` (an `s_server -rev`) as "sso", cardA logged in,
  // and a tunnel through which one line went and came back reversed; `fd`
  // is the client's end of it. (A void function, so that it may ASSERT:
  // call it in ASSERT_NO_FATAL_FAILURE.)
  void open_reversing_tunnel(const TlsServer& server, int& fd) {
    start_with(server);
    login("cardA");
    fd = connect_unix(socket_);
    const std::string line = "hei\n";
    ASSERT_EQ(::send(fd, line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
    EXPECT_NE(read_until(fd, "ieh", std::chrono::seconds(10)).find("ieh"), std::string::npos);
  }

  // The outcome lines (audit_test pins down the begun line before each).
  std::vector<Json> audit_lines() { return outcomes(daemon_->audit()); }

  // A failed handshake's line is written after the tunnel has closed.
  std::vector<Json> audit_lines_once(std::size_t count) {
    std::vector<Json> lines = audit_lines();
    for (int i = 0; i < 200 && lines.size() < count; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      lines = audit_lines();
    }
    return lines;
  }

  std::string socket_;
  bool no_pss_ = false;  // the token through the test double that lacks RSA-PSS
  std::string access_;   // the upstream's `access`, as TOML
};

TEST_F(Tls, RsaKeyLogsInOverTls13WithPssThroughATunnel) {
  TlsServer server({"-tls1_3"});
  start_with(server);
  login("cardA");
  const Exchange e = through(socket_);
  ASSERT_TRUE(e.connected);
  EXPECT_NE(e.answer.find("Client certificate"), std::string::npos) << e.answer << daemon_->log() << server.log();
  EXPECT_NE(e.answer.find("Protocol  : TLSv1.3"), std::string::npos) << e.answer;
  EXPECT_NE(e.answer.find("Peer signature type: RSA-PSS"), std::string::npos) << e.answer;
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
  EXPECT_NE(str(lines[1]["subject"]).find("Testil"), std::string::npos);
  EXPECT_EQ(str(lines[1]["digest_algorithm"]), "sha256");
  EXPECT_EQ(lines[1]["detail"], "server_name localhost, TLSv1.3 RSA-PSS+SHA256") << lines[1].dump();
  EXPECT_NE(daemon_->log().find("tls sso: tunnel open for uid " + std::to_string(::getuid()) + " with " +
                                cert_id("cardA", "02") + ": TLSv1.3 RSA-PSS+SHA256"),
            std::string::npos)
      << daemon_->log();
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
}

// A clinician logged in on two cards: each server gets the certificate
// whose issuer its certificate request names, whichever card comes first
// (each card is chosen on each version, so one of each pair is not the first).
TEST_F(Tls, WithTwoCardsTheServerGetsTheCertificateIssuedUnderACaItNames) {
  struct Case {
    std::vector<std::string> options;
    std::string issuer;
    std::string card;
    std::string signature;  // what s_server saw
  };
  for (const Case& c : {Case{{"-tls1_3"}, "hc-ec", "cardB", "Peer signature type: ECDSA"},
                        Case{{"-tls1_2"}, "hc-ec", "cardB", "Peer signature type: ECDSA"},
                        Case{{"-tls1_3"}, "hc-rsa", "cardA", "Peer signature type: RSA-PSS"},
                        Case{{"-tls1_2"}, "hc-rsa", "cardA", "Peer signature type: RSA-PSS"}}) {
    SCOPED_TRACE(c.issuer + " " + c.options.front());
    TlsServer server(c.options, {}, {c.issuer});
    start_with(server);
    login("cardA");
    login("cardB");
    const Exchange e = through(socket_);
    EXPECT_NE(e.answer.find(c.signature), std::string::npos) << e.answer << daemon_->log() << server.log();
    const std::vector<Json> lines = audit_lines_once(3);  // two logins, the handshake
    ASSERT_EQ(lines.size(), 3U) << daemon_->audit();
    EXPECT_EQ(lines[2]["cert_id"], wstr(cert_id(c.card, "02"))) << lines[2].dump();
    EXPECT_EQ(lines[2]["outcome"], "ok") << lines[2].dump();
    EXPECT_NE(
        daemon_->log().find("tunnel open for uid " + std::to_string(::getuid()) + " with " + cert_id(c.card, "02")),
        std::string::npos)
        << daemon_->log();
  }
}

// A card that carries its certificate's issuer: a server that trusts and
// names only the root gets the issuer with the certificate, builds the path
// and accepts it, and is given this card's certificate over another card's.
TEST_F(Tls, TheIssuerTheCardCarriesGoesWithItsCertificateToAServerThatNamesOnlyTheRoot) {
  SoftHsm(tokens_dir_.path()).add_token("cardD", {"specialist/auth", "ca/hc-ec"});
  TlsServer server({"-tls1_3"}, {}, {"trust/g3-root.pem"});
  start_with(server);
  ASSERT_TRUE(token_ids_.contains("cardD")) << daemon_->log();
  login("cardA");
  login("cardD");
  const Exchange e = through(socket_);
  EXPECT_NE(e.answer.find("Peer signature type: ECDSA"), std::string::npos)
      << e.answer << daemon_->log() << server.log();
  const std::vector<Json> lines = audit_lines_once(3);  // two logins, the handshake
  ASSERT_EQ(lines.size(), 3U) << daemon_->audit();
  EXPECT_EQ(lines[2]["cert_id"], wstr(cert_id("cardD", "01"))) << lines[2].dump();
  EXPECT_EQ(lines[2]["outcome"], "ok") << lines[2].dump();
}

// A server that asks for no certificate leaves the choice open: the tunnel
// stands on each card whose session let it in, and ends with any of them.
TEST_F(Tls, WithTwoCardsATunnelThatPresentedNoCertificateEndsWithEitherSession) {
  TlsServer server({"-rev", "-tls1_3"}, {}, {});
  start_with(server);
  login("cardA");
  login("cardB");
  auto c = daemon_->connect();
  const int fd = connect_unix(socket_);
  const std::string line = "hei\n";
  ASSERT_EQ(::send(fd, line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
  EXPECT_NE(read_until(fd, "ieh", std::chrono::seconds(10)).find("ieh"), std::string::npos) << daemon_->log();
  const Json tunnels = c->call("tls.tunnels");
  ASSERT_EQ(tunnels.size(), 1U) << tunnels.dump();
  EXPECT_EQ(tunnels[0]["cert_id"], "") << "no certificate was asked for";

  expect_logout_ends_tunnel(*c, "cardB", fd);
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
                     ": this key asks for the PIN at every signature (a signature PIN key): it does not serve TLS "
                     "client authentication (unsupported)"),
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
  const int fd = connect_unix(socket_);
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

  const int fd = connect_unix(socket_);
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

// `kortti tls connect` half-closes at the end of its input, then exits: the
// tunnel ends then, though the server stays silent (it used to wait for the
// server, its relay woken at once by the hang-up, round after round).
TEST_F(Tls, AClientThatHalfClosesThenLeavesEndsItsTunnelWhileTheServerIsSilent) {
  TlsServer server({"-rev"});
  int fd = -1;
  ASSERT_NO_FATAL_FAILURE(open_reversing_tunnel(server, fd));
  auto c = daemon_->connect();
  ASSERT_EQ(::shutdown(fd, SHUT_WR), 0);
  // Time for the relay to read the half-close before the close comes (if
  // it did not, both arrive together, and the test proves less, not wrongly).
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(c->call("tls.tunnels").size(), 1U) << "a half-closed client still gets the server's answer";
  ::close(fd);
  EXPECT_TRUE(eventually([&] { return c->call("tls.tunnels").empty(); }, std::chrono::seconds(5)))
      << "the tunnel outlived its client" << daemon_->log();
}

TEST_F(Tls, MaxTunnelsHoldsAndTheOpenTunnelKeepsWorking) {
  TlsServer server({"-rev"});
  start_at(server.port(), server.certificate().string(), "localhost", 10, 1);
  login("cardA");
  const int first = connect_unix(socket_);
  const std::string line = "yksi\n";
  ASSERT_EQ(::send(first, line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
  EXPECT_NE(read_until(first, "isky", std::chrono::seconds(10)).find("isky"), std::string::npos);
  // The second is closed at once: nothing comes back, nothing is signed.
  bool closed = false;
  const int second = connect_unix(socket_);
  EXPECT_EQ(read_until(second, "", std::chrono::seconds(5), &closed), "");
  EXPECT_TRUE(closed);
  ::close(second);
  EXPECT_NE(daemon_->log().find("the most [tls] max_tunnels allows"), std::string::npos) << daemon_->log();
  ASSERT_EQ(::send(first, line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
  EXPECT_NE(read_until(first, "isky", std::chrono::seconds(10)).find("isky"), std::string::npos);
  ::close(first);
}

TEST_F(Tls, AServerThatNeverAnswersEndsAtTheHandshakeDeadline) {
  // A listener that never accepts: the connection completes in its backlog
  // and no TLS answer ever comes.
  const int silent = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(silent, 8), 0);
  ::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len);
  start_at(ntohs(addr.sin_port), (pki_dir() / "trust" / "g2-root.pem").string(), "localhost", 1);
  login("cardA");
  const auto began = std::chrono::steady_clock::now();
  EXPECT_EQ(through(socket_, std::chrono::seconds(10)).answer, "");
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(5));
  EXPECT_NE(daemon_->log().find("the handshake did not finish in time"), std::string::npos) << daemon_->log();
  ::close(silent);
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

  const int fd = connect_unix(socket);
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
  EXPECT_NE(log.find("tls sso: the card did not sign for uid " + std::to_string(::getuid())), std::string::npos) << log;
  EXPECT_NE(log.find("tls sso: no tunnel for uid"), std::string::npos) << log;
  EXPECT_EQ(c->call("system.hello")["daemon"], "korttid");
  // The client's socket closes as the handshake fails; the tunnel's entry
  // goes when its thread has ended, a moment later.
  EXPECT_TRUE(eventually([&] { return c->call("tls.tunnels").empty(); }, std::chrono::seconds(5)));
}

}  // namespace
}  // namespace kortti::test
