#include <gtest/gtest.h>
#include <openssl/ecdsa.h>

#include "common/encoding.hpp"
#include "common/openssl.hpp"
#include "pkcs11/signing.hpp"

namespace kortti::pkcs11 {
namespace {

TEST(DigestInfo, MatchesTheDerPrefixesOfRfc8017) {
  // RFC 8017 section 9.2, note 1: T = prefix || H.
  const std::pair<DigestAlgorithm, const char*> cases[] = {
      {DigestAlgorithm::sha256, "3031300d060960864801650304020105000420"},
      {DigestAlgorithm::sha384, "3041300d060960864801650304020205000430"},
      {DigestAlgorithm::sha512, "3051300d060960864801650304020305000440"},
  };
  for (const auto& [alg, prefix] : cases) {
    const Bytes digest(digest_size(alg), 0xAB);
    EXPECT_EQ(hex_encode(digest_info(alg, digest)), prefix + hex_encode(digest)) << name_of(alg);
  }
}

TEST(Ecdsa, RawSignatureBecomesDerWithTheSameIntegers) {
  Bytes raw(96);
  for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<std::uint8_t>(i + 1);
  raw[0] = 0x80;  // high bit set: DER needs a leading zero
  const Bytes der = ecdsa_raw_to_der(raw);
  const unsigned char* p = der.data();
  const EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  ASSERT_NE(sig, nullptr);
  Bytes r(48), s(48);
  BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), r.data(), 48);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), s.data(), 48);
  EXPECT_EQ(r, Bytes(raw.begin(), raw.begin() + 48));
  EXPECT_EQ(s, Bytes(raw.begin() + 48, raw.end()));
  EXPECT_THROW(ecdsa_raw_to_der(Bytes(5)), Error);
}

TEST(Schemes, DefaultsAndFit) {
  EXPECT_EQ(default_scheme(KeyType::rsa), Scheme::pkcs1);
  EXPECT_EQ(default_scheme(KeyType::ec), Scheme::ecdsa);
  EXPECT_NO_THROW(check_scheme_fits(Scheme::pss, KeyType::rsa));
  EXPECT_THROW(check_scheme_fits(Scheme::ecdsa, KeyType::rsa), Error);
  EXPECT_THROW(check_scheme_fits(Scheme::pkcs1, KeyType::ec), Error);
}

TEST(Schemes, AlgorithmNamesAreOpenSslNames) {
  EXPECT_EQ(signature_algorithm_name(Scheme::pkcs1, DigestAlgorithm::sha256), "sha256WithRSAEncryption");
  EXPECT_EQ(signature_algorithm_name(Scheme::ecdsa, DigestAlgorithm::sha384), "ecdsa-with-SHA384");
  EXPECT_EQ(signature_algorithm_name(Scheme::pss, DigestAlgorithm::sha512), "rsassaPss");
}

TEST(Schemes, PssParametersUseTheDigestForHashMgfAndSalt) {
  const auto p = pss_params(DigestAlgorithm::sha384);
  EXPECT_EQ(p.hashAlg, static_cast<CK_MECHANISM_TYPE>(CKM_SHA384));
  EXPECT_EQ(p.mgf, static_cast<CK_RSA_PKCS_MGF_TYPE>(CKG_MGF1_SHA384));
  EXPECT_EQ(p.sLen, 48U);
}

}  // namespace
}  // namespace kortti::pkcs11
