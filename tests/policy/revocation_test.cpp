// Revocation against real peers: `openssl ocsp` responders answering from the
// test CAs' databases, CRLs the CAs signed, and a port nobody listens on.

#include "tests/policy/policy_fixture.hpp"

namespace kortti::test {
namespace {

class Revocation : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "---- korttid log ----\n" << daemon_->daemon().log() << "\n";
  }
  PolicyDaemon& start(std::vector<std::string> items, std::string revocation) {
    PolicyDaemonOptions o;
    o.items = std::move(items);
    o.revocation = std::move(revocation);
    daemon_ = std::make_unique<PolicyDaemon>(std::move(o));
    return *daemon_;
  }
  static Json prescription() { return {{"atc_codes", Json::array({"J01CA04"})}}; }

  std::unique_ptr<PolicyDaemon> daemon_;
};

TEST_F(Revocation, OcspGoodFromTheResponderTheCertificateNamesThenCachedUntilNextUpdate) {
  OcspResponder rsa("hc-rsa");
  auto& d = start({"physician/sign"}, "crl = false\n");
  const Json first = d.check_cert(1, "sign.prescription", prescription());
  EXPECT_TRUE(first["allowed"].get<bool>()) << first.dump(2);
  const Json& r = first["certificate"]["revocation"];
  EXPECT_EQ(str(r["method"]), "ocsp");
  EXPECT_EQ(str(r["status"]), "good");
  EXPECT_EQ(str(r["source"]), rsa.url());
  EXPECT_FALSE(r["cached"].get<bool>());
  EXPECT_FALSE(r.contains("fail_mode"));

  // The responder says nextUpdate is ten minutes on: no second request.
  const Json second = d.check_cert(1, "sign.prescription", prescription());
  EXPECT_TRUE(second["certificate"]["revocation"]["cached"].get<bool>()) << second.dump(2);
  EXPECT_EQ(rsa.requests(), 1) << rsa.log();
}

TEST_F(Revocation, OcspRevokedSaysWhenAndWhy) {
  OcspResponder rsa("hc-rsa");
  auto& d = start({"revoked/sign"}, "crl = false\n");
  const Json j = d.check_cert(1, "sign.document");
  EXPECT_FALSE(j["allowed"].get<bool>());
  EXPECT_EQ(codes(j["reasons"]), std::vector<std::string>{"certificate_revoked"});
  const Json& r = j["certificate"]["revocation"];
  EXPECT_EQ(str(r["method"]), "ocsp");
  EXPECT_EQ(str(r["status"]), "revoked");
  EXPECT_EQ(str(r["reason"]), "keyCompromise");
  EXPECT_TRUE(r.contains("revoked_at")) << j.dump(2);
  EXPECT_EQ(str(j["certificate"]["status"]), "revoked");
}

TEST_F(Revocation, OcspEcCertificateOfTheOtherCaAskedAtItsOwnResponder) {
  OcspResponder ec("hc-ec");
  auto& d = start({"specialist/sign"}, "crl = false\n");
  const Json j = d.check_cert(1, "sign.prescription", prescription());
  EXPECT_TRUE(j["allowed"].get<bool>()) << j.dump(2);
  EXPECT_EQ(str(j["certificate"]["revocation"]["source"]), ec.url());
  EXPECT_EQ(ec.requests(), 1);
}

// A responder whose database lacks the certificate answers "unknown": that is
// no answer, so with CRLs off the fail mode decides.
TEST_F(Revocation, OcspUnknownIsNoAnswerAndHardFailDenies) {
  TempDir dir;
  write_file(dir / "index.txt", "");
  OcspResponder empty("hc-rsa", closed_port(), dir / "index.txt");
  auto& d = start({"physician/sign"}, "crl = false\nocsp_url = \"" + empty.url() + "\"\n");
  const Json j = d.check_cert(1, "sign.prescription", prescription());
  EXPECT_FALSE(j["allowed"].get<bool>());
  EXPECT_EQ(codes(j["reasons"]), std::vector<std::string>{"certificate_revocation_unknown"});
  const Json& r = j["certificate"]["revocation"];
  EXPECT_EQ(str(r["status"]), "unavailable");
  EXPECT_EQ(str(r["fail_mode"]), "hard-fail");
  EXPECT_NE(str(r["reason"]).find("does not know"), std::string::npos) << j.dump(2);
  EXPECT_EQ(empty.requests(), 1);
}

TEST_F(Revocation, OcspUnknownFallsBackToTheCrlWhenCrlsAreOn) {
  TempDir dir;
  write_file(dir / "index.txt", "");
  OcspResponder empty("hc-rsa", closed_port(), dir / "index.txt");
  auto& d = start({"revoked/sign"}, "ocsp_url = \"" + empty.url() + "\"\n");
  const Json j = d.check_cert(1, "sign.prescription", prescription());
  EXPECT_EQ(codes(j["reasons"]), std::vector<std::string>{"certificate_revoked"}) << j.dump(2);
  EXPECT_EQ(str(j["certificate"]["revocation"]["method"]), "crl");
}

TEST_F(Revocation, ResponderDownHardFailDeniesAndSaysSo) {
  const int port = closed_port();
  auto& d = start({"physician/sign"}, "crl = false\nocsp_url = \"http://127.0.0.1:" + std::to_string(port) + "\"\n");
  const Json j = d.check_cert(1, "sign.prescription", prescription());
  EXPECT_FALSE(j["allowed"].get<bool>());
  EXPECT_EQ(codes(j["reasons"]), std::vector<std::string>{"certificate_revocation_unknown"});
  EXPECT_EQ(str(j["certificate"]["status"]), "revocation_unknown");
  EXPECT_EQ(str(j["certificate"]["revocation"]["fail_mode"]), "hard-fail");
}

TEST_F(Revocation, ResponderDownSoftFailAllowsWithAWarningThatSaysSo) {
  const int port = closed_port();
  auto& d = start({"physician/sign"}, "crl = false\nocsp_url = \"http://127.0.0.1:" + std::to_string(port) +
                                          "\"\n[revocation.fail_mode]\nsign_prescription = \"soft-fail\"\n");
  const Json j = d.check_cert(1, "sign.prescription", prescription());
  EXPECT_TRUE(j["allowed"].get<bool>()) << j.dump(2);
  EXPECT_EQ(codes(j["warnings"]), std::vector<std::string>{"revocation_soft_fail"});
  EXPECT_EQ(str(j["certificate"]["status"]), "valid");
  EXPECT_EQ(str(j["certificate"]["revocation"]["status"]), "unavailable");
  EXPECT_EQ(str(j["certificate"]["revocation"]["fail_mode"]), "soft-fail");
}

TEST_F(Revocation, DefaultFailModesHardForSignaturesSoftForAuthentication) {
  const int port = closed_port();
  auto& d = start({"physician/sign", "physician/auth"},
                  "crl = false\nocsp_url = \"http://127.0.0.1:" + std::to_string(port) + "\"\n");
  const Json sign = d.check_cert(1, "sign.document");
  EXPECT_FALSE(sign["allowed"].get<bool>());
  EXPECT_EQ(str(sign["certificate"]["revocation"]["fail_mode"]), "hard-fail");
  const Json auth = d.check_cert(2, "authenticate");
  EXPECT_TRUE(auth["allowed"].get<bool>()) << auth.dump(2);
  EXPECT_EQ(str(auth["certificate"]["revocation"]["fail_mode"]), "soft-fail");
}

TEST_F(Revocation, CrlFromAConfiguredFile) {
  const auto crl = pki_dir() / "ca" / "hc-rsa" / "crl.pem";
  auto& d = start({"physician/sign", "revoked/sign"},
                  "ocsp = false\ncrl_fetch = false\ncrl_files = [\"" + crl.string() + "\"]\n");
  const Json good = d.check_cert(1, "sign.prescription", prescription());
  EXPECT_TRUE(good["allowed"].get<bool>()) << good.dump(2);
  EXPECT_EQ(str(good["certificate"]["revocation"]["method"]), "crl");
  EXPECT_EQ(str(good["certificate"]["revocation"]["status"]), "good");
  EXPECT_EQ(str(good["certificate"]["revocation"]["source"]), crl.string());

  const Json revoked = d.check_cert(2, "sign.prescription", prescription());
  EXPECT_EQ(codes(revoked["reasons"]), std::vector<std::string>{"certificate_revoked"}) << revoked.dump(2);
  EXPECT_EQ(str(revoked["certificate"]["revocation"]["reason"]), "keyCompromise");
}

TEST_F(Revocation, CrlFromTheDistributionPointTheCertificateNames) {
  auto& d = start({"revoked/sign"}, "ocsp = false\n");
  const Json j = d.check_cert(1, "sign.document");
  EXPECT_EQ(codes(j["reasons"]), std::vector<std::string>{"certificate_revoked"}) << j.dump(2);
  EXPECT_EQ(str(j["certificate"]["revocation"]["source"]),
            "file://" + (pki_dir() / "ca" / "hc-rsa" / "crl.pem").string());
}

TEST_F(Revocation, ACrlOfAnotherCaIsNotTakenAsAnAnswer) {
  // The EC CA's CRL says nothing about the RSA CA's certificates.
  const auto other = pki_dir() / "ca" / "hc-ec" / "crl.pem";
  auto& d = start({"revoked/sign"}, "ocsp = false\ncrl_fetch = false\ncrl_files = [\"" + other.string() + "\"]\n");
  const Json j = d.check_cert(1, "sign.prescription", prescription());
  EXPECT_EQ(codes(j["reasons"]), std::vector<std::string>{"certificate_revocation_unknown"}) << j.dump(2);
}

TEST_F(Revocation, OcspSignedByAResponderOfAnotherCaIsRejected) {
  // A responder that chains to a trusted root, but was delegated by another
  // CA, says "good" about a revoked certificate: not an answer.
  OcspResponder wrong("hc-rsa", closed_port(), std::nullopt, "hc-ec");
  auto& d = start({"revoked/sign"}, "crl = false\nocsp_url = \"" + wrong.url() + "\"\n");
  const Json j = d.check_cert(1, "sign.prescription", prescription());
  EXPECT_EQ(codes(j["reasons"]), std::vector<std::string>{"certificate_revocation_unknown"}) << j.dump(2);
  EXPECT_NE(str(j["certificate"]["revocation"]["reason"]).find("signature does not verify"), std::string::npos)
      << j.dump(2);
  EXPECT_EQ(wrong.requests(), 1);
}

}  // namespace
}  // namespace kortti::test
