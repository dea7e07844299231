// What the logs say about a signature — and that no PIN is ever among it.

#include "tests/integration/softhsm_fixture.hpp"

namespace kortti::test {
namespace {

using Audit = SoftHsmDaemonTest;

std::vector<Json> audit_lines(const Daemon& d) {
  std::vector<Json> out;
  std::istringstream in(read_file(d.dir() / "audit.log"));
  for (std::string line; std::getline(in, line);) out.push_back(Json::parse(line));
  return out;
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
  const auto lines = audit_lines(*daemon_);
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
  const auto lines = audit_lines(*daemon_);
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_EQ(lines[0]["action"], "session.login");
  EXPECT_EQ(lines[0]["token_id"], wstr(token_ids_.at("cardA")));
  EXPECT_EQ(lines[0]["outcome"], "ok");
}

}  // namespace
}  // namespace kortti::test
