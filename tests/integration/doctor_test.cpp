// `kortti doctor` on the test bed: korttid on the virtual card through a
// private pcscd and OpenSC. Each common failure is made for real (no card,
// a PIN with one try left, a locked PIN, a stale registry, pcscd gone) and
// must come out as its finding, with its advice.

#include <map>

#include "tests/support/pcsc_fixture.hpp"

namespace kortti::test {
namespace {

using namespace std::chrono_literals;

struct Finding {
  std::string verdict;
  std::string message;
  std::string hint;
};

class Doctor : public PcscDaemonTest {
 protected:
  // No revocation sources: the policy suite's OCSP responders listen on the
  // ports the test PKI's certificates name, and would count our requests.
  void SetUp() override {
    DaemonOptions o;
    o.revocation = "ocsp = false\ncrl = false\n";
    start_daemon(std::move(o));
  }

  // The findings of one run, by check; and its exit status.
  std::multimap<std::string, Finding> diagnose(int expected_status) {
    auto r = run({kortti_binary().string(), "--socket", daemon_->socket(), "--json", "doctor"});
    EXPECT_EQ(r.status, expected_status) << r.out << r.err;
    std::multimap<std::string, Finding> out;
    for (const auto& f : Json::parse(r.out))
      out.emplace(str(f["check"]),
                  Finding{str(f["verdict"]), str(f["message"]), f.contains("hint") ? str(f["hint"]) : ""});
    last_ = r.out;
    return out;
  }
  // The one finding of `check`; fails the test when there is not exactly one.
  Finding one(const std::multimap<std::string, Finding>& findings, const std::string& check) {
    EXPECT_EQ(findings.count(check), 1U) << check << "\n" << last_;
    const auto it = findings.find(check);
    return it == findings.end() ? Finding{} : it->second;
  }
  std::string last_;
};

TEST_F(Doctor, EachFailureOnTheTestBedIsDiagnosedWithItsAdvice) {
  // No card in the reader.
  auto f = diagnose(0);
  EXPECT_EQ(one(f, "pcsc").verdict, "ok");
  EXPECT_EQ(one(f, "card").verdict, "warn");
  EXPECT_NE(one(f, "card").message.find("no card in any reader"), std::string::npos);

  // The card in: its type and token, its PIN and both certificates fine.
  VirtualCard card(pcscd_, card_options("physician", 0));
  const std::string token = card.token_id();
  wait_for_token(token);
  f = diagnose(0);
  // vpcd offers two readers; the card is in the first.
  const auto readers = f.equal_range("reader");
  ASSERT_EQ(std::distance(readers.first, readers.second), 2) << last_;
  const Finding reader = readers.first->second;
  EXPECT_EQ(reader.verdict, "ok");
  EXPECT_EQ(reader.message.rfind("Virtual PCD 00 00: dvv_healthcare; token " + token, 0), 0U) << reader.message;
  EXPECT_EQ(std::next(readers.first)->second.message, "Virtual PCD 00 01: no card");
  EXPECT_EQ(one(f, "pin").verdict, "ok");
  EXPECT_NE(one(f, "pin").message.find("3 tries left"), std::string::npos) << last_;
  const auto certs = f.equal_range("certificate");
  ASSERT_EQ(std::distance(certs.first, certs.second), 2) << last_;
  for (auto it = certs.first; it != certs.second; ++it) EXPECT_EQ(it->second.verdict, "ok") << it->second.message;
  EXPECT_EQ(one(f, "registry").verdict, "warn") << "nothing imported yet";
  EXPECT_NE(one(f, "registry").hint.find("korttid registry import"), std::string::npos);

  // Two wrong PINs: one try left is a warning with advice; a third (from
  // another account: the first may not spend the last) locks the PIN, which
  // fails the run and names the way out.
  auto c = daemon_->connect();
  auto wrong_pin = [&] {
    return rpc_error([&] {
             c->call("session.login", {{"token_id", wstr(token)}, {"pin", "000000"}, {"final_try", true}});
           })
        .code();
  };
  EXPECT_EQ(wrong_pin(), 1011);
  EXPECT_EQ(wrong_pin(), 1011);
  c = connect_as(daemon_->socket(), 4242, 4242);
  f = diagnose(0);
  EXPECT_EQ(one(f, "pin").verdict, "warn");
  EXPECT_NE(one(f, "pin").message.find("one try left"), std::string::npos) << last_;
  EXPECT_FALSE(one(f, "pin").hint.empty());
  const int last = wrong_pin();
  EXPECT_TRUE(last == 1011 || last == 1012) << last << ": the last try locks it";
  f = diagnose(1);
  EXPECT_EQ(one(f, "pin").verdict, "fail");
  EXPECT_NE(one(f, "pin").hint.find("kortti pin unblock --token " + token), std::string::npos) << last_;

  // A registry extract eight days old, where seven is the limit.
  import_registry_fixture(*daemon_);
  auto aged = run({"sqlite3", daemon_->registry().string(),
                   "UPDATE provenance SET imported_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-8 days')"});
  ASSERT_EQ(aged.status, 0) << aged.err;
  f = diagnose(1);
  EXPECT_EQ(one(f, "registry").verdict, "warn");
  EXPECT_NE(one(f, "registry").message.find("stale"), std::string::npos) << last_;

  // pcscd gone: korttid says so, and doctor says where to look.
  pcscd_.kill();
  ASSERT_TRUE(eventually([&] { return c->call("system.status")["pcsc"] == "unavailable"; }, 10000ms));
  f = diagnose(1);
  EXPECT_EQ(one(f, "pcsc").verdict, "fail");
  EXPECT_NE(one(f, "pcsc").hint.find("systemctl status pcscd.socket"), std::string::npos) << last_;
  EXPECT_NE(one(f, "pcsc").hint.find("polkit"), std::string::npos) << last_;
  pcscd_.start();
}

// The browsers' localhost certificate (kortti scs setup) is the user's own
// file: doctor warns before browsers refuse it, and says how to renew.
TEST_F(Doctor, TheBrowsersLocalhostCertificateIsCheckedForExpiry) {
  TempDir data;
  const std::map<std::string, std::string> env = {{"XDG_DATA_HOME", data.path().string()}};
  const auto scs_findings = [&] {
    const auto r = run({kortti_binary().string(), "--socket", daemon_->socket(), "--json", "doctor"}, env);
    std::vector<Json> out;
    for (const auto& f : Json::parse(r.out))
      if (f["check"] == "scs") out.push_back(f);
    return out;
  };
  EXPECT_TRUE(scs_findings().empty()) << "no certificate, no finding";

  ASSERT_EQ(run({kortti_binary().string(), "scs", "setup", "--no-nss", "--days", "10"}, env).status, 0);
  auto f = scs_findings();
  ASSERT_EQ(f.size(), 1U);
  EXPECT_EQ(f[0]["verdict"], "warn") << f[0].dump();
  EXPECT_NE(str(f[0]["message"]).find("expires in"), std::string::npos) << f[0].dump();
  EXPECT_NE(str(f[0]["hint"]).find("kortti scs setup"), std::string::npos) << f[0].dump();

  ASSERT_EQ(run({kortti_binary().string(), "scs", "setup", "--no-nss", "--days", "397"}, env).status, 0);
  f = scs_findings();
  ASSERT_EQ(f.size(), 1U);
  EXPECT_EQ(f[0]["verdict"], "ok") << f[0].dump();

  // A warning, not a failure: doctor cannot tell whether korttid serves SCS.
  write_file(data / "kortti/scs/localhost.pem", "not a certificate\n");
  f = scs_findings();
  ASSERT_EQ(f.size(), 1U);
  EXPECT_EQ(f[0]["verdict"], "warn") << f[0].dump();
}

// A machine with no reader plugged in: pcscd answers and lists none.
TEST(DoctorWithoutReaders, NoReaderIsNamedWithItsAdvice) {
  Pcscd pcscd(Pcscd::NoReaders{});
  DaemonOptions o;
  o.pcsc = true;
  o.modules = {kOpenScModule};
  o.env = pcscd.env();
  o.env["OPENSC_CONF"] = "/dev/null";
  o.revocation = "ocsp = false\ncrl = false\n";
  Daemon daemon(std::move(o));
  const auto r = run({kortti_binary().string(), "--socket", daemon.socket(), "--json", "doctor"});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  std::vector<Json> readers;
  std::string pcsc;
  for (const auto& f : Json::parse(r.out)) {
    if (f["check"] == "reader") readers.push_back(f);
    if (f["check"] == "pcsc") pcsc = str(f["verdict"]);
  }
  EXPECT_EQ(pcsc, "ok") << r.out;
  ASSERT_EQ(readers.size(), 1U) << r.out;
  EXPECT_EQ(readers[0]["verdict"], "fail") << r.out;
  EXPECT_NE(str(readers[0]["message"]).find("no card reader"), std::string::npos) << r.out;
  EXPECT_NE(str(readers[0]["hint"]).find("pcsc_scan"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace kortti::test
