// The kortti CLI against a peer that is not the korttid it expects: answers
// with members missing or of another type, error answers that are
// malformed, text from a hostile card, PINs that are not text, a tunnel
// that breaks. kortti must say what is wrong and exit, never crash, and
// never put a PIN or a terminal escape sequence on the screen.

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "common/encoding.hpp"
#include "common/json.hpp"
#include "tests/support/support.hpp"

namespace kortti::test {
namespace {

constexpr const char* kStall = ScriptedKorttid::kStall;

class CliPeer : public ::testing::Test {
 protected:
  // kortti against a ScriptedKorttid answering `answers`.
  CommandResult kortti(const std::map<std::string, std::string>& answers, std::vector<std::string> args,
                       const std::string& input = {}, const std::map<int, fs::path>& fds = {},
                       const std::map<std::string, std::string>& env = {}) {
    peer_ = std::make_unique<ScriptedKorttid>(socket(), answers);
    args.insert(args.begin(), {kortti_binary().string(), "--socket", socket().string()});
    CommandResult r = run(args, env, input, fds);
    methods_ = peer_->methods();
    peer_.reset();
    fs::remove(socket());
    return r;
  }
  fs::path socket() const { return dir_.path() / "korttid.sock"; }
  fs::path file(const std::string& name, const std::string& bytes) {
    const fs::path p = dir_.path() / name;
    write_file(p, bytes);
    return p;
  }
  bool asked(const std::string& method) const {
    return std::find(methods_.begin(), methods_.end(), method) != methods_.end();
  }

  TempDir dir_;
  std::unique_ptr<ScriptedKorttid> peer_;
  std::vector<std::string> methods_;
};

bool has_control_characters(const std::string& text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto b = static_cast<unsigned char>(c);
    return (b < 0x20 && b != '\n' && b != '\t') || b == 0x7F;
  });
}

// A card's label is the card's to choose: escape sequences in it (a new
// window title, a cleared screen, red text) reach the screen as U+FFFD.
TEST_F(CliPeer, ACardsEscapeSequencesNeverReachTheTerminal) {
  const std::string label = R"(\u001b]0;pwned\u0007\u001b[2J\u001b[31mRED\u009b1m\u202eevil)";
  const std::string tokens = R"({"jsonrpc":"2.0","id":ID,"result":[{"token_id":"t1","label":")" + label +
                             R"(","reader":"r","logged_in":false,"pinpad":false,"pins":{"user":{}}}]})";
  const auto r = kortti({{"tokens.list", tokens}}, {"tokens"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("RED"), std::string::npos) << r.out;
  EXPECT_FALSE(has_control_characters(r.out)) << r.out;
  EXPECT_EQ(r.out.find("\xC2\x9B"), std::string::npos) << "C1 CSI";
  EXPECT_EQ(r.out.find("\xE2\x80\xAE"), std::string::npos) << "right-to-left override";
  EXPECT_NE(r.out.find("\xEF\xBF\xBD"), std::string::npos) << "U+FFFD in their place: " << r.out;

  // The same in an error's message, and in --json output.
  const auto e = kortti(
      {{"tokens.list",
        R"({"jsonrpc":"2.0","id":ID,"error":{"code":1060,"message":"bad \u001b[2J card","data":{"reason":"service_unavailable"}}})"}},
      {"tokens"});
  EXPECT_EQ(e.status, 1);
  EXPECT_FALSE(has_control_characters(e.err)) << e.err;
  EXPECT_NE(e.err.find("bad"), std::string::npos) << e.err;
  const auto j = kortti({{"tokens.list", tokens}}, {"--json", "tokens"});
  EXPECT_EQ(j.status, 0) << j.err;
  EXPECT_FALSE(has_control_characters(j.out)) << j.out;
}

// A desktop notification's body may be read as markup: a label's link or
// image reaches the desktop as the text it is.
TEST_F(CliPeer, ACardsMarkupReachesTheDesktopAsText) {
  Desktop desktop;
  const std::string tokens =
      R"({"jsonrpc":"2.0","id":ID,"result":[{"token_id":"t1","label":"<a href='https://evil.example'>Aino</a> & co\u001b[2J","pins":{"user":{"locked":true}}}]})";
  const auto r = kortti({{"tokens.list", tokens}, {"certificates.list", R"({"jsonrpc":"2.0","id":ID,"result":[]})"}},
                        {"watch", "--once"}, {}, {}, desktop.env());
  EXPECT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(desktop.wait_for_notice("PIN locked", std::chrono::seconds(10))) << r.err;
  const std::vector<std::string> notices = desktop.notices();
  ASSERT_EQ(notices.size(), 1U);
  EXPECT_NE(notices[0].find("&lt;a href='https://evil.example'&gt;Aino&lt;/a&gt; &amp; co"), std::string::npos)
      << notices[0];
  EXPECT_FALSE(has_control_characters(notices[0].substr(notices[0].find("The PIN")))) << notices[0];
}

// An error answer whose members are of other types than protocol.md says
// is reported for what it is, not a crash (it was std::terminate: 134).
TEST_F(CliPeer, AMalformedErrorAnswerIsReportedNotACrash) {
  for (const std::string data :
       {R"({"reason":"pin_incorrect","tries_left":"two"})", R"({"reason":5,"detail":7,"reasons":"none"})",
        R"("not an object")", R"({"reasons":[1,"x",{"code":"c","message":"m"}]})"}) {
    const auto r =
        kortti({{"system.status",
                 R"({"jsonrpc":"2.0","id":ID,"error":{"code":"x","message":"refused","data":)" + data + "}}"}},
               {"status"});
    EXPECT_EQ(r.status, 1) << data << ": " << r.err;
    EXPECT_NE(r.err.find("kortti: refused"), std::string::npos) << data << ": " << r.err;
  }
  const auto no_error = kortti({{"system.status", R"({"jsonrpc":"2.0","id":ID,"error":"no"})"}}, {"status"});
  EXPECT_EQ(no_error.status, 1) << no_error.err;
  EXPECT_NE(no_error.err.find("kortti: error"), std::string::npos) << no_error.err;
}

// An answer that lacks members kortti reads, or holds them with other types,
// ends kortti with a message (with the library's asserts gone in a release
// build, a member read that is not there was undefined behaviour).
TEST_F(CliPeer, AnAnswerWithoutTheMembersKorttiReadsIsAnErrorNotACrash) {
  const std::map<std::string, std::vector<std::string>> cases = {
      {"tokens.list", {"tokens"}},
      {"readers.list", {"readers"}},
      {"certificates.list", {"certs"}},
      {"pin.status", {"pin", "status"}},
  };
  for (const auto& [method, args] : cases)
    for (const std::string result : {R"([{"token_id":"t","label":"L"}])", R"([{"pins":{"user":{"tries_left":"x"}}}])",
                                     R"([7, null])", R"({"not":"a list"})"}) {
      const auto r = kortti({{method, R"({"jsonrpc":"2.0","id":ID,"result":)" + result + "}"}}, args);
      EXPECT_TRUE(r.status == 0 || r.status == 1) << method << " " << result << ": " << r.status << " " << r.err;
      if (r.status != 0) {
        EXPECT_NE(r.err.find("kortti: "), std::string::npos) << method << " " << result;
      }
    }
  const auto deep = kortti({{"system.status", R"({"jsonrpc":"2.0","id":ID,"result":)" + std::string(200, '[') +
                                                  std::string(200, ']') + "}"}},
                           {"status"});
  EXPECT_EQ(deep.status, 1) << deep.err;
  EXPECT_NE(deep.err.find("nested deeper"), std::string::npos) << deep.err;
  const auto not_a_message = kortti({{"system.status", "[1,2,3]"}}, {"status"});
  EXPECT_EQ(not_a_message.status, 1) << not_a_message.err;
}

// korttid's largest answer is a signed document of its 16 MiB limit: a
// peer's line or attachment past kortti's 128 MiB is refused there, not
// read to its end into memory.
TEST_F(CliPeer, AnAnswerLongerThanAnyOfKorttidsIsRefusedAtTheBound) {
  const auto line = kortti({{"system.status", std::string((std::size_t{128} << 20) + 65536, 'x')}}, {"status"});
  EXPECT_EQ(line.status, 1) << line.err;
  EXPECT_NE(line.err.find("korttid sent a line longer than kortti takes"), std::string::npos) << line.err;
  const auto attachment = kortti({{"system.status", R"({"jsonrpc":"2.0","id":ID,"result":{},)"
                                                    R"("attachment":{"name":"document","bytes":134217729}})"}},
                                 {"status"});
  EXPECT_EQ(attachment.status, 1) << attachment.err;
  EXPECT_NE(attachment.err.find("korttid announced an attachment larger than kortti takes"), std::string::npos)
      << attachment.err;
}

// A signature or a signed document the answer lacks is an error, not an
// empty file written and reported as signed.
TEST_F(CliPeer, AnAnswerWithoutTheSignatureWritesNoFile) {
  const fs::path in = file("doc.txt", "Rp.\n");
  const fs::path out = dir_.path() / "doc.sig";
  const auto r = kortti({{"sign.digest", R"({"jsonrpc":"2.0","id":ID,"result":{"certificate":""}})"}},
                        {"sign", "--cert", "t/01", "--in", in.string(), "--out", out.string(), "--pin-fd", "3"}, {},
                        {{3, file("pin", "123456\n")}});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("lacks 'signature'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

// --pin-fd: a PIN of bytes that are not text, an empty line, or nothing at
// all is refused before anything is sent, and the error quotes none of it
// (JSON's own error named the offending byte and the ones around it).
TEST_F(CliPeer, APinThatIsNotTextOrIsEmptyIsRefusedBeforeItIsSent) {
  for (const std::string& pin :
       {std::string("12\xE4") + "4567\n", std::string("1234\x1b[0m\n"), std::string("\n"), std::string()}) {
    const auto r = kortti({}, {"login", "--token", "t", "--pin-fd", "3"}, {}, {{3, file("pin", pin)}});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find("PIN"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("4567"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("0x"), std::string::npos) << r.err;
    EXPECT_FALSE(asked("session.login")) << "nothing of it was sent";
  }
  const auto dir = kortti({}, {"login", "--token", "t", "--pin-fd", "3"}, {}, {{3, dir_.path()}});
  EXPECT_EQ(dir.status, 1) << dir.err;
  EXPECT_NE(dir.err.find("cannot read the PIN"), std::string::npos) << dir.err;
  EXPECT_FALSE(asked("session.login"));
}

// Usage errors exit 2 as --help says (CLI11's own codes came through: 106,
// 108, 109), and --help and --version 0.
TEST_F(CliPeer, UsageErrorsExitTwo) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"sign"},
                                               {"no-such-command"},
                                               {"tokens", "--no-such-option"},
                                               {"login", "--token", "t", "--pin-fd", "-1"},
                                               {"login", "--token", "t", "--pin-fd", "3", "--pinpad"}}) {
    const auto r = kortti({}, args);
    EXPECT_EQ(r.status, 2) << args.front() << ": " << r.err;
  }
  EXPECT_EQ(kortti({}, {"--help"}).status, 0);
  EXPECT_EQ(kortti({}, {"--version"}).status, 0);
  EXPECT_TRUE(methods_.empty()) << "a usage error reaches no korttid";
}

// A korttid that takes a request and never answers it, or stops reading
// one half sent: kortti gives up after --timeout, says where and exits 69,
// as for a korttid it cannot reach.
TEST_F(CliPeer, AKorttidThatStopsAnsweringOrReadingIsGivenUpAfterTheTimeout) {
  const auto answer = kortti({{"tokens.list", kStall}}, {"--timeout", "1", "tokens"});
  EXPECT_EQ(answer.status, 69) << answer.err;
  EXPECT_NE(answer.err.find("no answer from korttid in 1 s (--timeout)"), std::string::npos) << answer.err;
  EXPECT_TRUE(asked("tokens.list"));

  // The document goes after its request's line, which the peer reads; the
  // rest is more than the socket holds.
  const fs::path document = file("large.xml", "<a>" + std::string(std::size_t{8} << 20, 'x') + "</a>");
  const auto request = kortti({{"verify.xml", kStall}}, {"--timeout", "1", "verify", "--in", document.string()});
  EXPECT_EQ(request.status, 69) << request.err;
  EXPECT_NE(request.err.find("korttid took no more of the request in 1 s (--timeout)"), std::string::npos)
      << request.err;
  EXPECT_TRUE(asked("verify.xml"));
}

// A korttid that takes no connections (their queue full: it is stopped, or
// its io thread stuck) is given up after the timeout too.
TEST_F(CliPeer, AFullQueueOfConnectionsIsGivenUpAfterTheTimeout) {
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  socket().string().copy(addr.sun_path, sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 0), 0);  // one waiting connection fills it
  const int waiting = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(waiting, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const auto r = run({kortti_binary().string(), "--socket", socket().string(), "--timeout", "1", "status"});
  ::close(waiting);
  ::close(listener);
  EXPECT_EQ(r.status, 69) << r.err;
  EXPECT_NE(r.err.find("takes no new connections"), std::string::npos) << r.err;
}

// `kortti tls connect`: a tunnel the server resets after its answer (it
// closed without reading what kortti sent) gives the answer, then exit 1
// with a message; it used to end 0, as if all had gone well.
TEST_F(CliPeer, ATunnelThatBreaksExitsOneAfterPassingOnWhatCame) {
  const fs::path tunnel = dir_.path() / "tunnel.sock";
  const int listener = listen_unix(tunnel);
  std::thread server([listener] {
    const int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    pollfd p{conn, POLLIN, 0};
    (void)::poll(&p, 1, 10000);  // kortti's input is queued here, unread
    const std::string answer = "HTTP/1.0 400 Bad Request\r\n\r\n";
    (void)!::write(conn, answer.data(), answer.size());
    ::close(conn);  // with input unread: a reset
  });
  const std::string upstreams =
      R"({"jsonrpc":"2.0","id":ID,"result":[{"name":"sso","listen":")" + tunnel.string() + R"("}]})";
  const auto r = kortti({{"tls.upstreams", upstreams}}, {"tls", "connect", "sso"}, std::string(4096, 'x'));
  server.join();
  ::close(listener);
  EXPECT_NE(r.out.find("400 Bad Request"), std::string::npos) << r.out;
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("broke"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kortti::test
