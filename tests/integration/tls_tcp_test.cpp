// A tunnel that listens on a loopback TCP port, for clients that cannot use
// a Unix socket: the connecting uid from the kernel's socket table, and a
// web browser's connection refused before the server and the card hear of
// it (tls/browser_guard.hpp), with real curl and `openssl s_server`.

#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <stdexcept>
#include <thread>

#include "tests/integration/tls_fixture.hpp"

namespace kortti::test {
namespace {

class TlsTcp : public Tls {
 protected:
  TlsTcp() { tcp_ = true; }

  // curl against the tunnel, with `args` added; its output with the
  // answer's head (-i).
  CommandResult curl(std::vector<std::string> args) {
    std::vector<std::string> all = {"curl", "-sS", "-i", "--max-time", "20"};
    all.insert(all.end(), args.begin(), args.end());
    all.push_back("http://" + socket_ + "/");
    return run(all);
  }

  // No card signature was asked for: no begun line of a handshake.
  void expect_card_untouched() {
    for (const Json& line : daemon_->audit())
      EXPECT_FALSE(line.contains("digest")) << "the card signed: " << line.dump();
  }
};

TEST_F(TlsTcp, AProgramLogsInWithTheCardOfTheUidTheKernelNames) {
  TlsServer server;
  start_with(server);
  login("cardA");
  const CommandResult r = curl({});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("Client certificate"), std::string::npos) << r.out << daemon_->log() << server.log();
  EXPECT_NE(r.out.find("Testil"), std::string::npos) << "the physician's certificate";
  const std::vector<Json> lines = audit_lines_once(2);
  ASSERT_EQ(lines.size(), 2U) << daemon_->audit();  // the login, the handshake
  EXPECT_EQ(lines[1]["action"], "tls.handshake sso");
  EXPECT_EQ(lines[1]["outcome"], "ok");
  EXPECT_EQ(lines[1]["uid"], ::getuid());
  EXPECT_EQ(lines[1]["pid"], 0) << "TCP carries no pid";
  // kortti tls connect finds the port in tls.upstreams.
  const auto connect = run({kortti_binary().string(), "--socket", daemon_->socket(), "tls", "connect", "sso"}, {},
                           "GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(connect.status, 0) << connect.err;
  EXPECT_NE(connect.out.find("Client certificate"), std::string::npos) << connect.out << daemon_->log();
  // Another uid's connection to the same port does not get this session.
  EXPECT_EQ(through_fd(connect_fd_as(socket_, 4242, 4242)).answer, "");
  EXPECT_NE(daemon_->log().find("tls sso: uid 4242 pid 0 has no PIN1 session"), std::string::npos) << daemon_->log();
  EXPECT_EQ(daemon_->log().find(kPin), std::string::npos);
}

// An upstream's `access` by group: a TCP peer's groups are its user's in
// the account database (TCP carries none).
TEST_F(TlsTcp, AccessByGroupTakesTheUsersGroupsFromTheAccountDatabase) {
  const passwd* me = ::getpwuid(::getuid());
  ASSERT_NE(me, nullptr);
  TlsServer server;
  access_ = R"(["uid:4242", "gid:)" + std::to_string(me->pw_gid) + R"("])";
  start_with(server);
  login("cardA");
  EXPECT_NE(through(socket_).answer.find("Client certificate"), std::string::npos) << daemon_->log();
  // Another uid, whose user (none here) is in no group: not in the access.
  EXPECT_EQ(through_fd(connect_fd_as(socket_, 4243, 4243)).answer, "");
  EXPECT_NE(daemon_->log().find("uid 4243 pid 0 is not in the upstream's access (1040"), std::string::npos)
      << daemon_->log();
}

TEST_F(TlsTcp, WhatAWebBrowserSendsIsRefusedBeforeTheServerAndTheCard) {
  const int upstream = plain_listener();
  TlsServer roots;  // only for a CA file
  start_at(local_port(upstream), roots.certificate().string());
  // Logged in or not, a page gets the same answer: it cannot learn whether
  // the clinician has a session.
  const CommandResult before_login = curl({"-H", "Origin: https://evil.example"});
  EXPECT_NE(before_login.out.find("HTTP/1.1 403 Forbidden"), std::string::npos) << before_login.out;
  login("cardA");
  const struct {
    std::vector<std::string> headers;
    const char* why;
  } browsers[] = {
      {{"-H", "Sec-Fetch-Site: cross-site", "-H", "Sec-Fetch-Mode: no-cors"}, "it carries a Sec-Fetch-* header"},
      {{"-H", "Origin: https://evil.example"}, "it carries Origin"},
      {{"-A", "Mozilla/5.0 (X11; Linux x86_64)"}, "its User-Agent is a web browser's"},
      {{"-H", "Host: evil.example:8080"}, "its Host is neither this listener's address nor the upstream's name"},
  };
  for (const auto& b : browsers) {
    const CommandResult r = curl(b.headers);
    EXPECT_NE(r.out.find("HTTP/1.1 403 Forbidden"), std::string::npos) << r.out << r.err;
    EXPECT_NE(r.out.find(std::string("korttid: this tunnel does not serve web browsers: ") + b.why), std::string::npos)
        << r.out;
    EXPECT_NE(daemon_->log().find(std::string("refused before the session, the server and the card: ") + b.why),
              std::string::npos)
        << daemon_->log();
  }
  // An https:// request to the port: the ClientHello is closed unanswered.
  const int fd = connect_listener(socket_);
  const std::string hello("\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00", 10);
  ASSERT_EQ(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL), static_cast<ssize_t>(hello.size()));
  bool closed = false;
  EXPECT_EQ(read_until(fd, "", std::chrono::seconds(5), &closed), "");
  EXPECT_TRUE(closed);
  ::close(fd);
  EXPECT_NE(daemon_->log().find("refused before the session, the server and the card: it began a TLS handshake"),
            std::string::npos)
      << daemon_->log();
  // Nobody came to the upstream, and the card never signed.
  EXPECT_LT(::accept(upstream, nullptr, nullptr), 0) << "a refused connection reached the upstream";
  ::close(upstream);
  expect_card_untouched();
  // Refused before the session was looked at: no handshake to audit.
  for (const Json& line : audit_lines())
    EXPECT_EQ(str(line["action"]).rfind("tls.", 0), std::string::npos) << line.dump();
}

// A page the clinician's browser opens sends requests to the tunnel's port:
// a real headless Chromium, from a page on another origin. korttid refuses
// each before the session, the server and the card; the page gets nothing.
TEST_F(TlsTcp, ARealBrowsersRequestsFromAPageNeverReachTheServerOrTheCard) {
  ASSERT_EQ(run({"sh", "-c", "command -v chromium"}).status, 0) << "chromium is not installed (scripts/install-deps)";
  const int upstream = plain_listener();
  TlsServer roots;  // only for a CA file
  start_at(local_port(upstream), roots.certificate().string());
  login("cardA");
  TempDir site;
  write_file(site / "attack.html", R"(<!doctype html><html><body><pre id="out">pending</pre><script>
function call(method, body) {
  const x = new XMLHttpRequest();
  x.open(method, "http://)" + socket_ + R"(/orders", false);
  if (body) x.setRequestHeader("Content-Type", "text/plain");
  try { x.send(body); return x.status + " " + x.responseText; } catch (e) { return "error " + e.name; }
}
document.getElementById("out").textContent = JSON.stringify({get: call("GET"), post: call("POST", "order")});
</script></body></html>
)");
  PageServer pages(site.path());
  TempDir home;
  Browser browser(home.path());
  browser.trust(pages.ca(), "site");
  std::string error;
  const std::optional<std::string> out =
      browser.page_output("https://localhost:" + std::to_string(pages.port()) + "/attack.html", error);
  ASSERT_TRUE(out) << error;
  const Json seen = Json::parse(*out, nullptr, false);
  EXPECT_EQ(seen["get"], "error NetworkError") << *out;
  EXPECT_EQ(seen["post"], "error NetworkError") << *out;
  // The browser did send both, and korttid refused them.
  const std::string log = daemon_->log();
  std::size_t refused = 0;
  for (auto at = log.find("refused before the session, the server and the card: it carries a Sec-");
       at != std::string::npos; at = log.find("refused before the session", at + 1))
    ++refused;
  EXPECT_GE(refused, 2U) << log;
  EXPECT_LT(::accept(upstream, nullptr, nullptr), 0) << "a page's request reached the upstream";
  ::close(upstream);
  expect_card_untouched();
}

// A browser may open a connection ahead of need and send its request later:
// a client that says nothing is closed unserved, after 5 s or the handshake
// timeout if that is shorter (here 2 s).
TEST_F(TlsTcp, AClientThatSaysNothingIsClosedUnserved) {
  TlsServer server;
  start_at(server.port(), server.certificate().string(), "localhost", 2);
  login("cardA");
  const auto began = std::chrono::steady_clock::now();
  const int fd = connect_listener(socket_);
  bool closed = false;
  EXPECT_EQ(read_until(fd, "", std::chrono::seconds(10), &closed), "");
  EXPECT_TRUE(closed);
  ::close(fd);
  EXPECT_GE(std::chrono::steady_clock::now() - began, std::chrono::milliseconds(1500));
  EXPECT_NE(daemon_->log().find("refused before the session, the server and the card: it sent nothing first"),
            std::string::npos)
      << daemon_->log();
  expect_card_untouched();
  // A program that speaks at once is served meanwhile and after.
  EXPECT_NE(through(socket_).answer.find("Client certificate"), std::string::npos) << daemon_->log();
}

// Connections that say nothing are held at most 64 at once while korttid
// waits for their first bytes: the 65th is closed at once, and a program
// that speaks is served once they are gone.
TEST_F(TlsTcp, AtMost64ConnectionsWaitForTheirFirstBytes) {
  TlsServer server;
  start_at(server.port(), server.certificate().string(), "localhost", 10);
  login("cardA");
  std::vector<int> waiting;
  for (int i = 0; i < 64; ++i) waiting.push_back(connect_listener(socket_));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // all accepted, each being read
  const auto began = std::chrono::steady_clock::now();
  const int extra = connect_listener(socket_);
  bool closed = false;
  EXPECT_EQ(read_until(extra, "", std::chrono::seconds(4), &closed), "");
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(3)) << "closed at once, not at 5 s";
  ::close(extra);
  EXPECT_NE(daemon_->log().find("64 connections wait for their first bytes; connection of uid"), std::string::npos)
      << daemon_->log();
  for (const int fd : waiting) ::close(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_NE(through(socket_).answer.find("Client certificate"), std::string::npos) << daemon_->log();
}

// A protocol that is not HTTP passes, both ways: a line to `s_server -rev`
// comes back reversed.
TEST_F(TlsTcp, AProtocolThatIsNotHttpIsRelayed) {
  TlsServer server({"-rev"});
  int fd = -1;
  ASSERT_NO_FATAL_FAILURE(open_reversing_tunnel(server, fd));
  expect_reversed(fd);
  ::close(fd);
}

}  // namespace
}  // namespace kortti::test
