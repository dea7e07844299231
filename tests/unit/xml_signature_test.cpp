// signature/xml: the templates, digests and values that xmlsec1 accepts.
// The card's part (one signature over SignedInfo's digest) is done here with
// the test PKI's PEM key; tests/documents/ do it through korttid and a token.

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/error.hpp"
#include "common/openssl.hpp"
#include "signature/signature.hpp"
#include "tests/support/support.hpp"

namespace kortti::test {
namespace {

using signature::Profile;

// Signs `digest` the way the token does: PKCS#1 v1.5 for RSA, DER ECDSA for EC.
Bytes sign_like_a_token(const fs::path& key_pem, DigestAlgorithm alg, const Bytes& digest) {
  BioPtr bio(BIO_new_file(key_pem.c_str(), "r"));
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr),
                                                          EVP_PKEY_free);
  EXPECT_TRUE(key);
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new(key.get(), nullptr),
                                                                  EVP_PKEY_CTX_free);
  EVP_PKEY_sign_init(ctx.get());
  if (EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_RSA) EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING);
  EVP_PKEY_CTX_set_signature_md(ctx.get(), evp_md(alg));
  std::size_t len = 0;
  EVP_PKEY_sign(ctx.get(), nullptr, &len, digest.data(), digest.size());
  Bytes sig(len);
  EXPECT_EQ(EVP_PKEY_sign(ctx.get(), sig.data(), &len, digest.data(), digest.size()), 1);
  sig.resize(len);
  return sig;
}

std::string sign(const std::string& document, Profile profile, const std::string& person) {
  const fs::path dir = pki_dir() / "people" / person;
  BioPtr bio(BIO_new_file((dir / "sign.pem").c_str(), "r"));
  X509Ptr x509(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  const Bytes cert = certificate_der(x509.get());
  signature::PreparedXml prepared = signature::prepare_xml(document, profile, cert, signature::XmlOptions{});
  return prepared.finish(sign_like_a_token(dir / "sign.key", prepared.digest_algorithm(), prepared.digest()));
}

std::string prescription() { return read_file(source_dir() / "tests/fixtures/cda/e-prescription.xml"); }

class XmlSignature : public ::testing::TestWithParam<std::tuple<Profile, std::string>> {
 protected:
  static void SetUpTestSuite() { signature::initialise(); }
};

TEST_P(XmlSignature, XmlsecVerifiesItAndDetectsTampering) {
  const auto& [profile, person] = GetParam();
  const std::string signed_doc = sign(prescription(), profile, person);
  const auto ok = xmlsec_verify(signed_doc);
  EXPECT_EQ(ok.status, 0) << ok.err << signed_doc;

  // A changed dose inside structuredBody breaks the first reference.
  std::string tampered = signed_doc;
  const auto at = tampered.find("3 kertaa");
  ASSERT_NE(at, std::string::npos);
  tampered.replace(at, 1, "4");
  const auto bad = xmlsec_verify(tampered);
  EXPECT_NE(bad.status, 0) << bad.out;
}

INSTANTIATE_TEST_SUITE_P(Profiles, XmlSignature,
                         ::testing::Combine(::testing::Values(Profile::kanta_cda, Profile::enveloped),
                                            ::testing::Values("physician", "specialist")),
                         [](const auto& p) {
                           return std::string(std::get<0>(p.param) == Profile::kanta_cda ? "KantaCda" : "Enveloped") +
                                  (std::get<1>(p.param) == "physician" ? "Rsa2048" : "EcP384");
                         });

TEST(XmlDocument, BytesThatAreNotUtf8AreRefused) {
  signature::initialise();
  std::string latin1 = prescription();
  latin1.replace(latin1.find("ä"), 2, "\xE4");
  try {
    (void)signature::read_prescription(latin1, {});
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::document_invalid);
    EXPECT_EQ(e.detail, "not_utf8");
  }
}

TEST(XmlDocument, PrescriptionFactsAreRead) {
  signature::initialise();
  const auto facts = signature::read_prescription(prescription(), {});
  EXPECT_EQ(facts.atc_codes, std::vector<std::string>{"J01CA04"});
  EXPECT_EQ(facts.patient_id, "010170-999R");
  EXPECT_EQ(facts.author_registration_number, "10000001");
  EXPECT_EQ(facts.author_prescriber_id, "900001");
}

}  // namespace
}  // namespace kortti::test
