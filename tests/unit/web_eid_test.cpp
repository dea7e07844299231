// signature/web_eid: the challenge's form, the algorithm a key makes, the JWS
// form of ECDSA signatures, and the token check — for a P-256 key made here
// (the test PKI's EC keys are P-384; tests/integration/auth_token_test.cpp
// takes those and RSA through korttid and the openssl CLI).

#include <gtest/gtest.h>

#include "common/encoding.hpp"
#include "common/error.hpp"
#include "common/openssl.hpp"
#include "common/origin.hpp"
#include "signature/signature.hpp"
#include "tests/support/support.hpp"
#include "tests/support/thrown.hpp"

namespace kortti::test {
namespace {

using namespace signature;

TEST(WebEid, OriginsAreHttpsHostAndPortOnly) {
  for (const char* good : {"https://a.fi", "https://sso.example.fi:8443", "https://localhost", "https://127.0.0.1:1",
                           "https://[::1]:65535", "https://[2001:db8::1]", "https://xn--sairaala-0za.fi"})
    EXPECT_NO_THROW(check_web_origin(good)) << good;
  for (const char* bad : {"",
                          "https://",
                          "http://a.fi",
                          "https:/a.fi",
                          "https://a.fi/",
                          "https://a.fi/x",
                          "https://a.fi?",
                          "https://a.fi#",
                          "https://u@a.fi",
                          "https://u:p@a.fi",
                          "https://a.fi:",
                          "https://a.fi:0",
                          "https://a.fi:65536",
                          "https://a.fi:1x",
                          "https://a fi",
                          "https://[::1",
                          "https://[::1]x",
                          "https://[::g]",
                          "https://a.fi\n",
                          "https://[]",
                          "https://[:::]",
                          "https://[1.2.3.4]",
                          "https://-.",
                          "https://-a.fi",
                          "https://a-.fi",
                          "https://a..fi",
                          "https://.a.fi",
                          "https://a.fi.",
                          "wss://a.fi"}) {
    const auto e = thrown<Error>([&] { check_web_origin(bad); });
    ASSERT_TRUE(e) << bad;
    EXPECT_EQ(e->code(), Errc::invalid_params) << bad;
  }
}

TEST(WebEid, NoncesAreAtLeast44Base64Characters) {
  EXPECT_NO_THROW(check_web_eid_nonce(std::string(44, 'A')));
  EXPECT_NO_THROW(check_web_eid_nonce(base64_encode(random_bytes(32))));
  EXPECT_NO_THROW(check_web_eid_nonce(std::string(1024, '/')));
  for (const std::string& bad : {std::string(43, 'A'), std::string(1025, 'A'), std::string(43, 'A') + "-",
                                 std::string(43, 'A') + " ", std::string(43, 'A') + "\xc3\xa4"})
    EXPECT_TRUE(thrown<Error>([&] { check_web_eid_nonce(bad); })) << bad;
}

TEST(WebEid, EachKeyMakesTheAlgorithmWebEidNamesForIt) {
  EXPECT_EQ(web_eid_algorithm_for(KeyType::rsa, "", true).name, "PS256");
  EXPECT_EQ(web_eid_algorithm_for(KeyType::rsa, "", false).name, "RS256");
  EXPECT_EQ(web_eid_algorithm_for(KeyType::ec, "P-256", true).name, "ES256");
  EXPECT_EQ(web_eid_algorithm_for(KeyType::ec, "P-384", true).name, "ES384");
  EXPECT_EQ(web_eid_algorithm_for(KeyType::ec, "P-521", true).name, "ES512");
  EXPECT_EQ(web_eid_algorithm_for(KeyType::ec, "P-384", true).digest, DigestAlgorithm::sha384);
  const auto e = thrown<Error>([] { (void)web_eid_algorithm_for(KeyType::ec, "brainpoolP256r1", true); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::unsupported);
  for (const char* name : {"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512"})
    EXPECT_NE(parse_web_eid_algorithm(name), nullptr) << name;
  for (const char* name : {"", "HS256", "none", "es256", "EdDSA"}) EXPECT_EQ(parse_web_eid_algorithm(name), nullptr);
}

TEST(WebEid, TheCardSignsTheHashOfBothHashes) {
  const std::string origin = "https://sso.example.fi";
  const std::string nonce(44, 'n');
  auto bytes = [](const std::string& s) { return Bytes(s.begin(), s.end()); };
  Bytes both = digest(DigestAlgorithm::sha384, bytes(origin));
  const Bytes second = digest(DigestAlgorithm::sha384, bytes(nonce));
  both.insert(both.end(), second.begin(), second.end());
  EXPECT_EQ(web_eid_digest(*parse_web_eid_algorithm("ES384"), origin, nonce), digest(DigestAlgorithm::sha384, both));
  EXPECT_NE(web_eid_digest(*parse_web_eid_algorithm("ES384"), origin + ":443", nonce),
            digest(DigestAlgorithm::sha384, both));
}

TEST(WebEid, EcdsaSignaturesTravelAsFixedLengthRAndS) {
  // r with its high bit set (DER adds a zero byte) and s short (DER drops
  // leading zeros): both come back as 32 bytes each.
  Bytes raw(64, 0);
  raw[0] = 0x80;
  raw[31] = 1;
  raw[63] = 7;
  const auto der = ecdsa_raw_to_der(raw);
  ASSERT_TRUE(der);
  EXPECT_EQ(ecdsa_der_to_raw(*der, 32), raw);
  EXPECT_FALSE(ecdsa_der_to_raw(*der, 16)) << "r does not fit 16 bytes";
  Bytes trailing = *der;
  trailing.push_back(0);
  EXPECT_FALSE(ecdsa_der_to_raw(trailing, 32));
  EXPECT_FALSE(ecdsa_der_to_raw(Bytes{0x30, 0x00}, 32));
}

TEST(WebEid, AnEs256TokenFromAP256KeyHoldsOnlyForItsOriginAndNonce) {
  TempDir dir;
  const fs::path key = dir / "key.pem";
  const fs::path cert = dir / "cert.pem";
  auto made = run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                   "-keyout", key.string(), "-out", cert.string(), "-subj", "/CN=P-256 test", "-days", "1"});
  ASSERT_EQ(made.status, 0) << made.err;

  const std::string origin = "https://ehr.example.fi";
  const std::string nonce = base64_encode(random_bytes(32));
  const WebEidAlgorithm& algorithm = web_eid_algorithm_for(KeyType::ec, "P-256", true);
  const Bytes der_signature = sign_like_a_token(key, algorithm.digest, web_eid_digest(algorithm, origin, nonce));
  WebEidToken token;
  token.certificate = pem_certificates(cert).at(0);
  token.algorithm = std::string(algorithm.name);
  token.signature = web_eid_signature(algorithm, "P-256", der_signature);
  ASSERT_EQ(token.signature.size(), 64U);

  EXPECT_TRUE(verify_web_eid_token(token, origin, nonce).valid()) << verify_web_eid_token(token, origin, nonce).message;
  EXPECT_EQ(verify_web_eid_token(token, "https://other.example.fi", nonce).reason, "signature_invalid");
  EXPECT_EQ(verify_web_eid_token(token, origin, base64_encode(random_bytes(32))).reason, "signature_invalid");
  WebEidToken es384 = token;
  es384.algorithm = "ES384";
  EXPECT_EQ(verify_web_eid_token(es384, origin, nonce).reason, "algorithm_mismatch");
  WebEidToken ps256 = token;
  ps256.algorithm = "PS256";
  EXPECT_EQ(verify_web_eid_token(ps256, origin, nonce).reason, "algorithm_mismatch");
  WebEidToken older = token;
  older.format = "web-eid:1";
  EXPECT_TRUE(verify_web_eid_token(older, origin, nonce).valid());
  older.format = "web-eid:10";
  EXPECT_EQ(verify_web_eid_token(older, origin, nonce).reason, "format_unsupported");
  WebEidToken truncated = token;
  truncated.signature.pop_back();
  EXPECT_EQ(verify_web_eid_token(truncated, origin, nonce).reason, "signature_invalid");
}

}  // namespace
}  // namespace kortti::test
