// The kortti CLI as a user runs it, against a real daemon.

#include <sys/stat.h>

#include <csignal>
#include <iterator>
#include <map>

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

// A korttid that is stopped takes the connection (the kernel queues it)
// and never answers: kortti gives up after --timeout, exit 69, and doctor
// says korttid stopped answering. Continued, it serves as before.
TEST_F(Cli, AStoppedKorttidIsGivenUpAfterTheTimeout) {
  daemon_->signal(SIGSTOP);
  const auto status = kortti({"--timeout", "1", "status"});
  const auto doctor = kortti({"--timeout", "1", "doctor"});
  daemon_->signal(SIGCONT);
  EXPECT_EQ(status.status, 69) << status.err;
  EXPECT_NE(status.err.find("no answer from korttid in 1 s (--timeout): korttid may be stopped or stuck"),
            std::string::npos)
      << status.err;
  EXPECT_EQ(doctor.status, 69) << doctor.out << doctor.err;
  EXPECT_NE(doctor.out.find("korttid stopped answering: no answer from korttid in 1 s"), std::string::npos)
      << doctor.out;
  EXPECT_EQ(kortti({"status"}).status, 0);
}

// korttid refuses a connection too many and closes it a second later: the
// user reads korttid's reason, not only that the connection was closed.
TEST_F(Cli, ARefusedConnectionIsReportedWithKorttidsReason) {
  DaemonOptions o;
  o.ipc = "max_connections_per_uid = 1\n";
  start(std::move(o));
  auto held = daemon_->connect();
  EXPECT_EQ(held->call("system.hello")["daemon"], "korttid");
  const auto r = kortti({"tokens"});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("connections open, the most one user may have"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("closed the connection"), std::string::npos) << r.err;
}

// The findings of `kortti --json doctor`, by check: {verdict, message} each.
std::multimap<std::string, std::pair<std::string, std::string>> findings(const std::string& out) {
  std::multimap<std::string, std::pair<std::string, std::string>> by_check;
  for (const auto& f : Json::parse(out))
    by_check.emplace(str(f["check"]), std::pair{str(f["verdict"]), str(f["message"])});
  return by_check;
}

TEST_F(Cli, DoctorNamesWhatIsFineAndWarnsOfWhatIsComing) {
  auto r = kortti({"--json", "doctor"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  auto f = findings(r.out);
  for (const char* check : {"socket", "daemon", "module", "registry"}) {
    ASSERT_EQ(f.count(check), 1U) << check << "\n" << r.out;
    EXPECT_EQ(f.find(check)->second.first, std::string(check) == "registry" ? "warn" : "ok") << check << "\n" << r.out;
  }
  // This daemon's registry is empty: prescriptions would be refused.
  EXPECT_NE(f.find("registry")->second.second.find("no Valvira registry extract is imported"), std::string::npos);
  EXPECT_NE(f.find("module")->second.second.find("libsofthsm2.so"), std::string::npos) << r.out;
  // PC/SC is off in this daemon: said, not failed.
  ASSERT_EQ(f.count("pcsc"), 1U) << r.out;
  EXPECT_EQ(f.find("pcsc")->second.first, "warn");
  ASSERT_EQ(f.count("pin"), 2U) << r.out;
  const auto certs = f.equal_range("certificate");
  ASSERT_EQ(std::distance(certs.first, certs.second), 4) << r.out;
  for (auto it = certs.first; it != certs.second; ++it) {
    EXPECT_EQ(it->second.first, "ok") << it->second.second;
    EXPECT_NE(it->second.second.find("valid until"), std::string::npos) << it->second.second;
  }

  // The test PKI's card certificates live 730 days: within 3650, a warning each.
  auto soon = kortti({"--json", "doctor", "--expiry-days", "3650"});
  ASSERT_EQ(soon.status, 0) << soon.out << soon.err;
  auto g = findings(soon.out);
  const auto expiring = g.equal_range("certificate");
  ASSERT_EQ(std::distance(expiring.first, expiring.second), 4) << soon.out;
  for (auto it = expiring.first; it != expiring.second; ++it) {
    EXPECT_EQ(it->second.first, "warn") << it->second.second;
    EXPECT_NE(it->second.second.find("expires on"), std::string::npos) << it->second.second;
  }

  // The table a person reads: a verdict word per line.
  auto table = kortti({"doctor"});
  EXPECT_EQ(table.status, 0);
  EXPECT_NE(table.out.find("ok    socket"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("warn  pcsc"), std::string::npos) << table.out;
}

TEST_F(Cli, DoctorExplainsWhyKorttidCannotBeReached) {
  auto none = run({kortti_binary().string(), "--socket", "/nonexistent/k.sock", "doctor"});
  EXPECT_EQ(none.status, 69) << "unreachable, as for every kortti command";
  EXPECT_NE(none.out.find("FAIL  socket"), std::string::npos) << none.out;
  EXPECT_NE(none.out.find("no socket at /nonexistent/k.sock"), std::string::npos) << none.out;
  EXPECT_NE(none.out.find("systemctl status korttid.socket"), std::string::npos) << none.out;

  // The test's folder is closed to others: a user who cannot reach the
  // socket is told which way to look.
  const std::string socket = daemon_->socket();
  const std::vector<std::string> as_nobody = {
      "setpriv",  "--reuid=65534", "--regid=65534", "--clear-groups", kortti_binary().string(),
      "--socket", socket,          "doctor"};
  const fs::path folder = fs::path(socket).parent_path();
  struct stat folder_st {};
  ASSERT_EQ(::stat(folder.c_str(), &folder_st), 0);
  ASSERT_EQ(folder_st.st_mode & 0001, 0U) << "the test's folder is open to others: this shows nothing";
  auto closed = run(as_nobody);
  EXPECT_EQ(closed.status, 69) << closed.out << closed.err;
  EXPECT_NE(closed.out.find("a folder on the way is closed to nobody"), std::string::npos) << closed.out;

  // A user outside the socket's group: told so, and what an admin does.
  struct stat st {};
  ASSERT_EQ(::stat(socket.c_str(), &st), 0);
  ASSERT_EQ(::chmod(folder.c_str(), (folder_st.st_mode & 07777) | 0011), 0);
  ASSERT_EQ(::chmod(socket.c_str(), 0600), 0);
  auto denied = run(as_nobody);
  ASSERT_EQ(::chmod(socket.c_str(), st.st_mode & 07777), 0);
  ASSERT_EQ(::chmod(folder.c_str(), folder_st.st_mode & 07777), 0);
  EXPECT_EQ(denied.status, 69) << denied.out << denied.err;
  EXPECT_NE(denied.out.find("permission denied at " + socket + " (mode 0600"), std::string::npos) << denied.out;
  EXPECT_NE(denied.out.find("adduser nobody"), std::string::npos) << denied.out;
  // The daemon serves the others as before.
  EXPECT_EQ(kortti({"status"}).status, 0);
}

}  // namespace
}  // namespace kortti::test
