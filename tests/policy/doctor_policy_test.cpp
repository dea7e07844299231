// `kortti doctor` on certificates the policy refuses: an expired card and a
// card from a root korttid does not trust, beside a good one.

#include "tests/support/policy_fixture.hpp"

namespace kortti::test {
namespace {

TEST(DoctorPolicy, AnExpiredCardAndAnUntrustedRootAreNamedWithTheirAdvice) {
  PolicyDaemonOptions o;
  o.items = {"physician/sign", "expired/sign", "impostor/sign"};
  o.revocation = crl_only();
  PolicyDaemon d(std::move(o));
  auto r = run({kortti_binary().string(), "--socket", d.daemon().socket(), "--json", "doctor"});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  std::map<std::string, Json> by_cert;  // cert_id -> finding
  for (const auto& f : Json::parse(r.out))
    if (f["check"] == "certificate")
      for (int n = 1; n <= 3; ++n)
        if (str(f["message"]).find(d.cert_id(n) + ",") != std::string::npos) by_cert[d.cert_id(n)] = f;
  ASSERT_EQ(by_cert.size(), 3U) << r.out;

  const Json& good = by_cert[d.cert_id(1)];
  EXPECT_EQ(good["verdict"], "ok") << good.dump();
  EXPECT_NE(str(good["message"]).find("revocation crl good"), std::string::npos) << good.dump();

  const Json& expired = by_cert[d.cert_id(2)];
  EXPECT_EQ(expired["verdict"], "fail") << expired.dump();
  EXPECT_NE(str(expired["message"]).find(": expired"), std::string::npos) << expired.dump();
  EXPECT_NE(str(expired["hint"]).find("renewing"), std::string::npos) << expired.dump();

  const Json& impostor = by_cert[d.cert_id(3)];
  EXPECT_EQ(impostor["verdict"], "fail") << impostor.dump();
  EXPECT_NE(str(impostor["message"]).find(": untrusted"), std::string::npos) << impostor.dump();
  EXPECT_NE(str(impostor["hint"]).find("/etc/korttid/trust"), std::string::npos) << impostor.dump();
  EXPECT_NE(str(impostor["hint"]).find("leads to its issuer \""), std::string::npos) << impostor.dump();
  EXPECT_TRUE(d.daemon().running());
}

}  // namespace
}  // namespace kortti::test
