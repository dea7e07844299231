// What the logs say about a signature — and that no PIN is ever among it;
// the audit trail's hash chain, and no signature without its audit line.

#include <sys/mount.h>

#include <csignal>
#include <cstring>
#include <fstream>

#include "common/digest.hpp"
#include "tests/integration/softhsm_fixture.hpp"

namespace kortti::test {
namespace {

using Audit = SoftHsmDaemonTest;

std::vector<std::string> raw_lines(const fs::path& file) {
  std::vector<std::string> out;
  std::istringstream in(read_file(file));
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string sha256_of(const std::string& text) {
  return sha256_hex(ByteView(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

CommandResult verify(const std::vector<fs::path>& files) {
  std::vector<std::string> argv = {korttid_binary().string(), "audit", "verify"};
  for (const auto& f : files) argv.push_back(f.string());
  return run(argv);
}

TEST_F(Audit, EachSignatureIsRecordedWithWhoWhatAndOutcome) {
  auto c = daemon_->connect();
  c->call("system.hello", {{"client", "test-ehr"}});
  auto [answer, digest] = sign_digest(*c, rsa_sign_cert(), "sha256");
  Json bad = {{"cert_id", wstr(ec_sign_cert())},
              {"digest_algorithm", "sha384"},
              {"digest", wstr(base64_encode(random_bytes(48)))},
              {"pin", "000000"}};
  EXPECT_THROW(c->call("sign.digest", bad), client::RpcError);
  const auto lines = outcomes(daemon_->audit());
  ASSERT_EQ(lines.size(), 2U);
  const Json& ok = lines[0];
  EXPECT_EQ(ok["action"], "sign.digest");
  EXPECT_EQ(ok["uid"], ::getuid());
  EXPECT_EQ(ok["client"], "test-ehr");
  EXPECT_EQ(ok["cert_id"], wstr(rsa_sign_cert()));
  EXPECT_EQ(ok["digest"], wstr(hex_encode(digest)));
  EXPECT_EQ(ok["outcome"], "ok");
  EXPECT_NE(str(ok["subject"]).find("Testilääkäri"), std::string::npos);
  EXPECT_EQ(lines[1]["outcome"], "pin_incorrect");
}

// The begun line is on disk before the signature leaves; the outcome's line
// follows it, with the same attempt id and the same who and what.
TEST_F(Audit, ATryAtTheCardIsBegunBeforeItsOutcome) {
  auto c = daemon_->connect();
  c->call("system.hello", {{"client", "test-ehr"}});
  auto [answer, digest] = sign_digest(*c, rsa_sign_cert(), "sha256");
  // What the answer's line holds the moment it arrives: the begun line.
  const auto at_answer = raw_lines(daemon_->dir() / "audit.log");
  ASSERT_GE(at_answer.size(), 1U);
  const Json first = Json::parse(at_answer[0]);
  EXPECT_EQ(first["outcome"], "begun");
  const auto lines = daemon_->audit();
  ASSERT_EQ(lines.size(), 2U);
  const Json& begun = lines[0];
  const Json& ok = lines[1];
  EXPECT_EQ(begun["outcome"], "begun");
  EXPECT_FALSE(begun.contains("delivered")) << "nothing is delivered before the card signs";
  EXPECT_EQ(ok["outcome"], "ok");
  EXPECT_EQ(ok["delivered"], true);
  ASSERT_TRUE(begun.contains("attempt"));
  EXPECT_EQ(str(begun["attempt"]).size(), 16U);
  EXPECT_EQ(begun["attempt"], ok["attempt"]);
  for (const char* key : {"action", "uid", "pid", "client", "cert_id", "digest_algorithm", "digest"})
    EXPECT_EQ(begun[key], ok[key]) << key;
  EXPECT_EQ(begun["digest"], wstr(hex_encode(digest)));
  EXPECT_LT(begun["seq"], ok["seq"]);
  // Another signature is another attempt.
  sign_digest(*c, rsa_sign_cert(), "sha256");
  const auto more = daemon_->audit();
  ASSERT_EQ(more.size(), 4U);
  EXPECT_NE(more[2]["attempt"], begun["attempt"]);
  EXPECT_EQ(more[2]["attempt"], more[3]["attempt"]);
}

TEST_F(Audit, NoPinReachesAnyLogEvenAtDebugLevel) {
  auto c = daemon_->connect();
  c->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}});
  sign_digest(*c, ec_sign_cert(), "sha384");
  Json wrong = {{"cert_id", wstr(ec_sign_cert())},
                {"digest_algorithm", "sha384"},
                {"digest", wstr(base64_encode(random_bytes(48)))},
                {"pin", "246813"}};
  EXPECT_THROW(c->call("sign.digest", wrong), client::RpcError);
  daemon_->stop();
  for (const auto& file : {daemon_->dir() / "korttid.log", daemon_->dir() / "audit.log"}) {
    const std::string text = read_file(file);
    EXPECT_FALSE(text.empty());
    EXPECT_EQ(text.find(kPin), std::string::npos) << file;
    EXPECT_EQ(text.find("246813"), std::string::npos) << file;
  }
}

TEST_F(Audit, ASessionLoginIsRecordedWithoutThePin) {
  auto c = daemon_->connect();
  c->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}});
  const auto lines = daemon_->audit();
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_EQ(lines[0]["action"], "session.login");
  EXPECT_EQ(lines[0]["token_id"], wstr(token_ids_.at("cardA")));
  EXPECT_EQ(lines[0]["outcome"], "ok");
}

TEST_F(Audit, EachLineIsChainedToTheOneBefore) {
  auto c = daemon_->connect();
  for (int i = 0; i < 3; ++i) sign_digest(*c, rsa_sign_cert(), "sha256");
  ASSERT_EQ(daemon_->audit().size(), 6U);  // each: begun, ok
  const auto lines = raw_lines(daemon_->dir() / "audit.log");
  ASSERT_EQ(lines.size(), 6U);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const Json j = Json::parse(lines[i]);
    EXPECT_EQ(j["seq"], i + 1);
    EXPECT_EQ(j["prev"], i == 0 ? wstr("start") : wstr(sha256_of(lines[i - 1])));
  }
  const auto ok = verify({daemon_->dir() / "audit.log"});
  EXPECT_EQ(ok.status, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("OK: 6 lines"), std::string::npos) << ok.out;
}

TEST_F(Audit, VerifyNamesAChangedOrMissingLine) {
  auto c = daemon_->connect();
  for (int i = 0; i < 4; ++i) sign_digest(*c, rsa_sign_cert(), "sha256");
  ASSERT_EQ(daemon_->audit().size(), 8U);
  auto lines = raw_lines(daemon_->dir() / "audit.log");
  ASSERT_EQ(lines.size(), 8U);

  auto changed = lines;
  const auto at = changed[1].find("\"uid\":");
  ASSERT_NE(at, std::string::npos);
  changed[1].replace(at, 6, "\"uid\":4242,\"was\":");
  std::string text;
  for (const auto& l : changed) text += l + "\n";
  write_file(daemon_->dir() / "changed.log", text);
  const auto r1 = verify({daemon_->dir() / "changed.log"});
  EXPECT_EQ(r1.status, 1) << r1.out;
  EXPECT_NE(r1.out.find("changed.log:2: BROKEN"), std::string::npos) << r1.out;

  text.clear();
  for (std::size_t i = 0; i < lines.size(); ++i)
    if (i != 2) text += lines[i] + "\n";
  write_file(daemon_->dir() / "missing.log", text);
  const auto r2 = verify({daemon_->dir() / "missing.log"});
  EXPECT_EQ(r2.status, 1) << r2.out;
  EXPECT_NE(r2.out.find("missing.log:2: BROKEN"), std::string::npos) << r2.out;
}

// The last lines of a file cannot be checked by the file itself; a hash
// kept elsewhere can: verify fails unless some line still hashes to it.
TEST_F(Audit, VerifyChecksALastKnownHash) {
  auto c = daemon_->connect();
  for (int i = 0; i < 2; ++i) sign_digest(*c, rsa_sign_cert(), "sha256");
  ASSERT_EQ(daemon_->audit().size(), 4U);
  const auto lines = raw_lines(daemon_->dir() / "audit.log");
  ASSERT_EQ(lines.size(), 4U);
  const auto all = verify({daemon_->dir() / "audit.log"});
  EXPECT_EQ(all.status, 0) << all.out;
  EXPECT_NE(all.out.find("from seq 1 through seq 4 (last hash " + sha256_of(lines[3]) + ")"), std::string::npos)
      << all.out;

  auto with_known = [&](const fs::path& file, const std::string& hash) {
    return run({korttid_binary().string(), "audit", "verify", "--last-known", hash, file.string()});
  };
  const auto kept = with_known(daemon_->dir() / "audit.log", sha256_of(lines[1]));
  EXPECT_EQ(kept.status, 0) << kept.out;
  EXPECT_NE(kept.out.find("the last known hash is " + (daemon_->dir() / "audit.log").string() + ":2"),
            std::string::npos)
      << kept.out;

  // The last two lines cut off: the file alone is still a sound chain.
  write_file(daemon_->dir() / "cut.log", lines[0] + "\n" + lines[1] + "\n");
  EXPECT_EQ(verify({daemon_->dir() / "cut.log"}).status, 0);
  const auto cut = with_known(daemon_->dir() / "cut.log", sha256_of(lines[3]));
  EXPECT_EQ(cut.status, 1) << cut.out;
  EXPECT_NE(cut.out.find("BROKEN: no line hashes to " + sha256_of(lines[3])), std::string::npos) << cut.out;

  // The first lines cut off: the range says where the check began.
  write_file(daemon_->dir() / "head-cut.log", lines[2] + "\n" + lines[3] + "\n");
  const auto late = verify({daemon_->dir() / "head-cut.log"});
  EXPECT_EQ(late.status, 0) << late.out;
  EXPECT_NE(late.out.find("OK: 2 lines, from seq 3 through seq 4"), std::string::npos) << late.out;

  // An empty file (one logrotate has just started) proves nothing; with the
  // older file before it, the chain is checked as usual.
  write_file(daemon_->dir() / "empty.log", "");
  const auto empty = verify({daemon_->dir() / "empty.log"});
  EXPECT_EQ(empty.status, 2) << empty.out;
  EXPECT_NE(empty.out.find("INCOMPLETE: no audit lines"), std::string::npos) << empty.out;
  EXPECT_EQ(verify({daemon_->dir() / "audit.log", daemon_->dir() / "empty.log"}).status, 0);

  const auto bad = with_known(daemon_->dir() / "audit.log", "not-a-hash");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("SHA-256"), std::string::npos) << bad.err;
}

// logrotate moves the file; the next line starts a new one, linked to the old.
TEST_F(Audit, TheChainCarriesOnAcrossRotation) {
  auto c = daemon_->connect();
  sign_digest(*c, rsa_sign_cert(), "sha256");
  sign_digest(*c, rsa_sign_cert(), "sha256");
  ASSERT_EQ(daemon_->audit().size(), 4U);
  fs::rename(daemon_->dir() / "audit.log", daemon_->dir() / "audit.log.1");
  sign_digest(*c, rsa_sign_cert(), "sha256");
  ASSERT_EQ(daemon_->audit().size(), 2U);
  const auto old_lines = raw_lines(daemon_->dir() / "audit.log.1");
  const auto new_lines = raw_lines(daemon_->dir() / "audit.log");
  ASSERT_EQ(old_lines.size(), 4U);
  ASSERT_EQ(new_lines.size(), 2U);
  const Json first = Json::parse(new_lines[0]);
  EXPECT_EQ(first["seq"], 5);
  EXPECT_EQ(first["prev"], wstr(sha256_of(old_lines[3])));
  const auto both = verify({daemon_->dir() / "audit.log.1", daemon_->dir() / "audit.log"});
  EXPECT_EQ(both.status, 0) << both.out;
  EXPECT_NE(both.out.find("OK: 6 lines"), std::string::npos) << both.out;
  // Out of order, the old file's start cannot be linked to what came before.
  const auto reversed = verify({daemon_->dir() / "audit.log", daemon_->dir() / "audit.log.1"});
  EXPECT_EQ(reversed.status, 2) << reversed.out;
  EXPECT_NE(reversed.out.find("audit.log.1:1: note: the chain starts anew"), std::string::npos) << reversed.out;
}

// korttid stopped and started again on the same audit file.
class AuditRestart : public SoftHsmDaemonTest {
 protected:
  // korttid started on the audit file `file`, one signature made and both
  // its lines written (the outcome's line follows the answer).
  void sign_once(const fs::path& file) {
    DaemonOptions o;
    o.audit_file = file;
    start(std::move(o));
    sign_digest(*daemon_->connect(), rsa_sign_cert(), "sha256");
    (void)daemon_->audit();
  }
  // `line` goes on from `before`: its seq is `seq` and its prev the hash
  // of `before`.
  static void expect_goes_on(const std::string& line, int seq, const std::string& before) {
    const Json j = Json::parse(line);
    EXPECT_EQ(j["seq"], seq) << line;
    EXPECT_EQ(j["prev"], wstr(sha256_of(before))) << line;
  }
  // Two runs of sign_once: the second run's first line goes on from the
  // first run's last (seq 3, prev its hash), and verify finds it intact.
  static void expect_one_chain(const fs::path& file) {
    const auto lines = raw_lines(file);
    ASSERT_EQ(lines.size(), 4U) << read_file(file);
    expect_goes_on(lines[2], 3, lines[1]);
    const auto r = verify({file});
    EXPECT_EQ(r.status, 0) << r.out;
  }
};

TEST_F(AuditRestart, ARestartCarriesOnTheChainOfTheFile) {
  TempDir keep;
  sign_once(keep / "audit.log");
  EXPECT_EQ(daemon_->stop(), 0);
  sign_once(keep / "audit.log");
  ASSERT_EQ(daemon_->audit().size(), 4U);
  expect_one_chain(keep / "audit.log");
}

// The machine stopped in the middle of a line, and the file system left
// zeros after it: the next korttid cuts that off (it was never acknowledged)
// and chains on from the last whole line, instead of gluing its first line
// to the fragment and breaking the chain there.
TEST_F(AuditRestart, AnUnfinishedLastLineIsCutOffAndTheChainCarriesOn) {
  TempDir keep;
  sign_once(keep / "audit.log");
  EXPECT_EQ(daemon_->stop(), 0);
  {
    std::ofstream out(keep / "audit.log", std::ios::app | std::ios::binary);
    out << R"({"time":"2026-12-03T10:00:00Z","action":"sign.dig)" << std::string(16, '\0');
  }
  sign_once(keep / "audit.log");
  expect_one_chain(keep / "audit.log");
  EXPECT_NE(daemon_->log().find("unfinished line"), std::string::npos) << daemon_->log();
}

// logrotate moved the file while korttid was stopped (its monthly run at
// night, then a reboot): the next start has only an empty path, and the
// head the clean stop left beside it links the new file to the old one.
TEST_F(AuditRestart, AFileMovedWhileKorttidWasStoppedIsStillLinked) {
  TempDir keep;
  const fs::path file = keep / "audit.log";
  sign_once(file);
  EXPECT_EQ(daemon_->stop(), 0);
  ASSERT_TRUE(fs::exists(keep / "audit.log.head"));
  fs::rename(file, keep / "audit.log.1");
  sign_once(file);
  EXPECT_FALSE(fs::exists(keep / "audit.log.head")) << "the first line after a start takes the head away";
  const auto old_lines = raw_lines(keep / "audit.log.1");
  const auto new_lines = raw_lines(file);
  ASSERT_EQ(old_lines.size(), 2U);
  ASSERT_EQ(new_lines.size(), 2U);
  expect_goes_on(new_lines[0], 3, old_lines[1]);
  const auto r = verify({keep / "audit.log.1", file});
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("OK: 4 lines"), std::string::npos) << r.out;
}

// Lines cut from the file while korttid was stopped: the chain goes on from
// where korttid stopped, so the cut shows as a break instead of vanishing.
TEST_F(AuditRestart, LinesCutWhileKorttidWasStoppedShowAsABreak) {
  TempDir keep;
  const fs::path file = keep / "audit.log";
  sign_once(file);
  sign_digest(*daemon_->connect(), rsa_sign_cert(), "sha256");
  ASSERT_EQ(daemon_->audit().size(), 4U);
  EXPECT_EQ(daemon_->stop(), 0);
  const auto before = raw_lines(file);
  ASSERT_EQ(before.size(), 4U);
  write_file(file, before[0] + "\n" + before[1] + "\n");  // the second signature's lines cut off
  sign_once(file);
  const auto lines = raw_lines(file);
  ASSERT_EQ(lines.size(), 4U);
  expect_goes_on(lines[2], 5, before[3]);
  EXPECT_NE(daemon_->log().find("it was changed or cut while korttid was stopped"), std::string::npos)
      << daemon_->log();
  const auto r = verify({file});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find(file.string() + ":2: BROKEN"), std::string::npos) << r.out;
}

// Emptied in place, the file alone cannot show what it held; the head can,
// the log says so, and the chain goes on from where it stood.
TEST_F(AuditRestart, AFileEmptiedWhileKorttidWasStoppedIsNamedInTheLog) {
  TempDir keep;
  const fs::path file = keep / "audit.log";
  sign_once(file);
  EXPECT_EQ(daemon_->stop(), 0);
  const auto before = raw_lines(file);
  ASSERT_EQ(before.size(), 2U);
  write_file(file, "");
  sign_once(file);
  const auto lines = raw_lines(file);
  ASSERT_EQ(lines.size(), 2U);
  expect_goes_on(lines[0], 3, before[1]);
  EXPECT_NE(daemon_->log().find("it was changed or cut while korttid was stopped"), std::string::npos)
      << daemon_->log();
}

// A second korttid on the same trail (started by hand while the service
// runs) gives up before it touches the file, and leaves no head behind
// that a later start would take for the chain's.
TEST_F(AuditRestart, ASecondKorttidOnTheSameTrailRefusesToStartAndLeavesItAlone) {
  TempDir keep;
  const fs::path file = keep / "audit.log";
  sign_once(file);
  DaemonOptions o;
  o.audit_file = file;
  o.wait_ready = false;
  o.env["SOFTHSM2_CONF"] = hsm_->conf().string();
  o.revocation = "ocsp = false\ncrl = false\n";
  Daemon second(std::move(o));
  EXPECT_NE(second.exit_status(), std::optional<int>(0));
  EXPECT_NE(second.log().find("another korttid is writing the audit file"), std::string::npos) << second.log();
  EXPECT_FALSE(fs::exists(keep / "audit.log.head"));
  sign_digest(*daemon_->connect(), rsa_sign_cert(), "sha256");
  ASSERT_EQ(daemon_->audit().size(), 4U);
  EXPECT_EQ(verify({file}).status, 0);
}

// A crash writes no head, and the start before it took the last one away:
// a file moved while korttid was down starts anew (a link verify reports
// it cannot check), never linked to a line that is not the last.
TEST_F(AuditRestart, AfterACrashNoStaleHeadLinksANewFile) {
  TempDir keep;
  const fs::path file = keep / "audit.log";
  sign_once(file);
  EXPECT_EQ(daemon_->stop(), 0);
  sign_once(file);
  EXPECT_EQ(daemon_->stop(SIGKILL), 128 + SIGKILL);
  EXPECT_FALSE(fs::exists(keep / "audit.log.head"));
  fs::rename(file, keep / "audit.log.1");
  sign_once(file);
  const auto lines = raw_lines(file);
  ASSERT_EQ(lines.size(), 2U);
  EXPECT_EQ(Json::parse(lines[0])["seq"], 1);
  EXPECT_EQ(Json::parse(lines[0])["prev"], "start");
  const auto r = verify({keep / "audit.log.1", file});
  EXPECT_EQ(r.status, 2) << r.out;
}

// A small tmpfs, filled: the card signs, but without its audit line the
// signature never leaves korttid.
class AuditOnAFullDisk : public SoftHsmDaemonTest {
 protected:
  void SetUp() override {
    fs::create_directories(mount_ / "x");
    ASSERT_EQ(::mount("tmpfs", mount_.c_str(), "tmpfs", 0, "size=16k"), 0)
        << "mounting a tmpfs needs root: " << std::strerror(errno);
    mounted_ = true;
    DaemonOptions o;
    o.audit_file = mount_ / "audit.log";
    start(std::move(o));
  }
  void TearDown() override {
    daemon_.reset();
    if (mounted_) ::umount2(mount_.c_str(), MNT_DETACH);
  }
  void fill() {
    std::ofstream out(mount_ / "filler", std::ios::binary);
    const std::string page(4096, 'x');
    while (out.write(page.data(), page.size()) && out.flush()) {
    }
  }

  TempDir mount_dir_;
  fs::path mount_ = mount_dir_ / "fs";
  bool mounted_ = false;
};

TEST_F(AuditOnAFullDisk, NoAuditLineNoSignature) {
  auto c = daemon_->connect();
  fill();  // before the first line: a line's page, once there, has room for more
  const auto e = rpc_error([&] { sign_digest(*c, rsa_sign_cert(), "sha256"); });
  EXPECT_EQ(e.code(), 1060);
  EXPECT_NE(std::string(e.what()).find("audit"), std::string::npos) << e.what();
  EXPECT_NE(daemon_->log().find("audit: cannot write"), std::string::npos);
  // A session that cannot be accounted for is not opened either.
  EXPECT_EQ(rpc_error([&] {
              c->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}});
            }).code(),
            1060);
  // Room again: signing and the chain carry on, with no half line between.
  fs::remove(mount_ / "filler");
  sign_digest(*c, rsa_sign_cert(), "sha256");
  ASSERT_EQ(daemon_->audit().size(), 2U);
  const auto lines = raw_lines(mount_ / "audit.log");
  ASSERT_EQ(lines.size(), 2U);
  const auto r = verify({mount_ / "audit.log"});
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(Json::parse(lines[0])["seq"], 1);
  EXPECT_EQ(daemon_->connect()->call("system.hello")["daemon"], "korttid");
}

}  // namespace
}  // namespace kortti::test
