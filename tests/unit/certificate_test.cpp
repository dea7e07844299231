#include <gtest/gtest.h>

#include "pkcs11/certificate.hpp"
#include "tests/support/support.hpp"

namespace kortti::pkcs11 {
namespace {

Bytes der_of(const std::string& person, const std::string& purpose) {
  auto r = test::run({"openssl", "x509", "-in", (test::pki_dir() / "people" / person / (purpose + ".pem")).string(),
                      "-outform", "DER"});
  return Bytes(r.out.begin(), r.out.end());
}

TEST(Certificate, DescribesAnRsaSignatureCertificate) {
  CertificateInfo c;
  c.der = der_of("physician", "sign");
  describe_certificate(c);
  EXPECT_EQ(c.key_type, KeyType::rsa);
  EXPECT_EQ(c.key_bits, 2048);
  EXPECT_EQ(c.purposes, std::vector<Purpose>{Purpose::signature});
  EXPECT_NE(c.subject.find("CN=Testilääkäri Aino"), std::string::npos) << c.subject;
  EXPECT_NE(c.issuer.find("CN=kortti TEST CA for Social Welfare and Healthcare Prof. Certs"), std::string::npos);
  EXPECT_LT(c.not_before, c.not_after);
  EXPECT_FALSE(c.serial.empty());
}

TEST(Certificate, DescribesAnEcAuthenticationCertificate) {
  CertificateInfo c;
  c.der = der_of("specialist", "auth");
  describe_certificate(c);
  EXPECT_EQ(c.key_type, KeyType::ec);
  EXPECT_EQ(c.curve, "P-384");
  EXPECT_EQ(c.purposes, std::vector<Purpose>{Purpose::authentication});
}

// The token skips such a certificate with a warning (Token::certificates).
TEST(Certificate, RefusesAKeyThatIsNeitherRsaNorEc) {
  test::TempDir dir;
  const auto made = test::run({"openssl", "req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout",
                               (dir / "k.pem").string(), "-subj", "/CN=Ed25519 on a PIV token", "-days", "2",
                               "-outform", "DER", "-out", (dir / "c.der").string()});
  ASSERT_EQ(made.status, 0) << made.err;
  CertificateInfo c;
  c.der = test::read_bytes(dir / "c.der");
  try {
    describe_certificate(c);
    FAIL() << "taken for " << (c.key_type == KeyType::rsa ? "RSA" : "EC");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::unsupported);
    EXPECT_NE(std::string(e.what()).find("ED25519, neither RSA nor EC"), std::string::npos) << e.what();
  }
}

TEST(Certificate, RejectsJunk) {
  CertificateInfo c;
  c.der = {0x30, 0x03, 0x02, 0x01, 0x01};
  EXPECT_THROW(describe_certificate(c), Error);
}

}  // namespace
}  // namespace kortti::pkcs11
