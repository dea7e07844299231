// kortti-webeid, the Web eID extension's native messaging host, as a browser
// drives it: a child process with the frames on its standard input and
// output, against korttid over SoftHSM2 with the pinentry test double
// answering korttid's PIN dialog. Tokens are checked by the Web eID rule and
// signatures by the openssl CLI, never by korttid's own code.

#include <algorithm>
#include <cstring>
#include <fstream>

#include "tests/integration/softhsm_fixture.hpp"

namespace kortti::test {
namespace {

constexpr const char* kOrigin = "https://ehr.example.fi";

// One native message: a 32-bit length in this machine's byte order, the text.
std::string frame_text(const std::string& text) {
  const auto length = static_cast<std::uint32_t>(text.size());
  std::string out(sizeof length, '\0');
  std::memcpy(out.data(), &length, sizeof length);
  return out + text;
}

std::string frame(const Json& message) { return frame_text(to_std(message.dump())); }

// The messages in a host's output, in order; throws on a torn frame.
std::vector<Json> messages(const std::string& out) {
  std::vector<Json> list;
  for (std::size_t at = 0; at < out.size();) {
    std::uint32_t length = 0;
    if (out.size() - at < sizeof length) throw std::runtime_error("a torn length");
    std::memcpy(&length, out.data() + at, sizeof length);
    at += sizeof length;
    if (out.size() - at < length) throw std::runtime_error("a torn message");
    list.push_back(Json::parse(out.substr(at, length)));
    at += length;
  }
  return list;
}

class WebEid : public SoftHsmDaemonTest {
 protected:
  void SetUp() override {
    DaemonOptions o;
    dialogs_.use_in(o);
    start(std::move(o));
    dialogs_.answer({"pin:" + std::string(kPin)});
  }

  // Runs the host with `input` as the browser's side of the pipe; its
  // messages, the version announcement first.
  struct Exchange {
    int status = -1;
    std::vector<Json> messages;
    std::string err;
  };
  Exchange host(const std::string& input) {
    const CommandResult r = run({webeid_binary().string()}, {{"KORTTI_SOCKET", daemon_->socket()}}, input);
    return {r.status, messages(r.out), r.err};
  }
  // One command; the answer after the version announcement.
  Json command(const std::string& name, const Json& arguments, int want_status = 0) {
    const Exchange e = host(frame(Json{{"command", wstr(name)}, {"arguments", arguments}}));
    EXPECT_EQ(e.status, want_status) << e.err;
    EXPECT_EQ(e.messages.size(), 2U) << e.err;
    return e.messages.size() == 2 ? e.messages[1] : Json();
  }
  static std::string error_code(const Json& answer) {
    return answer.contains("error") ? str(answer["error"]["code"]) : "(no error)";
  }

  Json first(const char* purpose) { return daemon_->connect()->call("certificates.list", {{"purpose", purpose}})[0]; }

  PinentryDouble dialogs_;
};

TEST_F(WebEid, TheHostAnnouncesItsVersionFirstAndQuitEndsIt) {
  const Exchange e = host(frame(Json{{"command", "quit"}, {"arguments", Json::object()}}));
  EXPECT_EQ(e.status, 0) << e.err;
  ASSERT_EQ(e.messages.size(), 2U);
  const std::string version = str(e.messages[0]["version"]);
  EXPECT_EQ(version.rfind("2.", 0), 0U) << "the Web eID extension compares the major number: " << version;
  EXPECT_NE(version.find("+kortti."), std::string::npos) << version;
  EXPECT_EQ(e.messages[1], Json::object());
}

TEST_F(WebEid, AuthenticateMakesATokenTheWebEidRuleAcceptsWithThePinFromKorttidsDialog) {
  const std::string nonce = base64_encode(random_bytes(32));
  const Json token = command("authenticate", {{"challengeNonce", wstr(nonce)}, {"origin", kOrigin}, {"lang", "fi"}});
  ASSERT_FALSE(token.contains("error")) << token.dump();
  EXPECT_EQ(token["format"], "web-eid:1.0");
  EXPECT_EQ(token["unverifiedCertificate"], first("authentication")["der"]);
  EXPECT_TRUE(web_eid_rule_holds(token, kOrigin, nonce)) << token.dump();
  EXPECT_FALSE(web_eid_rule_holds(token, "https://evil.example", nonce));
  // The PIN was asked by korttid, in a dialog that names the page.
  EXPECT_NE(dialogs_.dialog(1).find(kOrigin), std::string::npos) << dialogs_.dialog(1);
  const auto lines = outcomes(daemon_->audit());
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_EQ(lines[0]["action"], "auth.token");
  EXPECT_EQ(lines[0]["origin"], kOrigin);
  EXPECT_EQ(lines[0]["client"], "kortti-webeid");
  EXPECT_EQ(read_file(daemon_->dir() / "korttid.log").find(kPin), std::string::npos);
}

TEST_F(WebEid, TheSigningCertificateAndItsAlgorithms) {
  const Json cert = command("get-signing-certificate", {{"origin", kOrigin}});
  ASSERT_FALSE(cert.contains("error")) << cert.dump();
  const Json card_cert = first("signature");
  EXPECT_EQ(cert["certificate"], card_cert["der"]);
  const bool ec = card_cert["key_type"] == "ec";
  const auto& algorithms = cert["supportedSignatureAlgorithms"];
  ASSERT_EQ(algorithms.size(), 3U);
  for (const Json& a : algorithms) {
    EXPECT_EQ(a["cryptoAlgorithm"], ec ? "ECC" : "RSA");
    EXPECT_EQ(a["paddingScheme"], ec ? "NONE" : "PKCS1.5");
  }
  // The certificate names the user: korttid asked first, naming the page.
  EXPECT_NE(dialogs_.dialog(1).find("CONFIRM"), std::string::npos) << dialogs_.dialog(1);
  EXPECT_NE(dialogs_.dialog(1).find(kOrigin), std::string::npos) << dialogs_.dialog(1);
  EXPECT_NE(dialogs_.dialog(1).find("signature certificate"), std::string::npos) << dialogs_.dialog(1);
  EXPECT_EQ(dialogs_.dialog(1).find("GETPIN"), std::string::npos) << "no PIN for a certificate";
}

// certificates.share itself, as any socket client reaches it.
TEST_F(WebEid, SharingACertificateNeedsAPageAndAPurpose) {
  auto c = daemon_->connect();
  EXPECT_EQ(rpc_error([&] { c->call("certificates.share", {{"purpose", "signature"}}); }).code(), -32602);
  EXPECT_EQ(rpc_error([&] {
              c->call("certificates.share", {{"purpose", "signature"}, {"origin", "http://ehr.example.fi"}});
            }).code(),
            -32602);
  EXPECT_EQ(rpc_error([&] {
              c->call("certificates.share", {{"purpose", "both"}, {"origin", kOrigin}});
            }).code(),
            -32602);
  EXPECT_FALSE(dialogs_.any_shown());
  const Json auth = c->call("certificates.share", {{"purpose", "authentication"}, {"origin", kOrigin}});
  EXPECT_NE(std::find(auth["purposes"].begin(), auth["purposes"].end(), Json("authentication")),
            auth["purposes"].end());
  EXPECT_NE(dialogs_.dialog(1).find("authentication certificate"), std::string::npos) << dialogs_.dialog(1);
}

TEST_F(WebEid, ThePageGetsNoCertificateTheUserDenies) {
  dialogs_.answer({"cancel"});
  const Json cert = command("get-signing-certificate", {{"origin", kOrigin}}, 1);
  EXPECT_EQ(error_code(cert), "ERR_WEBEID_USER_CANCELLED") << cert.dump();
  EXPECT_FALSE(cert.contains("certificate"));
}

// Each card's signature certificate, named by the page: RSA PKCS#1 v1.5
// and ECDSA P-384 as r||s, each checked by openssl against the certificate
// named, with korttid's dialog and audit line naming the page.
TEST_F(WebEid, SignUsesTheCertificateThePageNamesAndOpensslVerifiesIt) {
  dialogs_.answer({"pin:" + std::string(kPin), "pin:" + std::string(kPin)});
  auto c = daemon_->connect();
  const std::vector<std::string> certs = {rsa_sign_cert(), ec_sign_cert()};
  int dialogs = 0;
  for (const std::string& cert_id : certs) {
    SCOPED_TRACE(cert_id);
    Json card_cert;
    for (const Json& cert : c->call("certificates.list", {{"purpose", "signature"}}))
      if (str(cert["cert_id"]) == cert_id) card_cert = cert;
    ASSERT_TRUE(card_cert.is_object());
    const bool ec = card_cert["key_type"] == "ec";
    const Bytes hash = random_bytes(48);
    const Json s = command("sign", {{"hash", wstr(base64_encode(hash))},
                                    {"hashFunction", "SHA-384"},
                                    {"certificate", card_cert["der"]},
                                    {"origin", kOrigin}});
    ASSERT_FALSE(s.contains("error")) << s.dump();
    EXPECT_EQ(s["signatureAlgorithm"]["hashFunction"], "SHA-384");
    EXPECT_EQ(s["signatureAlgorithm"]["cryptoAlgorithm"], ec ? "ECC" : "RSA");
    EXPECT_EQ(s["signatureAlgorithm"]["paddingScheme"], ec ? "NONE" : "PKCS1.5");
    Bytes signature = b64(s["signature"]);
    if (ec) {
      EXPECT_EQ(signature.size(), 96U) << "r||s of P-384, as Web eID has ECDSA";
      signature = ecdsa_raw_as_der(signature);
    }
    EXPECT_TRUE(openssl_verify_digest(b64(card_cert["der"]), hash, signature, "sha384", ec ? "ecdsa" : "pkcs1"));
    ++dialogs;
    EXPECT_NE(dialogs_.dialog(dialogs).find(kOrigin), std::string::npos) << dialogs_.dialog(dialogs);
  }
  const auto lines = outcomes(daemon_->audit());
  ASSERT_EQ(lines.size(), certs.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["action"], "sign.digest");
    EXPECT_EQ(lines[i]["cert_id"], wstr(certs[i]));
    EXPECT_EQ(lines[i]["origin"], kOrigin);
    EXPECT_EQ(lines[i]["outcome"], "ok");
  }
}

// korttid holds any client to the origin rule.
TEST_F(WebEid, KorttidRefusesASignatureForAMalformedOrigin) {
  auto c = daemon_->connect();
  Json params = {{"cert_id", wstr(rsa_sign_cert())},
                 {"digest_algorithm", "sha256"},
                 {"digest", wstr(base64_encode(random_bytes(32)))},
                 {"pin", kPin},
                 {"origin", "https://a.fi/path"}};
  EXPECT_EQ(rpc_error([&] { c->call("sign.digest", params); }).code(), -32602);
  EXPECT_TRUE(outcomes(daemon_->audit()).empty());
}

TEST_F(WebEid, CancellingKorttidsDialogIsUserCancelledAndTheCardIsNotAsked) {
  dialogs_.answer({"cancel"});
  const Json a =
      command("authenticate", {{"challengeNonce", wstr(base64_encode(random_bytes(32)))}, {"origin", kOrigin}}, 1);
  EXPECT_EQ(error_code(a), "ERR_WEBEID_USER_CANCELLED") << a.dump();
  EXPECT_TRUE(outcomes(daemon_->audit()).empty()) << "no try at the card";
}

TEST_F(WebEid, BadCommandsAreFatalErrorsThatSayWhyAndReachNoCard) {
  const std::string nonce = base64_encode(random_bytes(32));
  const Bytes hash = random_bytes(32);
  const Json cert = first("signature")["der"];
  struct Case {
    const char* why;
    std::string name;
    Json arguments;
    const char* says;
  };
  const std::vector<Case> cases = {
      {"unknown command", "status", Json::object(), "not supported"},
      {"origin with a path",
       "authenticate",
       {{"challengeNonce", wstr(nonce)}, {"origin", "https://a.fi/x"}},
       "nothing after the host"},
      {"plain http", "get-signing-certificate", {{"origin", "http://a.fi"}}, "must be https://"},
      {"short nonce", "authenticate", {{"challengeNonce", "abc"}, {"origin", kOrigin}}, "44 to 128"},
      {"extra argument", "get-signing-certificate", {{"origin", kOrigin}, {"x", "1"}}, "unexpected argument 'x'"},
      {"missing argument", "sign", {{"origin", kOrigin}}, "argument 'hash'"},
      {"SHA-224",
       "sign",
       {{"hash", wstr(base64_encode(random_bytes(28)))},
        {"hashFunction", "SHA-224"},
        {"certificate", cert},
        {"origin", kOrigin}},
       "SHA-224"},
      {"hash of the wrong length",
       "sign",
       {{"hash", wstr(base64_encode(hash))}, {"hashFunction", "SHA-384"}, {"certificate", cert}, {"origin", kOrigin}},
       "48 bytes"},
      // The authentication certificate: the signature key's only.
      {"a certificate no card signs with",
       "sign",
       {{"hash", wstr(base64_encode(hash))},
        {"hashFunction", "SHA-256"},
        {"certificate", first("authentication")["der"]},
        {"origin", kOrigin}},
       "no card present holds"},
  };
  ASSERT_EQ(cases.size(), 9U);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.why);
    const Json a = command(c.name, c.arguments, 1);
    EXPECT_EQ(error_code(a), "ERR_WEBEID_NATIVE_FATAL") << a.dump();
    EXPECT_NE(str(a["error"]["message"]).find(c.says), std::string::npos) << a.dump();
  }
  EXPECT_TRUE(outcomes(daemon_->audit()).empty()) << "nothing reached a card";
  EXPECT_FALSE(dialogs_.any_shown()) << "no PIN dialog was shown";
}

// The frame itself: a browser's pipe may hand the bytes over in pieces; a
// length out of bounds, a torn message, text that is not a JSON object and
// an empty input are each answered with a fatal error after the version.
TEST_F(WebEid, FramesArriveInPiecesAndBadFramesAreAnsweredNotCrashedOn) {
  TempDir pieces;
  const std::string whole = frame(Json{{"command", "quit"}, {"arguments", Json::object()}});
  write_file(pieces / "1", whole.substr(0, 2));
  write_file(pieces / "2", whole.substr(2, 5));
  write_file(pieces / "3", whole.substr(7));
  const CommandResult in_pieces =
      run({"sh", "-c",
           "cd '" + pieces.path().string() + "' && { cat 1; sleep 0.2; cat 2; sleep 0.2; cat 3; } | '" +
               webeid_binary().string() + "'"},
          {{"KORTTI_SOCKET", daemon_->socket()}});
  EXPECT_EQ(in_pieces.status, 0) << in_pieces.err;
  const auto pieced = messages(in_pieces.out);
  ASSERT_EQ(pieced.size(), 2U);
  EXPECT_EQ(pieced[1], Json::object());

  std::string too_long(4, '\0');
  const std::uint32_t big = 8193;
  std::memcpy(too_long.data(), &big, sizeof big);
  struct Bad {
    const char* why;
    std::string input;
    const char* says;
  };
  const std::vector<Bad> bad = {
      {"over 8192 bytes", too_long + std::string(8193, ' '), "8193 bytes"},
      {"under 5 bytes", frame_text("{}"), "2 bytes"},
      {"torn", frame_text(std::string(100, ' ')).substr(0, 50), "fewer bytes"},
      {"not JSON", frame_text("{\"command\": quit}"), "not a JSON object"},
      {"a JSON array", frame_text("[1, 2, 3]"), "not a JSON object"},
      {"not UTF-8", frame_text("{\"command\":\"\xff\xfe\"}"), "not a JSON object"},
      {"nothing at all", "", "before sending a command"},
  };
  ASSERT_EQ(bad.size(), 7U);
  for (const auto& b : bad) {
    SCOPED_TRACE(b.why);
    const Exchange e = host(b.input);
    EXPECT_EQ(e.status, 1) << e.err;
    ASSERT_EQ(e.messages.size(), 2U) << e.err;
    EXPECT_TRUE(e.messages[0].contains("version"));
    EXPECT_EQ(error_code(e.messages[1]), "ERR_WEBEID_NATIVE_FATAL");
    EXPECT_NE(str(e.messages[1]["error"]["message"]).find(b.says), std::string::npos) << e.messages[1].dump();
    EXPECT_NE(e.err.find("ERR_WEBEID_NATIVE_FATAL"), std::string::npos) << "logged to stderr: " << e.err;
  }
}

TEST_F(WebEid, WithoutKorttidTheBrowserHearsWhy) {
  const CommandResult r =
      run({webeid_binary().string()}, {{"KORTTI_SOCKET", (dialogs_.dir() / "none.sock").string()}},
          frame(Json{{"command", "get-signing-certificate"}, {"arguments", {{"origin", kOrigin}}}}));
  EXPECT_EQ(r.status, 1);
  const auto m = messages(r.out);
  ASSERT_EQ(m.size(), 2U);
  EXPECT_EQ(error_code(m[1]), "ERR_WEBEID_NATIVE_FATAL");
  EXPECT_NE(str(m[1]["error"]["message"]).find("not reachable"), std::string::npos) << m[1].dump();
  // The extension's status check (the version, then quit) needs no korttid,
  // and a malformed command is refused for what it is.
  const CommandResult quit =
      run({webeid_binary().string()}, {{"KORTTI_SOCKET", (dialogs_.dir() / "none.sock").string()}},
          frame(Json{{"command", "quit"}, {"arguments", Json::object()}}));
  EXPECT_EQ(quit.status, 0) << quit.err;
  const auto q = messages(quit.out);
  ASSERT_EQ(q.size(), 2U);
  EXPECT_EQ(q[1], Json::object());
  const CommandResult bad =
      run({webeid_binary().string()}, {{"KORTTI_SOCKET", (dialogs_.dir() / "none.sock").string()}},
          frame(Json{{"command", "get-signing-certificate"}, {"arguments", Json::object()}}));
  const auto b = messages(bad.out);
  ASSERT_EQ(b.size(), 2U);
  EXPECT_NE(str(b[1]["error"]["message"]).find("argument 'origin'"), std::string::npos) << b[1].dump();
}

// A card whose one key both logs in and signs (keyUsage digitalSignature and
// nonRepudiation): were `sign` to use it, any page could have it sign
// hash(hash(origin) || hash(nonce)) for another site, a login token the
// user never meant. It is not a signing certificate here.
TEST(WebEidDualPurpose, AKeyThatAlsoLogsInIsNeverUsedToSignAPagesHash) {
  TempDir dir;
  SoftHsm hsm(dir.path());
  hsm.add_token("cardD", {"physician/both"});
  DaemonOptions o;
  o.env["SOFTHSM2_CONF"] = hsm.conf().string();
  o.revocation = "ocsp = false\ncrl = false\n";
  Daemon d(std::move(o));
  const Json certs = d.connect()->call("certificates.list");
  ASSERT_EQ(certs.size(), 1U);
  const Json& purposes = certs[0]["purposes"];
  ASSERT_EQ(purposes.size(), 2U) << certs[0].dump();
  EXPECT_NE(std::find(purposes.begin(), purposes.end(), Json("signature")), purposes.end());
  EXPECT_NE(std::find(purposes.begin(), purposes.end(), Json("authentication")), purposes.end());
  auto ask = [&](const Json& request) {
    const CommandResult r = run({webeid_binary().string()}, {{"KORTTI_SOCKET", d.socket()}}, frame(request));
    const auto m = messages(r.out);
    return m.size() == 2 ? m[1] : Json();
  };
  const Json cert = ask({{"command", "get-signing-certificate"}, {"arguments", {{"origin", kOrigin}}}});
  EXPECT_EQ(cert["error"]["code"], "ERR_WEBEID_NATIVE_FATAL") << cert.dump();
  EXPECT_NE(str(cert["error"]["message"]).find("a key that signs only"), std::string::npos) << cert.dump();
  const Json s = ask({{"command", "sign"},
                      {"arguments",
                       {{"hash", wstr(base64_encode(random_bytes(32)))},
                        {"hashFunction", "SHA-256"},
                        {"certificate", certs[0]["der"]},
                        {"origin", kOrigin}}}});
  EXPECT_EQ(s["error"]["code"], "ERR_WEBEID_NATIVE_FATAL") << s.dump();
  EXPECT_TRUE(outcomes(d.audit()).empty()) << "the card was never asked";
}

// Such a key listed first (a token lists its certificates in the order of
// their ids), a login-only key after it: `authenticate` takes the one
// auth.token accepts, not the first listed.
TEST(WebEidDualPurpose, AuthenticatePassesByAKeyThatAlsoSigns) {
  TempDir dir;
  SoftHsm hsm(dir.path());
  hsm.add_token("cardD", {"physician/both", "nurse/auth"});
  PinentryDouble dialogs;
  DaemonOptions o;
  o.env["SOFTHSM2_CONF"] = hsm.conf().string();
  o.revocation = "ocsp = false\ncrl = false\n";
  dialogs.use_in(o);
  Daemon d(std::move(o));
  dialogs.answer({"pin:" + std::string(kPin)});
  const Json listed = d.connect()->call("certificates.list", {{"purpose", "authentication"}});
  ASSERT_EQ(listed.size(), 2U) << listed.dump();
  const auto login_only = std::find_if(listed.begin(), listed.end(),
                                       [](const Json& c) { return c["purposes"] == Json::array({"authentication"}); });
  ASSERT_NE(login_only, listed.end()) << listed.dump();
  ASSERT_NE(listed[0]["der"], (*login_only)["der"]) << "the key that also signs must be listed first";
  const std::string nonce = base64_encode(random_bytes(32));
  const CommandResult r = run(
      {webeid_binary().string()}, {{"KORTTI_SOCKET", d.socket()}},
      frame(Json{{"command", "authenticate"}, {"arguments", {{"challengeNonce", wstr(nonce)}, {"origin", kOrigin}}}}));
  const auto m = messages(r.out);
  ASSERT_EQ(m.size(), 2U) << r.err;
  ASSERT_FALSE(m[1].contains("error")) << m[1].dump();
  EXPECT_EQ(m[1]["unverifiedCertificate"], (*login_only)["der"]);
  EXPECT_TRUE(web_eid_rule_holds(m[1], kOrigin, nonce)) << m[1].dump();
}

// The host against a korttid double that answers what no korttid sends:
// the page must get only what Web eID defines, and the host must answer
// every time, never crash.
class WebEidPeer : public ::testing::Test {
 protected:
  struct Answer {
    int status = -1;
    Json message;  // the one after the version
    std::string err;
  };
  Answer host(const std::map<std::string, std::string>& answers, const std::string& name, const Json& arguments) {
    const fs::path socket = dir_.path() / "korttid.sock";
    CommandResult r;
    {
      const ScriptedKorttid korttid(socket, answers);
      r = run({webeid_binary().string()}, {{"KORTTI_SOCKET", socket.string()}},
              frame(Json{{"command", wstr(name)}, {"arguments", arguments}}));
    }
    fs::remove(socket);
    const std::vector<Json> m = messages(r.out);
    EXPECT_EQ(m.size(), 2U) << r.err;
    return {r.status, m.size() == 2 ? m[1] : Json(), r.err};
  }
  static std::string listed(const char* purpose, const std::string& der) {
    return R"({"jsonrpc":"2.0","id":ID,"result":[{"cert_id":"t/01","key_type":"rsa","purposes":[")" +
           std::string(purpose) + R"("],"der":")" + der + R"("}]})";
  }
  TempDir dir_;
};

TEST_F(WebEidPeer, ATokenIsPassedOnWithItsFiveMembersOnlyAndAMalformedOneIsAFatalError) {
  const Json args{{"challengeNonce", wstr(std::string(44, 'n'))}, {"origin", kOrigin}};
  const std::string list = listed("authentication", "MIIB");
  const std::string good = R"({"unverifiedCertificate":"MIIB","algorithm":"RS256","signature":"c2ln",)"
                           R"("format":"web-eid:1.0","appVersion":"https://kortti"})";
  // An "error" member in korttid's token is not the host's failure (it ended
  // the host with std::terminate, the browser getting no answer).
  for (const std::string& token : {std::string(R"({"error":1})"), std::string(R"({"error":{"code":7}})"),
                                   good.substr(0, good.size() - 1) + R"(,"error":{"code":"X","message":"Y"}})"}) {
    const bool whole = token.find("unverifiedCertificate") != std::string::npos;
    const Answer a = host(
        {{"certificates.list", list}, {"auth.token", R"({"jsonrpc":"2.0","id":ID,"result":{"token":)" + token + "}}"}},
        "authenticate", args);
    EXPECT_EQ(a.status, whole ? 0 : 1) << token << " " << a.err;
    EXPECT_EQ(a.err.find("terminate"), std::string::npos) << a.err;
    if (whole) {
      EXPECT_EQ(a.message, Json::parse(good)) << a.message.dump();
    } else {
      EXPECT_EQ(a.message["error"]["code"], "ERR_WEBEID_NATIVE_FATAL") << a.message.dump();
      EXPECT_NE(str(a.message["error"]["message"]).find("korttid's token has no 'unverifiedCertificate'"),
                std::string::npos)
          << a.message.dump();
    }
  }
}

TEST_F(WebEidPeer, ASignatureKorttidDidNotGiveIsAFatalErrorNotAnEmptySignature) {
  const std::string der = base64_encode(Bytes(300, 0x30));
  const Json args{{"hash", wstr(base64_encode(Bytes(32, 1)))},
                  {"hashFunction", "SHA-256"},
                  {"certificate", wstr(der)},
                  {"origin", kOrigin}};
  for (const char* result : {"{}", R"({"signature":""})", R"({"signature":7})", R"({"signature":"%%"})"}) {
    const Answer a = host({{"certificates.list", listed("signature", der)},
                           {"sign.digest", R"({"jsonrpc":"2.0","id":ID,"result":)" + std::string(result) + "}"}},
                          "sign", args);
    EXPECT_EQ(a.status, 1) << result << " " << a.message.dump();
    EXPECT_EQ(a.message["error"]["code"], "ERR_WEBEID_NATIVE_FATAL") << a.message.dump();
    const std::string says = str(a.message["error"]["message"]);
    EXPECT_TRUE(says.find("korttid's answer has no 'signature'") != std::string::npos ||
                says.find("korttid's signature is not base64") != std::string::npos)
        << result << ": " << says;
  }
}

TEST_F(WebEidPeer, AnAnswerTooLongForTheBrowserIsAnsweredWithAnErrorThatSaysSo) {
  const std::string der = std::string(1100 * 1024, 'A');
  const Answer a =
      host({{"certificates.share", R"({"jsonrpc":"2.0","id":ID,"result":{"key_type":"rsa","der":")" + der + R"("}})"}},
           "get-signing-certificate", {{"origin", kOrigin}});
  EXPECT_EQ(a.status, 1) << a.err;
  EXPECT_EQ(a.message["error"]["code"], "ERR_WEBEID_NATIVE_FATAL") << a.err;
  EXPECT_NE(str(a.message["error"]["message"]).find("more than a browser reads"), std::string::npos)
      << a.message.dump();
}

// Every command that reaches korttid needs a dialog in the user's session,
// which only the user's own korttid shows: the system socket is never asked.
TEST(WebEidSocket, WithoutItsUsersKorttidTheHostSaysSoAndNeverAsksTheSystemOne) {
  const TempDir runtime;
  const std::string command = frame(Json{{"command", "get-signing-certificate"}, {"arguments", {{"origin", kOrigin}}}});
  const CommandResult unset =
      run({webeid_binary().string()}, {{"KORTTI_SOCKET", ""}, {"XDG_RUNTIME_DIR", ""}}, command);
  EXPECT_EQ(unset.status, 1);
  EXPECT_NE(unset.err.find("XDG_RUNTIME_DIR is not set"), std::string::npos) << unset.err;
  const CommandResult absent =
      run({webeid_binary().string()}, {{"KORTTI_SOCKET", ""}, {"XDG_RUNTIME_DIR", runtime.path().string()}}, command);
  EXPECT_EQ(absent.status, 1);
  const auto m = messages(absent.out);
  ASSERT_EQ(m.size(), 2U) << absent.err;
  const std::string says = str(m[1]["error"]["message"]);
  EXPECT_NE(says.find((runtime.path() / "korttid/korttid.sock").string()), std::string::npos) << says;
  EXPECT_NE(says.find("korttid-user"), std::string::npos) << says;
  EXPECT_EQ(says.find("/run/korttid"), std::string::npos) << says;
}

TEST(WebEidHelp, HelpNamesTheCommandsAndVersionBothVersions) {
  const CommandResult help = run({webeid_binary().string(), "--help"});
  EXPECT_EQ(help.status, 0);
  for (const char* word : {"authenticate", "get-signing-certificate", "sign", "eu.webeid", "pin_prompt"})
    EXPECT_NE(help.out.find(word), std::string::npos) << word;
  const CommandResult version = run({webeid_binary().string(), "--version"});
  EXPECT_EQ(version.status, 0);
  EXPECT_NE(version.out.find("Web eID 2."), std::string::npos) << version.out;
}

}  // namespace
}  // namespace kortti::test
