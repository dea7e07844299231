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
#include "tests/support/thrown.hpp"

namespace kortti::test {
namespace {

using signature::Profile;

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

class XmlSignatureChecks : public ::testing::Test {
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

  // Our verifier agrees, and names the reference that failed.
  const auto good = signature::verify_xml(signed_doc, {});
  ASSERT_EQ(good.size(), 1U);
  EXPECT_TRUE(good[0].valid) << good[0].message;
  EXPECT_EQ(good[0].signature_value, "valid");
  EXPECT_FALSE(good[0].certificate.empty());
  for (const auto& r : good[0].references) EXPECT_EQ(r.status, "valid") << r.uri;
  const auto broken = signature::verify_xml(tampered, {});
  ASSERT_EQ(broken.size(), 1U);
  EXPECT_FALSE(broken[0].valid);
  ASSERT_FALSE(broken[0].references.empty());
  EXPECT_EQ(broken[0].references[0].uri, "");
  EXPECT_EQ(broken[0].references[0].status, "invalid");
  // SignedInfo itself is untouched: the value still holds.
  EXPECT_EQ(broken[0].signature_value, "valid");
}

TEST_F(XmlSignatureChecks, AChangedTimestampFailsTheSecondReference) {
  const std::string signed_doc = sign(prescription(), Profile::kanta_cda, "physician");
  std::string tampered = signed_doc;
  const auto stamp = tampered.find("signatureTimestamp ID=");
  ASSERT_NE(stamp, std::string::npos);
  const auto at = tampered.find('>', stamp) + 1;  // the first digit of the year
  tampered[at] = tampered[at] == '2' ? '3' : '2';
  const auto v = signature::verify_xml(tampered, {});
  ASSERT_EQ(v.size(), 1U);
  ASSERT_EQ(v[0].references.size(), 2U);
  EXPECT_EQ(v[0].references[0].status, "valid");
  EXPECT_EQ(v[0].references[1].status, "invalid");
  EXPECT_EQ(v[0].references[1].uri.substr(0, 4), "#TS-");
  EXPECT_NE(xmlsec_verify(tampered).status, 0);
}

TEST_F(XmlSignatureChecks, AChangedSignatureValueFailsTheValue) {
  std::string doc = sign(prescription(), Profile::enveloped, "specialist");
  const auto value = doc.find("SignatureValue>") + std::string("SignatureValue>").size();
  doc[value] = doc[value] == 'A' ? 'B' : 'A';
  const auto v = signature::verify_xml(doc, {});
  ASSERT_EQ(v.size(), 1U);
  EXPECT_FALSE(v[0].valid);
  EXPECT_EQ(v[0].signature_value, "invalid");
  EXPECT_EQ(v[0].references[0].status, "valid");
}

TEST_F(XmlSignatureChecks, ReferencesOutsideTheDocumentAreNotFollowed) {
  std::string doc = sign(prescription(), Profile::enveloped, "physician");
  const auto uri = doc.find("URI=\"\"");
  ASSERT_NE(uri, std::string::npos);
  doc.replace(uri, 6, "URI=\"http://127.0.0.1:9/x\"");
  const auto v = signature::verify_xml(doc, {});
  ASSERT_EQ(v.size(), 1U);
  EXPECT_FALSE(v[0].valid);
  EXPECT_EQ(v[0].references[0].status, "invalid");
  EXPECT_EQ(v[0].signature_value, "invalid");  // the URI was part of SignedInfo
}

TEST_F(XmlSignatureChecks, ALargeKantaDocumentIsSignedAndVerifiedInLinearTime) {
  // 4 MB: xmlsec's own XPath filter would search its node set for every node
  // (minutes); korttid computes that reference directly. No timing is
  // asserted — a quadratic path would run into the test's timeout.
  std::string doc = prescription();
  const auto begin = doc.find("<component>", doc.find("<structuredBody>"));
  const auto end = doc.find("</structuredBody>");
  const std::string section = doc.substr(begin, end - begin);
  std::string many;
  while (many.size() < 4 * 1024 * 1024) many += section;
  doc = doc.substr(0, begin) + many + doc.substr(end);
  const std::string signed_doc = sign(doc, Profile::kanta_cda, "specialist");
  auto v = signature::verify_xml(signed_doc, {});
  ASSERT_EQ(v.size(), 1U);
  EXPECT_TRUE(v[0].valid) << v[0].message;
  std::string tampered = signed_doc;
  tampered.replace(tampered.rfind("3 kertaa"), 1, "4");
  v = signature::verify_xml(tampered, {});
  EXPECT_EQ(v[0].references[0].status, "invalid");
  EXPECT_EQ(v[0].references[1].status, "valid");
}

TEST_F(XmlSignatureChecks, AnUnsignedDocumentIsNamedSo) {
  const auto e = thrown<Error>([&] { (void)signature::verify_xml(prescription(), {}); }, "accepted");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->detail, "no_signature");
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
  const auto e = thrown<Error>([&] { (void)signature::read_prescription(latin1, {}); }, "accepted");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::document_invalid);
  EXPECT_EQ(e->detail, "not_utf8");
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
