// Every malformed request gets its protocol.md error, and the daemon keeps
// serving everyone else.

#include <sys/socket.h>

#include <thread>

#include "tests/integration/softhsm_fixture.hpp"

namespace kortti::test {
namespace {

class BadInput : public SoftHsmDaemonTest {
 protected:
  void SetUp() override {
    DaemonOptions o;
    o.ipc = "max_message_bytes = 65536\n";
    start(std::move(o));
    bystander_ = daemon_->connect();
    bystander_->call("system.hello", {{"client", "bystander"}});
  }

  // After each bad request: the daemon runs and another client is served.
  void expect_daemon_fine() {
    ASSERT_TRUE(daemon_->running());
    EXPECT_EQ(bystander_->call("system.hello")["daemon"], "korttid");
  }

  // Sends one raw line and returns the single answer.
  Json raw(client::Client& c, const std::string& line) {
    c.send_raw(line + "\n");
    auto answer = c.receive(std::chrono::seconds(10));
    EXPECT_TRUE(answer.has_value()) << line;
    return answer.value_or(Json());
  }

  Json sign_params() {
    return {{"cert_id", wstr(rsa_sign_cert())},
            {"digest_algorithm", "sha256"},
            {"digest", wstr(base64_encode(random_bytes(32)))},
            {"pin", kPin}};
  }

  int code_for(Json params, const std::string& method = "sign.digest") {
    auto c = daemon_->connect();
    return rpc_error([&] { c->call(method, std::move(params)); }).code();
  }

  std::unique_ptr<client::Client> bystander_;
};

TEST_F(BadInput, NotJsonIsParseErrorAndTheConnectionStaysUsable) {
  auto c = daemon_->connect();
  const Json a = raw(*c, "{\"jsonrpc\": \"2.0\", oops");
  EXPECT_EQ(a["error"]["code"], -32700);
  EXPECT_EQ(a["error"]["data"]["reason"], "parse_error");
  EXPECT_TRUE(a["id"].is_null());
  EXPECT_EQ(c->call("system.hello")["protocol"], 1);
  expect_daemon_fine();
}

TEST_F(BadInput, InvalidUtf8IsParseError) {
  auto c = daemon_->connect();
  EXPECT_EQ(raw(*c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xc3\x28\"}")["error"]["code"], -32700);
  expect_daemon_fine();
}

TEST_F(BadInput, NotJsonRpcIsInvalidRequest) {
  auto c = daemon_->connect();
  for (const char* line :
       {"[1,2,3]", "\"hello\"", R"({"id":1,"method":"system.hello"})", R"({"jsonrpc":"2.0","method":"system.hello"})",
        R"({"jsonrpc":"2.0","id":true,"method":"x"})",
        R"({"jsonrpc":"2.0","id":1,"method":"system.hello","params":[1]})"}) {
    const Json a = raw(*c, line);
    EXPECT_EQ(a["error"]["code"], -32600) << line;
    EXPECT_EQ(a["error"]["data"]["reason"], "invalid_request") << line;
  }
  expect_daemon_fine();
}

TEST_F(BadInput, OverSizeMessageIsRefusedAndTheConnectionClosed) {
  auto c = daemon_->connect();
  // 70 KiB without a newline: refused before the message even ends.
  const std::string big =
      R"({"jsonrpc":"2.0","id":1,"method":"system.hello","params":{"x":")" + std::string(70000, 'a');
  c->send_raw(big);
  auto a = c->receive(std::chrono::seconds(10));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ((*a)["error"]["code"], -32600);
  EXPECT_NE(str((*a)["error"]["message"]).find("65536"), std::string::npos);
  EXPECT_THROW(c->receive(std::chrono::seconds(10)), std::runtime_error) << "connection should be closed";
  expect_daemon_fine();
}

// A client that writes a message far over the limit in one go must still
// read why: korttid answers, then reads and drops the rest for a moment
// before it closes. It used to close at once: the client's write failed
// (EPIPE) before it could read the answer.
TEST_F(BadInput, AClientStillWritingAnOverSizeMessageCanFinishAndReadWhy) {
  auto c = daemon_->connect();
  const std::string big =
      R"({"jsonrpc":"2.0","id":1,"method":"system.hello","params":{"x":")" + std::string(4 << 20, 'a') + "\"}}\n";
  ASSERT_NO_THROW(c->send_raw(big));
  auto a = c->receive(std::chrono::seconds(10));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ((*a)["error"]["code"], -32600);
  EXPECT_THROW(c->receive(std::chrono::seconds(10)), std::runtime_error) << "connection should be closed";
  expect_daemon_fine();
}

// Attachments (protocol.md): raw bytes after a request line.
std::string attached(const std::string& line_without_brace, std::size_t bytes) {
  return line_without_brace + R"(,"attachment":{"name":"client","bytes":)" + std::to_string(bytes) + "}}\n";
}

TEST_F(BadInput, AnAttachmentMayArriveInPiecesAndBePipelined) {
  auto c = daemon_->connect();
  const Json capabilities = c->call("system.hello")["capabilities"];
  EXPECT_NE(std::find(capabilities.begin(), capabilities.end(), "attachments"), capabilities.end());
  // Raw bytes: quotes and backslashes need no escaping (system.hello refuses
  // control characters in a name, so no newline here).
  const std::string name = "a client name with \"quotes\" and a \\ sent raw";
  c->send_raw(attached(R"({"jsonrpc":"2.0","id":1,"method":"system.hello","params":{})", name.size()));
  c->send_raw(name.substr(0, 9));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // The rest, and the next request in the same write.
  c->send_raw(name.substr(9) + R"({"jsonrpc":"2.0","id":2,"method":"system.hello"})" + "\n");
  for (int id : {1, 2}) {
    auto a = c->receive(std::chrono::seconds(10));
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ((*a)["id"], id);
    EXPECT_EQ((*a)["result"]["daemon"], "korttid");
    EXPECT_FALSE(a->contains("attachment")) << "the result has no \"client\" member to send back";
  }
  expect_daemon_fine();
}

TEST_F(BadInput, AnInvalidRequestWithAnAttachmentIsAnsweredAndItsBytesSkipped) {
  auto c = daemon_->connect();
  const std::string bytes = R"({"jsonrpc":"2.0","id":66,"method":"system.hello"})";  // must not run
  c->send_raw(attached(R"({"jsonrpc":"1.0","id":5,"method":"system.hello")", bytes.size()) + bytes);
  auto a = c->receive(std::chrono::seconds(10));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ((*a)["id"], 5);
  EXPECT_EQ((*a)["error"]["code"], -32600);
  c->send_raw(attached(R"({"jsonrpc":"2.0","id":6,"method":"system.hello","params":{"client":"x"})", 3) + "abc");
  a = c->receive(std::chrono::seconds(10));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ((*a)["id"], 6);
  EXPECT_EQ((*a)["error"]["code"], -32600);
  EXPECT_NE(str((*a)["error"]["message"]).find("attachment"), std::string::npos);
  EXPECT_EQ(c->call("system.hello")["daemon"], "korttid") << "the connection carries on";
  EXPECT_FALSE(c->receive(std::chrono::milliseconds(300)).has_value()) << "the skipped bytes were not a request";
  expect_daemon_fine();
}

TEST_F(BadInput, AnAttachmentThatCannotBeFramedClosesTheConnection) {
  for (const std::string header : {R"("attachment":{"name":"client","bytes":70000})",
                                   R"("attachment":{"name":"client","bytes":-3})", R"("attachment":"client")"}) {
    SCOPED_TRACE(header);
    auto c = daemon_->connect();
    c->send_raw(R"({"jsonrpc":"2.0","id":8,"method":"system.hello",)" + header + "}\n");
    auto a = c->receive(std::chrono::seconds(10));
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ((*a)["id"], 8);
    EXPECT_EQ((*a)["error"]["code"], -32600);
    EXPECT_THROW(c->receive(std::chrono::seconds(10)), std::runtime_error) << "connection should be closed";
  }
  expect_daemon_fine();
}

TEST_F(BadInput, MessageJustUnderTheLimitIsServed) {
  auto c = daemon_->connect();
  Json params = {{"client", wstr(std::string(60000, 'a'))}};
  EXPECT_EQ(c->call("system.hello", params)["daemon"], "korttid");
}

TEST_F(BadInput, UnknownMethodIsMethodNotFound) {
  EXPECT_EQ(code_for(Json::object(), "sign.everything"), -32601);
  expect_daemon_fine();
}

// An identifier a client made up goes no further than the parser: it used
// to reach the audit trail whole (two lines of up to 16 MiB each per
// sign.digest, written and synced), and any log line.
TEST_F(BadInput, IdentifiersAreCheckedBeforeAnythingIsLookedUpOrAudited) {
  const auto audited = fs::file_size(daemon_->audit_file());
  Json p = sign_params();
  p.erase("pin");
  p["cert_id"] = wstr(std::string(60 * 1000, 'a') + "/01");
  EXPECT_EQ(code_for(p), -32602);
  p["cert_id"] = wstr(rsa_sign_cert() + "\n{\"forged\": 1}");
  EXPECT_EQ(code_for(p), -32602);
  p["cert_id"] = "";
  EXPECT_EQ(code_for(p), -32602);
  EXPECT_EQ(code_for({{"token_id", wstr(std::string(600, 'x'))}}, "session.logout"), -32602);
  EXPECT_EQ(code_for({{"token_id", "a b"}}, "certificates.list"), -32602);
  EXPECT_EQ(fs::file_size(daemon_->audit_file()), audited);
  EXPECT_LT(daemon_->log().size(), 16 * 1024U);
  // What tokens.list gives still works.
  p = sign_params();
  EXPECT_FALSE(daemon_->connect()->call("sign.digest", p)["signature"].get<WipingString>().empty());
  expect_daemon_fine();
}

// A signature no card would take (no session and no PIN, a card not
// present, another uid's session) is answered before it is audited: a
// local user cannot fill the audit trail's disk, after which every
// signature is refused, with requests that never reach a card.
TEST_F(BadInput, ASignatureNoCardWouldTakeIsRefusedBeforeItIsAudited) {
  const auto audited = fs::file_size(daemon_->audit_file());
  Json p = sign_params();
  p.erase("pin");
  for (int i = 0; i < 10; ++i) EXPECT_EQ(code_for(p), 1010);
  Json items = Json::array();
  for (int i = 0; i < 50; ++i)
    items.push_back({{"method", "sign.digest"}, {"params", {{"digest_algorithm", "sha256"}, {"digest", p["digest"]}}}});
  EXPECT_EQ(code_for({{"cert_id", p["cert_id"]}, {"items", items}}, "sign.batch"), 1010);
  EXPECT_EQ(code_for({{"cert_id", wstr(rsa_auth_cert())},
                      {"origin", "https://sso.example.fi"},
                      {"challenge_nonce", wstr(base64_encode(random_bytes(33)))}},
                     "auth.token"),
            1010);
  Json absent = sign_params();
  absent["cert_id"] = "no-such-card/01";
  EXPECT_EQ(code_for(absent), 1002);
  EXPECT_EQ(fs::file_size(daemon_->audit_file()), audited);

  // The card holder's session: another uid is refused, even with the PIN.
  auto holder = daemon_->connect();
  holder->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}});
  const auto logged_in = fs::file_size(daemon_->audit_file());
  auto other = connect_as(daemon_->socket(), 4242, 4242);
  const auto e = rpc_error([&] { other->call("sign.digest", sign_params()); });
  EXPECT_EQ(e.code(), 1040) << e.what();
  EXPECT_EQ(fs::file_size(daemon_->audit_file()), logged_in);
  // The holder signs with the session's key without a PIN, audited as ever.
  p["cert_id"] = wstr(rsa_auth_cert());
  EXPECT_FALSE(holder->call("sign.digest", p)["signature"].get<WipingString>().empty());
  EXPECT_GT(fs::file_size(daemon_->audit_file()), logged_in);
  expect_daemon_fine();
}

// The same for sessions and PIN changes: what changes nothing, and what
// the card would refuse untried, leaves no audit line.
TEST_F(BadInput, ASessionRequestNoCardWouldTakeIsRefusedBeforeItIsAudited) {
  const auto card = wstr(token_ids_.at("cardA"));
  const auto audited = fs::file_size(daemon_->audit_file());
  EXPECT_EQ(code_for({{"token_id", "no-such-card"}}, "session.logout"), 1002);
  EXPECT_EQ(code_for({{"token_id", "no-such-card"}, {"pin", kPin}}, "session.login"), 1002);
  auto c = daemon_->connect();
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(c->call("session.logout", {{"token_id", card}})["logged_in"].get<bool>());
  // The token has no PIN pad: the module would refuse at once.
  Json pad = sign_params();
  pad.erase("pin");
  pad["pinpad"] = true;
  EXPECT_EQ(code_for(pad), 1050);
  EXPECT_EQ(code_for({{"token_id", card}, {"pinpad", true}}, "session.login"), 1050);
  EXPECT_EQ(fs::file_size(daemon_->audit_file()), audited);

  // Another uid's session: neither its login, its logout nor a PIN change.
  c->call("session.login", {{"token_id", card}, {"pin", kPin}});
  const auto logged_in = fs::file_size(daemon_->audit_file());
  auto other = connect_as(daemon_->socket(), 4242, 4242);
  EXPECT_EQ(rpc_error([&] { other->call("session.login", {{"token_id", card}, {"pin", kPin}}); }).code(), 1040);
  EXPECT_EQ(rpc_error([&] { other->call("session.logout", {{"token_id", card}}); }).code(), 1040);
  EXPECT_EQ(rpc_error([&] {
              other->call("pin.change", {{"token_id", card}, {"pin", kPin}, {"new_pin", "87654321"}});
            }).code(),
            1040);
  EXPECT_EQ(fs::file_size(daemon_->audit_file()), logged_in);
  // The owner's logout is a session change, with its line.
  EXPECT_FALSE(c->call("session.logout", {{"token_id", card}})["logged_in"].get<bool>());
  EXPECT_GT(fs::file_size(daemon_->audit_file()), logged_in);
  expect_daemon_fine();
}

TEST_F(BadInput, MissingAndIllTypedParamsAreInvalidParamsNamingTheParam) {
  auto c = daemon_->connect();
  Json p = sign_params();
  p.erase("cert_id");
  auto e = rpc_error([&] { c->call("sign.digest", p); });
  EXPECT_EQ(e.code(), -32602);
  EXPECT_EQ(e.reason(), "invalid_params");
  EXPECT_NE(std::string(e.what()).find("'cert_id'"), std::string::npos) << e.what();
  p = sign_params();
  p["cert_id"] = 42;
  EXPECT_EQ(rpc_error([&] { c->call("sign.digest", p); }).code(), -32602);
  p = sign_params();
  p["pin"] = 1234;
  EXPECT_EQ(rpc_error([&] { c->call("sign.digest", p); }).code(), -32602);
  p = sign_params();
  p["pinpad"] = "yes";
  EXPECT_EQ(rpc_error([&] { c->call("sign.digest", p); }).code(), -32602);
  p = sign_params();
  p["pinpad"] = true;
  EXPECT_EQ(rpc_error([&] { c->call("sign.digest", p); }).code(), -32602) << "pin and pinpad together";
  EXPECT_EQ(code_for({{"token_id", 5}}, "session.login"), -32602);
  EXPECT_EQ(code_for({{"topics", "card"}}, "events.subscribe"), -32602);
  EXPECT_EQ(code_for({{"topics", Json::array({"weather"})}}, "events.subscribe"), -32602);
  EXPECT_EQ(code_for({{"purpose", "encryption"}}, "certificates.list"), -32602);
  expect_daemon_fine();
}

TEST_F(BadInput, BadBase64IsInvalidParams) {
  for (const char* bad : {"not base64!", "YWJj\n", "YWJ", "YW==", "YWJj-_"}) {
    Json p = sign_params();
    p["digest"] = bad;
    auto c = daemon_->connect();
    auto e = rpc_error([&] { c->call("sign.digest", p); });
    EXPECT_EQ(e.code(), -32602) << bad;
    EXPECT_NE(std::string(e.what()).find("base64"), std::string::npos) << e.what();
  }
  expect_daemon_fine();
}

TEST_F(BadInput, UnknownAlgorithmsAndWrongDigestLengthsAreInvalidParams) {
  Json p = sign_params();
  p["digest_algorithm"] = "md5";
  EXPECT_EQ(code_for(p), -32602);
  p = sign_params();
  p["scheme"] = "rsa-raw";
  EXPECT_EQ(code_for(p), -32602);
  p = sign_params();
  p["digest_algorithm"] = "sha384";  // the digest is 32 bytes
  EXPECT_EQ(code_for(p), -32602);
  expect_daemon_fine();
}

TEST_F(BadInput, UnknownCertificatesAndTokens) {
  Json p = sign_params();
  p["cert_id"] = wstr(token_ids_.at("cardA") + "/ff");
  EXPECT_EQ(code_for(p), 1003);  // card present, no such certificate
  p["cert_id"] = "SoftHSM_project-0000000000000000/01";
  EXPECT_EQ(code_for(p), 1002);  // no such card
  p["cert_id"] = "no-slash";
  EXPECT_EQ(code_for(p), -32602);
  EXPECT_EQ(code_for({{"token_id", "nope"}, {"pin", kPin}}, "session.login"), 1002);
  EXPECT_EQ(code_for({{"token_id", "nope"}}, "certificates.list"), 1002);
  expect_daemon_fine();
}

TEST_F(BadInput, WrongPinIsPinIncorrect) {
  Json p = sign_params();
  p["pin"] = "123123";
  EXPECT_EQ(code_for(p), 1011);
  p["pin"] = std::string(65, '1');
  EXPECT_EQ(code_for(p), -32602);  // refused before the card sees it
  p["pin"] = "";
  EXPECT_EQ(code_for(p), -32602);
  expect_daemon_fine();
}

TEST_F(BadInput, MissingPinIsPinRequired) {
  Json p = sign_params();
  p.erase("pin");
  EXPECT_EQ(code_for(p), 1010);
  EXPECT_EQ(code_for({{"token_id", wstr(token_ids_.at("cardA"))}}, "session.login"), 1010);
}

TEST_F(BadInput, ClientDisconnectingMidRequestHarmsNoOne) {
  for (int round = 0; round < 3; ++round) {
    auto c = daemon_->connect();
    for (int i = 0; i < 20; ++i) c->send("sign.digest", sign_params());
    ::shutdown(c->fd(), SHUT_RDWR);
    c.reset();
  }
  expect_daemon_fine();
  auto c = daemon_->connect();
  auto [answer, digest] = sign_digest(*c, rsa_sign_cert(), "sha256");
  EXPECT_TRUE(openssl_verify_digest(b64(answer["certificate"]), digest, b64(answer["signature"]), "sha256", "pkcs1"));
}

TEST_F(BadInput, BlankLinesAreIgnored) {
  auto c = daemon_->connect();
  c->send_raw("\n\r\n   \n");
  EXPECT_EQ(c->call("system.hello")["daemon"], "korttid");
}

}  // namespace
}  // namespace kortti::test
