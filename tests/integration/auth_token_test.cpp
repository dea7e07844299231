// Web eID login tokens (auth.token, auth.verify) from SoftHSM2 authentication
// keys. Each token is checked by the Web eID rule written here with the
// openssl CLI — hash(origin) || hash(nonce), signed with the algorithm's
// hash, ECDSA as r||s — never by korttid's own code.

#include <fstream>

#include "tests/integration/softhsm_fixture.hpp"

namespace kortti::test {
namespace {

constexpr const char* kOrigin = "https://sso.example.fi";

class AuthToken : public SoftHsmDaemonTest {
 protected:
  std::string rsa_auth() { return cert_id("cardA", "02"); }
  std::string ec_auth() { return cert_id("cardB", "02"); }

  Json token(client::Client& c, const std::string& cert, const std::string& origin, const std::string& nonce,
             bool with_pin = true) {
    Json params = {{"cert_id", wstr(cert)}, {"origin", wstr(origin)}, {"challenge_nonce", wstr(nonce)}};
    if (with_pin) params["pin"] = kPin;
    return c.call("auth.token", params).at("token");
  }

  Json verify(client::Client& c, const Json& token, const std::string& origin, const std::string& nonce) {
    return c.call("auth.verify", {{"token", token}, {"origin", wstr(origin)}, {"challenge_nonce", wstr(nonce)}});
  }
};

std::string fresh_nonce() { return base64_encode(random_bytes(32)); }

TEST_F(AuthToken, RsaKeyMakesAPs256TokenThatTheWebEidRuleAccepts) {
  auto c = daemon_->connect();
  const std::string nonce = fresh_nonce();
  const Json t = token(*c, rsa_auth(), kOrigin, nonce);
  EXPECT_EQ(t["format"], "web-eid:1.0");
  EXPECT_EQ(t["algorithm"], "PS256") << "SoftHSM2 offers CKM_RSA_PKCS_PSS";
  EXPECT_EQ(str(t["appVersion"]).rfind("https://", 0), 0U);
  EXPECT_TRUE(web_eid_rule_holds(t, kOrigin, nonce));
  EXPECT_FALSE(web_eid_rule_holds(t, "https://evil.example", nonce));
  EXPECT_FALSE(web_eid_rule_holds(t, kOrigin, fresh_nonce()));
  const std::string serialized = to_std(t.dump());
  EXPECT_GE(serialized.size(), 100U);
  EXPECT_LE(serialized.size(), 10000U);
}

TEST_F(AuthToken, ATokenWithoutRsaPssMakesRs256) {
  start(shim_options("KORTTI_SHIM_NO_PSS", "1"));
  auto c = daemon_->connect();
  for (const auto& t : c->call("tokens.list")) EXPECT_EQ(t["rsa_pss"], false) << t.dump();
  const std::string nonce = fresh_nonce();
  const Json t = token(*c, rsa_auth(), kOrigin, nonce);
  EXPECT_EQ(t["algorithm"], "RS256");
  EXPECT_TRUE(web_eid_rule_holds(t, kOrigin, nonce));
  EXPECT_EQ(verify(*c, t, kOrigin, nonce)["valid"], true);
}

TEST_F(AuthToken, EcP384KeyMakesAnEs384TokenWithRawRAndS) {
  auto c = daemon_->connect();
  const std::string nonce = fresh_nonce();
  const Json t = token(*c, ec_auth(), "https://kanta.example.fi:8443", nonce);
  EXPECT_EQ(t["algorithm"], "ES384");
  EXPECT_EQ(b64(t["signature"]).size(), 96U) << "r||s, 48 bytes each";
  EXPECT_TRUE(web_eid_rule_holds(t, "https://kanta.example.fi:8443", nonce));
  EXPECT_FALSE(web_eid_rule_holds(t, "https://kanta.example.fi", nonce));
}

TEST_F(AuthToken, AuthVerifyAcceptsGoodTokensAndRefusesTamperedOnes) {
  auto c = daemon_->connect();
  const std::string nonce = fresh_nonce();
  const Json rsa = token(*c, rsa_auth(), kOrigin, nonce);
  const Json ec = token(*c, ec_auth(), kOrigin, nonce);
  for (const Json* t : {&rsa, &ec}) {
    const Json r = verify(*c, *t, kOrigin, nonce);
    EXPECT_TRUE(r["valid"].get<bool>()) << r.dump();
    EXPECT_TRUE(r["decision"]["allowed"].get<bool>()) << r.dump();
    EXPECT_NE(str(r["subject"]).find("CN="), std::string::npos);
  }
  auto refused = [&](Json t, const std::string& origin, const std::string& n, const std::string& reason) {
    const Json r = verify(*c, t, origin, n);
    EXPECT_FALSE(r["valid"].get<bool>()) << r.dump();
    EXPECT_EQ(r["reason"], wstr(reason)) << r.dump();
  };
  refused(rsa, "https://evil.example", nonce, "signature_invalid");
  refused(ec, kOrigin, fresh_nonce(), "signature_invalid");
  // The token with one field replaced.
  auto with = [](Json t, const char* key, Json value) {
    t[key] = std::move(value);
    return t;
  };
  Bytes flipped = b64(ec["signature"]);
  flipped[10] ^= 0x01;
  refused(with(ec, "signature", wstr(base64_encode(flipped))), kOrigin, nonce, "signature_invalid");
  // A DER signature is not what a Web eID token carries.
  refused(with(ec, "signature", wstr(base64_encode(ecdsa_raw_as_der(b64(ec["signature"]))))), kOrigin, nonce,
          "signature_invalid");
  // Another card's certificate under this signature.
  refused(with(rsa, "unverifiedCertificate", ec["unverifiedCertificate"]), kOrigin, nonce, "algorithm_mismatch");
  refused(with(rsa, "algorithm", "RS256"), kOrigin, nonce, "signature_invalid");
  refused(with(ec, "algorithm", "ES256"), kOrigin, nonce, "algorithm_mismatch");
  refused(with(rsa, "algorithm", "HS256"), kOrigin, nonce, "algorithm_unsupported");
  refused(with(rsa, "format", "web-eid:2.0"), kOrigin, nonce, "format_unsupported");
  refused(with(rsa, "unverifiedCertificate", wstr(base64_encode(random_bytes(300)))), kOrigin, nonce,
          "certificate_unreadable");

  EXPECT_EQ(rpc_error([&] { verify(*c, with(rsa, "signature", "not base64!"), kOrigin, nonce); }).code(), -32602);
  EXPECT_EQ(rpc_error([&] { verify(*c, Json("a string"), kOrigin, nonce); }).code(), -32602);
  Json missing = rsa;
  missing.erase("algorithm");
  EXPECT_EQ(rpc_error([&] { verify(*c, missing, kOrigin, nonce); }).code(), -32602);
}

TEST_F(AuthToken, BadOriginsAndShortNoncesAreInvalidParamsBeforeTheCard) {
  auto c = daemon_->connect();
  const std::string nonce = fresh_nonce();
  const std::vector<std::string> bad_origins = {"",
                                                "http://sso.example.fi",
                                                "https://",
                                                "https://sso.example.fi/",
                                                "https://sso.example.fi/login",
                                                "https://sso.example.fi?x=1",
                                                "https://user@sso.example.fi",
                                                "https://sso.example.fi:",
                                                "https://sso.example.fi:0",
                                                "https://sso.example.fi:65536",
                                                "https://sso.example.fi:80a",
                                                "HTTPS://sso.example.fi",
                                                "https://[::1",
                                                "https://sso.example.fi#frag",
                                                "https://sso example.fi",
                                                std::string("https://") + std::string(300, 'a')};
  for (const std::string& origin : bad_origins) {
    const auto e = rpc_error([&] { token(*c, rsa_auth(), origin, nonce); });
    EXPECT_EQ(e.code(), -32602) << origin;
    EXPECT_NE(std::string(e.what()).find("origin"), std::string::npos) << e.what();
  }
  for (const std::string good : {"https://localhost:8443", "https://[::1]:8443", "https://127.0.0.1"})
    EXPECT_TRUE(web_eid_rule_holds(token(*c, rsa_auth(), good, nonce), good, nonce)) << good;
  for (const std::string& short_or_bad :
       std::vector<std::string>{nonce.substr(0, 43), std::string(44, '*'), std::string(1025, 'A')}) {
    const auto e = rpc_error([&] { token(*c, rsa_auth(), kOrigin, short_or_bad); });
    EXPECT_EQ(e.code(), -32602) << short_or_bad;
    EXPECT_NE(std::string(e.what()).find("challenge_nonce"), std::string::npos) << e.what();
  }
  // auth.verify applies the same rules to the challenge.
  const Json t = token(*c, rsa_auth(), kOrigin, nonce);
  EXPECT_EQ(rpc_error([&] { verify(*c, t, "https://sso.example.fi/", nonce); }).code(), -32602);
  EXPECT_EQ(rpc_error([&] { verify(*c, t, kOrigin, nonce.substr(0, 40)); }).code(), -32602);
}

TEST_F(AuthToken, OnlyAnAuthenticationKeyMakesTokens) {
  auto c = daemon_->connect();
  const auto e = rpc_error([&] { token(*c, rsa_sign_cert(), kOrigin, fresh_nonce()); });
  EXPECT_EQ(e.code(), 1050);
  EXPECT_NE(std::string(e.what()).find("authentication"), std::string::npos) << e.what();
}

// A key that signs as well, or one that asks for its PIN at every signature
// (the PIN2 key, whatever its certificate says), makes no login token: the
// token would stand for a signature, and the PIN typed for a login would go
// to the signature key.
TEST_F(AuthToken, AKeyThatAlsoSignsOrAsksForThePinAtEverySignatureMakesNoToken) {
  SoftHsm(tokens_dir_.path()).add_token("cardD", {"physician/both"});
  SoftHsm(tokens_dir_.path()).add_token("cardE", {"physician/auth/always-auth"});
  start({});
  auto c = daemon_->connect();
  const std::size_t lines = daemon_->audit().size();
  const auto both = rpc_error([&] { token(*c, cert_id("cardD", "01"), kOrigin, fresh_nonce()); });
  EXPECT_EQ(both.code(), 1050);
  EXPECT_NE(std::string(both.what()).find("serves signatures as well"), std::string::npos) << both.what();
  EXPECT_EQ(daemon_->audit().size(), lines) << "refused before the audit trail";

  const auto pin2 = rpc_error([&] { token(*c, cert_id("cardE", "01"), kOrigin, fresh_nonce()); });
  EXPECT_EQ(pin2.code(), 1050);
  EXPECT_NE(std::string(pin2.what()).find("asks for the PIN at every signature"), std::string::npos) << pin2.what();
  const std::vector<Json> tries = outcomes(daemon_->audit());
  ASSERT_EQ(tries.size(), 1U);
  EXPECT_EQ(tries[0]["action"], "auth.token");
  EXPECT_EQ(tries[0]["outcome"], "unsupported");
}

// auth.verify's signature check waits its turn on the documents thread,
// behind the XML work queued before it, in the caller's share: the key is
// the caller's, and an RSA exponent of thousands of bits costs milliseconds
// a check, which the io thread would otherwise pay for every client.
TEST_F(AuthToken, AuthVerifyChecksTheSignatureOnTheDocumentsThread) {
  auto c = daemon_->connect();
  const std::string nonce = fresh_nonce();
  const Json t = token(*c, rsa_auth(), kOrigin, nonce);
  std::string document = "<a>";
  while (document.size() < 4 * 1024 * 1024) document += "<b c=\"d\">text text text</b>";
  document += "</a>";
  const Json params = {{"token", t}, {"origin", kOrigin}, {"challenge_nonce", wstr(nonce)}};
  c->send_raw(R"({"jsonrpc":"2.0","id":1,"method":"verify.xml","attachment":{"name":"document","bytes":)" +
              std::to_string(document.size()) + "}}\n" + document +
              R"({"jsonrpc":"2.0","id":2,"method":"auth.verify","params":)" + to_std(params.dump()) + "}\n");
  std::vector<Json> answers;
  for (int i = 0; i < 2; ++i) {
    const auto a = c->receive(std::chrono::seconds(60));
    ASSERT_TRUE(a.has_value());
    answers.push_back(*a);
  }
  EXPECT_EQ(answers[0]["id"], 1) << "the token was checked before the document queued ahead of it";
  EXPECT_EQ(answers[0]["error"]["code"], 1051) << answers[0].dump();
  EXPECT_EQ(answers[1]["id"], 2);
  EXPECT_TRUE(answers[1]["result"]["valid"].get<bool>()) << answers[1].dump();
}

TEST_F(AuthToken, UsesTheCallersSessionOrAsksForThePin) {
  auto c = daemon_->connect();
  const std::string nonce = fresh_nonce();
  EXPECT_EQ(rpc_error([&] { token(*c, rsa_auth(), kOrigin, nonce, false); }).code(), 1010);
  c->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}});
  EXPECT_TRUE(web_eid_rule_holds(token(*c, rsa_auth(), kOrigin, nonce, false), kOrigin, nonce));
}

TEST_F(AuthToken, EachTokenIsAuditedWithItsOriginAndNoPinIsWrittenAnywhere) {
  auto c = daemon_->connect();
  const std::string nonce = fresh_nonce();
  token(*c, rsa_auth(), "https://audit.example.fi", nonce);
  Json wrong_pin = {{"cert_id", wstr(ec_auth())},
                    {"origin", "https://audit.example.fi"},
                    {"challenge_nonce", wstr(nonce)},
                    {"pin", "987654"}};
  const auto e = rpc_error([&] { c->call("auth.token", wrong_pin); });
  EXPECT_EQ(e.code(), 1011);
  EXPECT_EQ(std::string(e.what()).find("987654"), std::string::npos);
  const std::vector<Json> all = daemon_->audit();
  EXPECT_EQ(all.size(), 4U) << "each try: begun, then its outcome";
  const std::vector<Json> lines = outcomes(all);
  ASSERT_EQ(lines.size(), 2U);
  for (const Json& line : lines) {
    EXPECT_EQ(line["action"], "auth.token");
    EXPECT_EQ(line["origin"], "https://audit.example.fi");
    EXPECT_EQ(line["digest_algorithm"], line == lines[0] ? "sha256" : "sha384");
  }
  EXPECT_EQ(lines[0]["outcome"], "ok");
  EXPECT_EQ(lines[0]["cert_id"], wstr(rsa_auth()));
  EXPECT_EQ(lines[1]["outcome"], "pin_incorrect");
  for (const auto& file : {daemon_->dir() / "korttid.log", daemon_->dir() / "audit.log"}) {
    const std::string text = read_file(file);
    EXPECT_EQ(text.find(kPin), std::string::npos) << file;
    EXPECT_EQ(text.find("987654"), std::string::npos) << file;
  }
}

}  // namespace
}  // namespace kortti::test
