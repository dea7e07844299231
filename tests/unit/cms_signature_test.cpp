// signature/cms: CAdES-BES structures that `openssl cms -verify -cades`
// accepts, and our own verifier's verdict on them and on tampered ones. The
// card's part is done with the test PKI's PEM key; tests/documents/ do it
// through korttid and a token.

#include <gtest/gtest.h>

#include "common/error.hpp"
#include "common/openssl.hpp"
#include "signature/signature.hpp"
#include "tests/support/support.hpp"
#include "tests/support/thrown.hpp"

namespace kortti::test {
namespace {

using signature::CmsInput;

struct Signer {
  Bytes certificate;
  std::vector<Bytes> chain;
  fs::path key;
};

Signer signer(const std::string& person) {
  const fs::path dir = pki_dir() / "people" / person;
  auto der_of = [](const fs::path& pem) { return pem_certificates(pem).at(0); };
  const bool ec = person == "specialist";
  return {der_of(dir / "sign.pem"), {der_of(pki_dir() / (ec ? "ca/hc-ec.pem" : "ca/hc-rsa.pem"))}, dir / "sign.key"};
}

Bytes sign(const CmsInput& input, const Signer& s) {
  const signature::PreparedCms prepared = signature::prepare_cms(input, s.certificate, s.chain);
  return prepared.finish(
      sign_like_a_token(s.key, prepared.digest_algorithm, prepared.digest, input.scheme == Scheme::pss));
}

const Bytes kContent = {'R', 'e', 'p', 'o', 'r', 't', ' ', '4', '2'};

struct Case {
  const char* name;
  const char* person;
  Scheme scheme;
  DigestAlgorithm digest;
  bool detached;
  bool from_digest;
};

class CmsSignature : public ::testing::TestWithParam<Case> {};

TEST_P(CmsSignature, OpensslVerifiesItAndBothDetectTampering) {
  const Case& c = GetParam();
  const Signer s = signer(c.person);
  CmsInput input;
  input.scheme = c.scheme;
  input.digest_algorithm = c.digest;
  input.detached = c.detached;
  if (c.from_digest)
    input.content_digest = digest(c.digest, kContent);
  else
    input.content = kContent;
  const Bytes cms = sign(input, s);

  const auto ok = cms_verify(cms, c.detached ? std::optional<Bytes>(kContent) : std::nullopt);
  ASSERT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(ok.out, std::string(kContent.begin(), kContent.end()));

  const auto mine = signature::verify_cms(cms, c.detached ? std::optional<Bytes>(kContent) : std::nullopt, {});
  EXPECT_EQ(mine.detached, c.detached);
  ASSERT_EQ(mine.signers.size(), 1U);
  EXPECT_TRUE(mine.signers[0].valid) << mine.signers[0].message;
  EXPECT_EQ(mine.signers[0].certificate, s.certificate);
  EXPECT_EQ(mine.signers[0].digest_algorithm, name_of(c.digest));
  ASSERT_TRUE(mine.signers[0].signing_time.has_value());

  if (c.detached) {
    // Other content than was signed.
    Bytes other = kContent;
    other.back() = '3';
    EXPECT_NE(cms_verify(cms, other).status, 0);
    const auto bad = signature::verify_cms(cms, other, {});
    EXPECT_FALSE(bad.signers[0].valid);
    EXPECT_TRUE(bad.signers[0].signature_value_valid);
    EXPECT_FALSE(bad.signers[0].content_digest_valid);
    // The digest alone verifies too.
    EXPECT_TRUE(signature::verify_cms(cms, {}, digest(c.digest, kContent)).signers[0].valid);
    // Both: one would go unchecked.
    const auto both = thrown<Error>([&] { (void)signature::verify_cms(cms, other, digest(c.digest, kContent)); },
                                    "verify_cms took content and digest");
    ASSERT_TRUE(both);
    EXPECT_EQ(both->code(), Errc::invalid_params);
  } else {
    // A digest beside a signature that carries its content would not be
    // checked: a digest of other content must not come back valid.
    Bytes other = kContent;
    other.back() = '3';
    const auto beside = thrown<Error>([&] { (void)signature::verify_cms(cms, {}, digest(c.digest, other)); },
                                      "verify_cms ignored the digest");
    ASSERT_TRUE(beside);
    EXPECT_EQ(beside->code(), Errc::invalid_params);
    // The attached content, changed in place (same length).
    Bytes tampered = cms;
    const auto at = std::search(tampered.begin(), tampered.end(), kContent.begin(), kContent.end());
    ASSERT_NE(at, tampered.end());
    *(at + static_cast<std::ptrdiff_t>(kContent.size()) - 1) = '3';
    EXPECT_NE(cms_verify(tampered).status, 0);
    const auto bad = signature::verify_cms(tampered, {}, {});
    EXPECT_FALSE(bad.signers[0].valid);
    EXPECT_FALSE(bad.signers[0].content_digest_valid);
    EXPECT_EQ(bad.signers[0].message, "the content does not match the signed messageDigest");
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cades, CmsSignature,
    ::testing::Values(Case{"Rsa2048Pkcs1Attached", "physician", Scheme::pkcs1, DigestAlgorithm::sha256, false, false},
                      Case{"Rsa2048Pkcs1Detached", "physician", Scheme::pkcs1, DigestAlgorithm::sha256, true, false},
                      Case{"Rsa2048PssAttached", "physician", Scheme::pss, DigestAlgorithm::sha256, false, false},
                      Case{"Rsa2048PssFromDigest", "physician", Scheme::pss, DigestAlgorithm::sha512, true, true},
                      Case{"EcP384Attached", "specialist", Scheme::ecdsa, DigestAlgorithm::sha384, false, false},
                      Case{"EcP384FromDigest", "specialist", Scheme::ecdsa, DigestAlgorithm::sha384, true, true}),
    [](const auto& p) { return std::string(p.param.name); });

TEST(CmsSignature, CarriesTheCadesBesAttributes) {
  CmsInput input;
  input.content = kContent;
  const Bytes cms = sign(input, signer("physician"));
  TempDir tmp;
  write_bytes(tmp / "sig.der", cms);
  const auto printed =
      run({"openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", (tmp / "sig.der").string()});
  ASSERT_EQ(printed.status, 0) << printed.err;
  for (const char* attribute : {"contentType", "signingTime", "messageDigest", "id-smime-aa-signingCertificateV2"})
    EXPECT_NE(printed.out.find(attribute), std::string::npos) << attribute;
}

TEST(CmsSignature, ASchemeThatDoesNotFitTheKeyIsRefused) {
  CmsInput input;
  input.content = kContent;
  input.scheme = Scheme::ecdsa;
  const Signer s = signer("physician");
  const auto e = thrown<Error>([&] { (void)signature::prepare_cms(input, s.certificate, s.chain); },
                               "an RSA key was accepted for ecdsa");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::unsupported);
}

TEST(CmsSignature, SignersTakingTurnsOnOneThreadEachGetTheirOwnCertificate) {
  // signature/ keeps the certificate it parsed last: a signer after another
  // must not sign under the one before (or with its key type).
  const Signer rsa = signer("physician");
  const Signer ec = signer("specialist");
  const Signer nurse = signer("nurse");
  for (const Signer* s : {&rsa, &ec, &nurse, &rsa, &ec}) {
    CmsInput input;
    input.content = kContent;
    input.scheme = s == &ec ? Scheme::ecdsa : Scheme::pkcs1;
    input.digest_algorithm = s == &ec ? DigestAlgorithm::sha384 : DigestAlgorithm::sha256;
    const auto v = signature::verify_cms(sign(input, *s), {}, {});
    ASSERT_EQ(v.signers.size(), 1U);
    EXPECT_TRUE(v.signers[0].valid) << v.signers[0].message;
    EXPECT_EQ(v.signers[0].certificate, s->certificate);
  }
  // And a certificate that is not one, after a good one, is refused.
  CmsInput input;
  input.content = kContent;
  const Bytes broken(rsa.certificate.begin(), rsa.certificate.begin() + 100);
  const auto e = thrown<Error>([&] { (void)signature::prepare_cms(input, broken, {}); }, "a cut certificate was taken");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::unsupported);
}

TEST(CmsSignature, AnAttachedSignatureFromADigestIsRefused) {
  CmsInput input;
  input.content_digest = digest(DigestAlgorithm::sha256, kContent);
  const Signer s = signer("physician");
  const auto e =
      thrown<Error>([&] { (void)signature::prepare_cms(input, s.certificate, s.chain); }, "attached without content");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::invalid_params);
}

TEST(CmsSignature, BytesThatAreNotCmsAreRefused) {
  const auto e = thrown<Error>([&] { (void)signature::verify_cms(kContent, {}, {}); }, "accepted");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::document_invalid);
  EXPECT_EQ(e->detail, "not_cms");
}

TEST(CmsSignature, ASignatureByAnotherKeyFailsItsValue) {
  // The physician's CMS with the value of another signer: the certificate stays, the value cannot verify.
  CmsInput input;
  input.content = kContent;
  const Signer s = signer("physician");
  const signature::PreparedCms prepared = signature::prepare_cms(input, s.certificate, s.chain);
  const Bytes forged = prepared.finish(
      sign_like_a_token(pki_dir() / "people/nurse/sign.key", prepared.digest_algorithm, prepared.digest));
  const auto v = signature::verify_cms(forged, {}, {});
  EXPECT_FALSE(v.signers[0].valid);
  EXPECT_FALSE(v.signers[0].signature_value_valid);
  EXPECT_NE(cms_verify(forged).status, 0);
}

}  // namespace
}  // namespace kortti::test
