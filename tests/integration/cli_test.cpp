// The kortti CLI as a user runs it, against a real daemon.

#include "tests/integration/softhsm_fixture.hpp"

namespace kortti::test {
namespace {

class Cli : public SoftHsmDaemonTest {
 protected:
  CommandResult kortti(std::vector<std::string> args, const std::map<int, fs::path>& fds = {}) {
    args.insert(args.begin(), {kortti_binary().string(), "--socket", daemon_->socket()});
    return run(args, {}, "", fds);
  }
  fs::path pin_file() {
    const fs::path p = daemon_->dir() / "pin";
    write_file(p, std::string(kPin) + "\n");
    return p;
  }
};

TEST_F(Cli, StatusTokensAndCertsPrintTables) {
  auto status = kortti({"status"});
  EXPECT_EQ(status.status, 0) << status.err;
  EXPECT_NE(status.out.find("libsofthsm2.so"), std::string::npos);
  EXPECT_NE(status.out.find("loaded"), std::string::npos);
  auto tokens = kortti({"tokens"});
  EXPECT_EQ(tokens.status, 0);
  EXPECT_NE(tokens.out.find("TOKEN ID"), std::string::npos);
  EXPECT_NE(tokens.out.find("cardA"), std::string::npos);
  auto certs = kortti({"certs", "--purpose", "signature"});
  EXPECT_EQ(certs.status, 0);
  EXPECT_NE(certs.out.find("Testilääkäri Aino"), std::string::npos) << certs.out;
  EXPECT_NE(certs.out.find("ec P-384"), std::string::npos);
  EXPECT_EQ(certs.out.find("authentication"), std::string::npos);
}

TEST_F(Cli, JsonOutputIsTheDaemonsAnswer) {
  auto r = kortti({"--json", "tokens"});
  ASSERT_EQ(r.status, 0);
  const Json j = Json::parse(r.out);
  ASSERT_TRUE(j.is_array());
  EXPECT_EQ(j.size(), 2U);
}

TEST_F(Cli, SignWritesASignatureOpensslVerifies) {
  const fs::path doc = daemon_->dir() / "resepti.txt";
  write_file(doc, "Rp. Paracetamol 500 mg\n");
  for (const auto& [cert, digest, scheme] :
       {std::tuple{rsa_sign_cert(), "sha256", "pkcs1"}, std::tuple{rsa_sign_cert(), "sha512", "pss"},
        std::tuple{ec_sign_cert(), "sha384", "ecdsa"}}) {
    const fs::path sig = daemon_->dir() / "out.sig";
    const fs::path pem = daemon_->dir() / "signer.pem";
    auto r = kortti({"sign", "--cert", cert, "--in", doc.string(), "--out", sig.string(), "--digest", digest,
                     "--scheme", scheme, "--cert-out", pem.string(), "--pin-fd", "3"},
                    {{3, pin_file()}});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("signed"), std::string::npos);
    std::vector<std::string> verify = {
        "sh", "-c",
        std::string("openssl x509 -in ") + pem.string() + " -pubkey -noout > " + (daemon_->dir() / "pub.pem").string() +
            " && openssl dgst -" + digest +
            (std::string(scheme) == "pss" ? " -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest" : "") +
            " -verify " + (daemon_->dir() / "pub.pem").string() + " -signature " + sig.string() + " " + doc.string()};
    auto v = run(verify);
    EXPECT_EQ(v.status, 0) << cert << " " << scheme << ": " << v.out << v.err;
    EXPECT_NE(v.out.find("Verified OK"), std::string::npos);
  }
}

TEST_F(Cli, PinStatusAndChangeFromAFileDescriptor) {
  auto status = kortti({"pin", "status"});
  ASSERT_EQ(status.status, 0) << status.err;
  EXPECT_NE(status.out.find("TOKEN ID"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("cardA"), std::string::npos) << status.out;
  const std::string token = token_ids_.at("cardA");
  const fs::path pins = daemon_->dir() / "pins";
  write_file(pins, std::string(kPin) + "\n13572468\n");  // the current PIN, then the new one
  auto change = kortti({"pin", "change", "--token", token, "--pin-fd", "3"}, {{3, pins}});
  ASSERT_EQ(change.status, 0) << change.err;
  EXPECT_NE(change.out.find("changed"), std::string::npos) << change.out;
  auto c = daemon_->connect();
  EXPECT_TRUE(c->call("session.login", {{"token_id", wstr(token)}, {"pin", "13572468"}})["logged_in"]);
  auto bad = kortti({"pin", "change", "--token", token, "--pin-fd", "3"}, {{3, pins}});
  EXPECT_EQ(bad.status, 1) << "the old PIN no longer works: " << bad.out;
  EXPECT_NE(bad.err.find("pin_incorrect"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find(kPin), std::string::npos) << "no PIN is echoed";
}

TEST_F(Cli, WrongPinIsReportedWithItsReason) {
  const fs::path bad = daemon_->dir() / "bad";
  write_file(bad, "000000\n");
  write_file(daemon_->dir() / "d", "x");
  auto r = kortti({"sign", "--cert", ec_sign_cert(), "--in", (daemon_->dir() / "d").string(), "--out",
                   (daemon_->dir() / "s").string(), "--pin-fd", "3"},
                  {{3, bad}});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("pin_incorrect"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("000000"), std::string::npos) << "the PIN itself must never be echoed";
}

TEST_F(Cli, NoTerminalAndNoPinFdIsAClearError) {
  write_file(daemon_->dir() / "d", "x");
  auto r = run({"setsid", "-w", kortti_binary().string(), "--socket", daemon_->socket(), "sign", "--cert",
                ec_sign_cert(), "--in", (daemon_->dir() / "d").string(), "--out", (daemon_->dir() / "s").string()});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--pin-fd"), std::string::npos) << r.err;
}

TEST_F(Cli, LoginAndLogout) {
  const std::string token = token_ids_.at("cardA");
  auto in = kortti({"login", "--token", token, "--pin-fd", "3"}, {{3, pin_file()}});
  EXPECT_EQ(in.status, 0) << in.err;
  EXPECT_NE(in.out.find("logged in"), std::string::npos);
  EXPECT_NE(kortti({"tokens"}).out.find("yes"), std::string::npos);
  auto out = kortti({"logout", "--token", token});
  EXPECT_EQ(out.status, 0);
}

TEST_F(Cli, AuthTokenMakesATokenThatVerifyTokenAccepts) {
  const std::string nonce = base64_encode(random_bytes(32));
  const fs::path token = daemon_->dir() / "token.json";
  auto made = kortti({"auth-token", "--cert", cert_id("cardA", "02"), "--origin", "https://sso.example.fi", "--nonce",
                      nonce, "--out", token.string(), "--pin-fd", "3"},
                     {{3, pin_file()}});
  ASSERT_EQ(made.status, 0) << made.err;
  const Json t = Json::parse(read_file(token));
  EXPECT_EQ(t["format"], "web-eid:1.0");
  EXPECT_EQ(t["algorithm"], "PS256");
  auto ok = kortti({"verify-token", "--in", token.string(), "--origin", "https://sso.example.fi", "--nonce", nonce});
  EXPECT_EQ(ok.status, 0) << ok.out << ok.err;
  EXPECT_EQ(ok.out.rfind("VALID", 0), 0U) << ok.out;
  EXPECT_NE(ok.out.find("Testilääkäri"), std::string::npos) << ok.out;
  auto other = kortti({"verify-token", "--in", token.string(), "--origin", "https://evil.example", "--nonce", nonce});
  EXPECT_EQ(other.status, 3) << other.out << other.err;
  EXPECT_NE(other.out.find("NOT VALID"), std::string::npos) << other.out;
  EXPECT_NE(other.out.find("does not hold for this origin"), std::string::npos) << other.out;
  auto bad = kortti({"auth-token", "--cert", cert_id("cardA", "02"), "--origin", "https://sso.example.fi/login",
                     "--nonce", nonce, "--pin-fd", "3"},
                    {{3, pin_file()}});
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("origin"), std::string::npos) << bad.err;
  auto help = run({kortti_binary().string(), "auth-token", "--help"});
  EXPECT_EQ(help.status, 0);
  for (const char* word : {"--origin", "--nonce", "--cert", "--pin-fd", "web-eid:1.0"})
    EXPECT_NE(help.out.find(word), std::string::npos) << word << "\n" << help.out;
}

TEST_F(Cli, UnreachableDaemonAndUsageErrors) {
  auto r = run({kortti_binary().string(), "--socket", "/nonexistent/k.sock", "tokens"});
  EXPECT_EQ(r.status, 69);
  EXPECT_NE(r.err.find("/nonexistent/k.sock"), std::string::npos);
  EXPECT_NE(run({kortti_binary().string(), "sign"}).status, 0);
  auto help = run({kortti_binary().string(), "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("PINS"), std::string::npos);
  auto version = run({kortti_binary().string(), "--version"});
  EXPECT_NE(version.out.find("protocol 1"), std::string::npos);
}

}  // namespace
}  // namespace kortti::test
