// signature/xml: the templates, digests and values that xmlsec1 accepts.
// The card's part (one signature over SignedInfo's digest) is done here with
// the test PKI's PEM key; tests/documents/ do it through korttid and a token.

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <regex>

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
  const Bytes cert = pem_certificates(dir / "sign.pem").at(0);
  signature::PreparedXml prepared = signature::prepare_xml(document, profile, cert, signature::XmlOptions{});
  return prepared.finish(sign_like_a_token(dir / "sign.key", prepared.digest_algorithm(), prepared.digest()));
}

std::string prescription() { return read_file(source_dir() / "tests/fixtures/cda/e-prescription.xml"); }

// `doc` with `text` inserted before the first `at`.
std::string insert_before(std::string doc, const std::string& at, const std::string& text) {
  const auto i = doc.find(at);
  EXPECT_NE(i, std::string::npos) << at;
  return i == std::string::npos ? doc : doc.insert(i, text);
}

// `doc` with the first `from` replaced by `to`.
std::string replace_first(std::string doc, const std::string& from, const std::string& to) {
  const auto i = doc.find(from);
  EXPECT_NE(i, std::string::npos) << from;
  return i == std::string::npos ? doc : doc.replace(i, from.size(), to);
}

// Removes the first element starting with `open` up to and with `close`;
// returns it.
std::string cut(std::string& doc, const std::string& open, const std::string& close) {
  const auto begin = doc.find(open);
  const auto end = doc.find(close, begin);
  EXPECT_TRUE(begin != std::string::npos && end != std::string::npos) << open;
  if (begin == std::string::npos || end == std::string::npos) return {};
  std::string piece = doc.substr(begin, end + close.size() - begin);
  doc.erase(begin, piece.size());
  return piece;
}

// The value of the first `name="..."` after `after`.
std::string value_after(const std::string& doc, const std::string& after, const std::string& name) {
  const auto at = doc.find(name + "=\"", doc.find(after));
  EXPECT_NE(at, std::string::npos) << name;
  const auto begin = at + name.size() + 2;
  return doc.substr(begin, doc.find('"', begin) - begin);
}

// The Error verify_xml throws for `doc`.
std::optional<Error> refusal(const std::string& doc) {
  return thrown<Error>([&] { (void)signature::verify_xml(doc, {}); }, "verify_xml accepted it");
}

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

TEST_F(XmlSignatureChecks, ASecondStructuredBodyIsRefusedAsXmlsecRefusesIt) {
  const std::string signed_doc = sign(prescription(), Profile::kanta_cda, "physician");
  ASSERT_EQ(xmlsec_verify(signed_doc).status, 0);
  const std::string body =
      "<structuredBody xmlns=\"urn:hl7-org:v3\"><component><section><text>Oksikodoni 80 mg, 10 tablettia "
      "vuorokaudessa</text></section></component></structuredBody>";
  const std::vector<std::pair<const char*, std::string>> wrapped = {
      {"a second component", insert_before(signed_doc, "</ClinicalDocument>", "<component>" + body + "</component>")},
      {"a body in the header", insert_before(signed_doc, "</hl7fi:localHeader>", body)},
      {"a body in the author", insert_before(signed_doc, "</assignedAuthor>", body)},
  };
  for (const auto& [name, doc] : wrapped) {
    SCOPED_TRACE(name);
    // The filter selects every structuredBody: xmlsec1 digests both.
    EXPECT_NE(xmlsec_verify(doc).status, 0);
    const auto e = refusal(doc);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), Errc::document_invalid);
    EXPECT_EQ(e->detail, "extra_body") << e->what();
  }
  // Nor is such a document signed, or read for a prescription.
  const std::string two = insert_before(prescription(), "</ClinicalDocument>", "<component>" + body + "</component>");
  auto e = thrown<Error>([&] { (void)sign(two, Profile::kanta_cda, "physician"); }, "signed");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->detail, "extra_body");
  e = thrown<Error>([&] { (void)signature::read_prescription(two, {}); }, "read");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->detail, "extra_body");
}

// Found by the xml_sign fuzzer (fuzz/regressions/xml_sign/): a prefix with
// a colon is only a warning to libxml2; signed, the document failed korttid's
// own verification. Namespace errors are refused before signing now.
TEST_F(XmlSignatureChecks, DocumentsWhoseNamespacesAreNotWellFormedAreRefused) {
  for (const std::string& decl :
       {std::string(R"(xmlns:hl7:fi="urn:hl7finland")"), std::string(R"(undeclared:x="1")")}) {
    SCOPED_TRACE(decl);
    std::string doc = prescription();
    const auto at = doc.find("<ClinicalDocument ");
    ASSERT_NE(at, std::string::npos);
    doc.insert(at + std::string("<ClinicalDocument ").size(), decl + " ");
    for (Profile profile : {Profile::kanta_cda, Profile::enveloped}) {
      auto e = thrown<Error>([&] { (void)sign(doc, profile, "physician"); }, "signed");
      ASSERT_TRUE(e);
      EXPECT_EQ(e->code(), Errc::document_invalid);
      EXPECT_EQ(e->detail, "not_namespace_well_formed") << e->what();
    }
  }
}

TEST_F(XmlSignatureChecks, TwoElementsWithTheSameIdAreRefusedWhateverTheAttribute) {
  const std::string signed_doc = sign(prescription(), Profile::kanta_cda, "physician");
  const std::string ts = value_after(signed_doc, "<hl7fi:signatureTimestamp", "ID");
  ASSERT_EQ(ts.substr(0, 3), "TS-");
  const std::string stamp = "2020-01-01T00:00:00+02:00";
  for (const std::string& decoy :
       {"<hl7fi:note xml:id=\"" + ts + "\">" + stamp + "</hl7fi:note>",
        "<hl7fi:note Id=\"" + ts + "\">" + stamp + "</hl7fi:note>",
        "<hl7fi:note xmlns:wsu=\"urn:example:wsu\" wsu:Id=\"" + ts + "\">" + stamp + "</hl7fi:note>"}) {
    SCOPED_TRACE(decoy);
    const auto e = refusal(insert_before(signed_doc, "<hl7fi:softwareSupport>", decoy));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), Errc::document_invalid);
    EXPECT_EQ(e->detail, "duplicate_id") << e->what();
  }
}

TEST_F(XmlSignatureChecks, ASignatureMovedOutOfItsPlaceIsRefused) {
  std::vector<std::pair<const char*, std::string>> moved;
  {
    std::string doc = sign(prescription(), Profile::enveloped, "physician");
    ASSERT_TRUE(signature::verify_xml(doc, {})[0].valid);
    const std::string sig = cut(doc, "<ds:Signature", "</ds:Signature>");
    // The enveloped transform removes the signature wherever it is, so the
    // digests still hold: only its place tells.
    moved.emplace_back("enveloped, into the body", insert_before(doc, "<section>", sig));
    moved.emplace_back("enveloped, into a wrapper",
                       insert_before(doc, "</ClinicalDocument>", "<hl7fi:wrapper>" + sig + "</hl7fi:wrapper>"));
  }
  {
    std::string doc = sign(prescription(), Profile::kanta_cda, "specialist");
    const std::string holder = cut(doc, "<hl7fi:signature ID=", "</hl7fi:signature>");
    moved.emplace_back("kanta, out of the collection", insert_before(doc, "<hl7fi:signatureCollection", holder));
    moved.emplace_back("kanta, into the body", insert_before(doc, "<section>", holder));
  }
  for (const auto& [name, doc] : moved) {
    SCOPED_TRACE(name);
    const auto e = refusal(doc);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), Errc::document_invalid);
    EXPECT_EQ(e->detail, "signature_misplaced") << e->what();
  }
}

// A ds:Signature that is the document itself has no element around it to
// name: signature_misplaced, not an internal error.
TEST_F(XmlSignatureChecks, ASignatureThatIsTheRootIsMisplaced) {
  const auto e =
      refusal(R"(<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/></ds:Signature>)");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::document_invalid);
  EXPECT_EQ(e->detail, "signature_misplaced") << e->what();
}

// xmlsec reads "#xpointer(...)" as XPath and "#A B" as two IDs: a
// timestamp ID of either kind, with the reference to match, is refused
// before xmlsec sees it.
TEST_F(XmlSignatureChecks, ATimestampIdThatIsNotAnXmlNameIsRefused) {
  const std::string doc = sign(prescription(), Profile::kanta_cda, "physician");
  const std::string id = value_after(doc, "signatureTimestamp", "ID");
  ASSERT_EQ(id.substr(0, 3), "TS-");
  for (const std::string& other : std::vector<std::string>{"xpointer(//*[count(//node()) &gt; 0])", id + " " + id}) {
    SCOPED_TRACE(other);
    std::string changed = replace_first(doc, "ID=\"" + id + "\"", "ID=\"" + other + "\"");
    changed = replace_first(changed, "URI=\"#" + id + "\"", "URI=\"#" + other + "\"");
    const auto e = refusal(changed);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->detail, "malformed_signature") << e->what();
    EXPECT_NE(std::string(e->what()).find("NCName"), std::string::npos) << e->what();
  }
}

// A long namespace declared on the root and used by many elements below
// one that does not use it: exc-c14n writes the declaration at each, so a
// small document's canonical form would be gigabytes. Refused at four times
// the document's size and 1 MiB, when signing and when verifying, in both
// profiles.
TEST_F(XmlSignatureChecks, ADocumentWhoseCanonicalFormWouldExplodeIsRefused) {
  const std::string uri = "urn:" + std::string(4000, 'n');
  std::string uses;
  for (int i = 0; i < 2000; ++i) uses += "<a:x/>";
  // `base` with the namespace declared on the root and used 2000 times
  // below an element that does not use it: 8 MB of canonical form from a
  // document of some 20 KB.
  const auto padded = [&](const std::string& base) {
    return insert_before(replace_first(base, "<ClinicalDocument ", "<ClinicalDocument xmlns:a=\"" + uri + "\" "),
                         "<component>", "<hl7fi:padding xmlns:hl7fi=\"urn:hl7finland\">" + uses + "</hl7fi:padding>");
  };
  const std::string doc = padded(prescription());
  for (const Profile profile : {Profile::kanta_cda, Profile::enveloped}) {
    const auto e = thrown<Error>([&] { (void)sign(doc, profile, "physician"); }, "prepare_xml accepted it");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->detail, "canonical_too_large") << e->what();
  }
  // Signed before the padding went in, verified after: the references are
  // computed on the padded document.
  for (const Profile profile : {Profile::kanta_cda, Profile::enveloped}) {
    const auto e = refusal(padded(sign(prescription(), profile, "physician")));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->detail, "canonical_too_large") << e->what();
  }
  // A namespace the root itself uses is written once in the whole
  // document's canonical form, and at every element that uses it in a
  // subtree's: the timestamp's, which its reference digests.
  {
    const std::string signed_doc = sign(prescription(), Profile::kanta_cda, "physician");
    std::string in_stamp;
    for (int i = 0; i < 2000; ++i) in_stamp += "<a:y/>";
    const std::string stamp_padded = insert_before(
        replace_first(signed_doc, "<ClinicalDocument ", "<ClinicalDocument xmlns:a=\"" + uri + "\" a:z=\"1\" "),
        "</hl7fi:signatureTimestamp>", in_stamp);
    const auto e = refusal(stamp_padded);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->detail, "canonical_too_large") << e->what();
  }
  // The same elements under one that uses the namespace it declares sign.
  const std::string honest =
      insert_before(prescription(), "<component>", "<a:padding xmlns:a=\"" + uri + "\">" + uses + "</a:padding>");
  EXPECT_TRUE(signature::verify_xml(sign(honest, Profile::enveloped, "physician"), {})[0].valid);
}

// Each certificate of a KeyInfo is tried as the signer: at most 8.
TEST_F(XmlSignatureChecks, AKeyInfoOfMoreThanEightCertificatesIsRefused) {
  const std::string doc = sign(prescription(), Profile::enveloped, "physician");
  const auto begin = doc.find("<ds:X509Certificate>");
  const auto end = doc.find("</ds:X509Certificate>", begin) + std::string("</ds:X509Certificate>").size();
  ASSERT_NE(begin, std::string::npos);
  const std::string one = doc.substr(begin, end - begin);
  std::string eight = doc, nine = doc;
  for (int i = 0; i < 7; ++i) eight.insert(end, one);
  for (int i = 0; i < 8; ++i) nine.insert(end, one);
  EXPECT_TRUE(signature::verify_xml(eight, {})[0].valid);
  const auto e = refusal(nine);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->detail, "malformed_signature") << e->what();
  EXPECT_NE(std::string(e->what()).find("more than 8 certificates"), std::string::npos) << e->what();
}

// Up to the documented 16 MiB, long text nodes too (attachments in
// base64): libxml2 2.9.14 stops at 10,000,000 bytes of input when it is
// told the encoding (its converter's "Huge input lookup").
TEST_F(XmlSignatureChecks, ADocumentOf12MBWithLongTextNodesIsSignedAndVerified) {
  std::string data;
  const std::string line = "<hl7fi:data>" + std::string(1024, 'Q') + "</hl7fi:data>\n";
  while (data.size() < 12 * 1024 * 1024) data += line;
  const std::string doc =
      insert_before(prescription(), "<component>", "<hl7fi:attachments>" + data + "</hl7fi:attachments>");
  ASSERT_GT(doc.size(), 12U * 1024 * 1024);
  const auto v = signature::verify_xml(sign(doc, Profile::enveloped, "physician"), {});
  ASSERT_EQ(v.size(), 1U);
  EXPECT_TRUE(v[0].valid) << v[0].message;
}

// NUL is no XML character, and would make the parser read the bytes as
// UTF-16 or UCS-4.
TEST_F(XmlSignatureChecks, ANulByteIsRefused) {
  // "<a></a>" in UTF-16BE: every other byte NUL.
  const std::string doc("\0<\0a\0>\0<\0/\0a\0>", 14);
  const auto e = thrown<Error>([&] { (void)signature::verify_xml(doc, {}); }, "verify_xml took a NUL");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::document_invalid);
  EXPECT_EQ(e->detail, "not_well_formed") << e->what();
}

TEST_F(XmlSignatureChecks, OnlyTheProfilesReferencesAreFollowed) {
  const std::string kanta = sign(prescription(), Profile::kanta_cda, "physician");
  const std::string enveloped = sign(prescription(), Profile::enveloped, "physician");
  const std::string sig = value_after(kanta, "<hl7fi:signature ", "ID");
  const std::string ts = value_after(kanta, "<hl7fi:signatureTimestamp", "ID");
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"outside the document", replace_first(enveloped, "URI=\"\"", "URI=\"http://127.0.0.1:9/x\"")},
      {"an xpointer", replace_first(enveloped, "URI=\"\"", "URI=\"#xpointer(/)\"")},
      {"an xpointer expression",
       replace_first(enveloped, "URI=\"\"", "URI=\"#xpointer(//. | //@* | //namespace::*)\"")},
      {"another element of the header", replace_first(kanta, "URI=\"#" + ts + "\"", "URI=\"#" + sig + "\"")},
      {"the timestamp by xpointer", replace_first(kanta, "URI=\"#" + ts + "\"", "URI=\"#xpointer(id('" + ts + "'))\"")},
  };
  for (const auto& [name, doc] : cases) {
    SCOPED_TRACE(name);
    const auto e = refusal(doc);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), Errc::document_invalid);
    EXPECT_EQ(e->detail, "reference_not_allowed") << e->what();
  }
}

TEST_F(XmlSignatureChecks, OnlyTheProfilesTransformsAreFollowed) {
  const std::string kanta = sign(prescription(), Profile::kanta_cda, "physician");
  const std::string enveloped = sign(prescription(), Profile::enveloped, "physician");
  const std::string xpath_ns = "http://www.w3.org/TR/1999/REC-xpath-19991116";
  const std::string cubic = "<ds:Transform Algorithm=\"" + xpath_ns +
                            "\"><ds:XPath>count(//. | //@* | //namespace::*) &gt;= count(//. | //@*)</ds:XPath>"
                            "</ds:Transform>";
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"another XPath filter in the Kanta body reference",
       replace_first(kanta, ">ancestor-or-self::hl7:structuredBody<",
                     ">ancestor-or-self::hl7:structuredBody or ancestor-or-self::hl7:recordTarget<")},
      {"an XPath filter added to the enveloped reference", insert_before(enveloped, "</ds:Transforms>", cubic)},
      {"XSLT", insert_before(enveloped, "</ds:Transforms>",
                             "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\"/>")},
      {"XPath filter 2.0",
       insert_before(kanta, "</ds:Transforms>",
                     "<ds:Transform Algorithm=\"http://www.w3.org/2002/06/xmldsig-filter2\"><dsig2:XPath "
                     "xmlns:dsig2=\"http://www.w3.org/2002/06/xmldsig-filter2\" Filter=\"union\">/</dsig2:XPath>"
                     "</ds:Transform>")},
      {"no enveloped transform", replace_first(enveloped, "xmldsig#enveloped-signature", "xmldsig#base64")},
  };
  for (const auto& [name, doc] : cases) {
    SCOPED_TRACE(name);
    const auto e = refusal(doc);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), Errc::document_invalid);
    EXPECT_EQ(e->detail, "transform_not_allowed") << e->what();
  }
}

TEST_F(XmlSignatureChecks, EachSignatureSaysWhatItCovers) {
  const std::string kanta = sign(prescription(), Profile::kanta_cda, "physician");
  const std::string ts = value_after(kanta, "<hl7fi:signatureTimestamp", "ID");
  auto v = signature::verify_xml(kanta, {});
  ASSERT_EQ(v.size(), 1U);
  EXPECT_TRUE(v[0].valid) << v[0].message;
  EXPECT_EQ(v[0].covers.profile, "kanta-cda");
  ASSERT_EQ(v[0].covers.parts.size(), 2U);
  EXPECT_NE(v[0].covers.parts[0].find("structuredBody"), std::string::npos) << v[0].covers.parts[0];
  EXPECT_NE(v[0].covers.parts[1].find("signatureTimestamp " + ts), std::string::npos) << v[0].covers.parts[1];
  for (const char* word : {"header", "NOT", "patient", "author"})
    EXPECT_NE(v[0].covers.not_covered.find(word), std::string::npos) << word << ": " << v[0].covers.not_covered;
  // What it says is so: another patient leaves the signature valid.
  v = signature::verify_xml(replace_first(kanta, "010170-999R", "311299-999X"), {});
  EXPECT_TRUE(v[0].valid) << v[0].message;

  v = signature::verify_xml(sign(prescription(), Profile::enveloped, "specialist"), {});
  ASSERT_EQ(v.size(), 1U);
  EXPECT_EQ(v[0].covers.profile, "enveloped");
  ASSERT_EQ(v[0].covers.parts.size(), 1U);
  EXPECT_NE(v[0].covers.parts[0].find("whole document"), std::string::npos) << v[0].covers.parts[0];
  EXPECT_EQ(v[0].covers.not_covered, "");
}

// Inputs that used to end in an internal error (-32603) or in a verdict on
// a signature that cannot be examined.
TEST_F(XmlSignatureChecks, MalformedSignaturesAreNamed) {
  const std::string doc = sign(prescription(), Profile::enveloped, "physician");
  auto without = [&](const std::string& open, const std::string& close) {
    std::string d = doc;
    (void)cut(d, open, close);
    return d;
  };
  auto value_of = [&](const std::string& text) {
    std::string d = doc;
    const auto begin = d.find("<ds:SignatureValue>") + std::string("<ds:SignatureValue>").size();
    return d.replace(begin, d.find("</ds:SignatureValue>") - begin, text);
  };
  // A note (not a CDA) whose reference claims Kanta's body filter.
  std::string note =
      sign("<?xml version=\"1.0\"?><note xmlns=\"urn:example:note\">hello</note>", Profile::enveloped, "physician");
  const auto t0 = note.find("<ds:Transforms>");
  const auto t1 = note.find("</ds:Transforms>");
  ASSERT_TRUE(t0 != std::string::npos && t1 != std::string::npos);
  note.replace(t0, t1 - t0,
               "<ds:Transforms><ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/><ds:Transform "
               "Algorithm=\"http://www.w3.org/TR/1999/REC-xpath-19991116\"><ds:XPath "
               "xmlns:hl7=\"urn:hl7-org:v3\">ancestor-or-self::hl7:structuredBody</ds:XPath></ds:Transform>");
  struct Case {
    const char* name;
    std::string document;
    Errc code;
    const char* detail;
  };
  const std::vector<Case> cases = {
      {"no SignedInfo", without("<ds:SignedInfo>", "</ds:SignedInfo>"), Errc::document_invalid, "malformed_signature"},
      {"no SignatureValue", without("<ds:SignatureValue>", "</ds:SignatureValue>"), Errc::document_invalid,
       "malformed_signature"},
      {"an empty SignatureValue", value_of(""), Errc::document_invalid, "malformed_signature"},
      {"a SignatureValue that is not base64", value_of("not*base64!"), Errc::document_invalid, "bad_base64"},
      {"no DigestValue", without("<ds:DigestValue>", "</ds:DigestValue>"), Errc::document_invalid,
       "malformed_signature"},
      {"no DigestMethod", without("<ds:DigestMethod", "/>"), Errc::document_invalid, "malformed_signature"},
      {"a DigestValue that is not base64", replace_first(doc, "<ds:DigestValue>", "<ds:DigestValue>%%%"),
       Errc::document_invalid, "bad_base64"},
      {"an object the signature carries", insert_before(doc, "</ds:Signature>", "<ds:Object>x</ds:Object>"),
       Errc::document_invalid, "malformed_signature"},
      {"a reference without URI", replace_first(doc, "URI=\"\"", ""), Errc::document_invalid, "malformed_signature"},
      {"a certificate that is not base64", replace_first(doc, "<ds:X509Certificate>", "<ds:X509Certificate>#"),
       Errc::document_invalid, "bad_base64"},
      {"SHA-1 signatures", replace_first(doc, "xmldsig-more#rsa-sha256", "xmldsig#rsa-sha1"), Errc::unsupported,
       "unsupported_algorithm"},
      {"an unknown signature method", replace_first(doc, "xmldsig-more#rsa-sha256", "xmldsig-more#rsa-whirlpool"),
       Errc::unsupported, "unsupported_algorithm"},
      {"an unknown digest method", replace_first(doc, "xmlenc#sha256", "xmldsig#sha1"), Errc::unsupported,
       "unsupported_algorithm"},
      {"an unknown canonicalization",
       replace_first(doc, "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"",
                     "<ds:CanonicalizationMethod Algorithm=\"urn:example:c14n\""),
       Errc::unsupported, "unsupported_algorithm"},
      {"a relative namespace name", replace_first(doc, "<ClinicalDocument ", "<ClinicalDocument xmlns:r=\"rel\" "),
       Errc::document_invalid, "relative_namespace"},
      {"Kanta's body filter in a document without a body", note, Errc::document_invalid, "transform_not_allowed"},
      {"a Kanta signature with a nonXMLBody component first",
       insert_before(sign(prescription(), Profile::kanta_cda, "physician"), "<component>\n    <structuredBody>",
                     "<component><nonXMLBody/></component>"),
       Errc::document_invalid, "no_structured_body"},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.name);
    std::optional<Error> e;
    try {
      (void)signature::verify_xml(k.document, {});
      ADD_FAILURE() << "verified";
    } catch (const Error& error) {
      e = error;
    } catch (const std::exception& other) {
      ADD_FAILURE() << "not an Error (an internal error to the client): " << other.what();
    }
    if (!e) continue;
    EXPECT_EQ(e->code(), k.code) << e->what();
    EXPECT_EQ(e->detail, k.detail) << e->what();
  }

  // Signing such a document was an internal error too.
  std::optional<Error> e;
  try {
    (void)sign(replace_first(prescription(), "<ClinicalDocument ", "<ClinicalDocument xmlns:r=\"rel\" "),
               Profile::enveloped, "physician");
    ADD_FAILURE() << "signed";
  } catch (const Error& error) {
    e = error;
  } catch (const std::exception& other) {
    ADD_FAILURE() << "not an Error: " << other.what();
  }
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::document_invalid);
  EXPECT_EQ(e->detail, "relative_namespace");
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

// Each enveloped signature digests the whole document again: a document
// of many is refused before the first is computed.
TEST_F(XmlSignatureChecks, ADocumentWithMoreSignaturesThanKorttidChecksIsRefusedBeforeAnyIsComputed) {
  const std::string signed_doc = sign(prescription(), Profile::enveloped, "physician");
  const auto begin = signed_doc.find("<ds:Signature");
  const auto end = signed_doc.find("</ds:Signature>") + std::string_view("</ds:Signature>").size();
  ASSERT_NE(begin, std::string::npos);
  const std::string signature = signed_doc.substr(begin, end - begin);
  // Each copy with IDs of its own (two of one value are refused as such).
  static const std::regex id(R"re(Id="([^"]+)")re");
  std::vector<std::string> ids;
  for (std::sregex_iterator it(signature.begin(), signature.end(), id), none; it != none; ++it) ids.push_back((*it)[1]);
  auto with = [&](std::size_t count) {
    std::string doc = signed_doc;
    for (std::size_t i = 1; i < count; ++i) {
      std::string copy = signature;
      for (const std::string& value : ids)
        for (auto at = copy.find(value); at != std::string::npos; at = copy.find(value, at + value.size() + 4))
          copy.insert(at + value.size(), "-" + std::to_string(100 + i));
      doc.insert(end, copy);
    }
    return doc;
  };
  // At the limit each is checked (the copies make every digest differ).
  const auto checked = signature::verify_xml(with(signature::kMaxXmlSignatures), {});
  EXPECT_EQ(checked.size(), signature::kMaxXmlSignatures);
  const auto e =
      thrown<Error>([&] { (void)signature::verify_xml(with(signature::kMaxXmlSignatures + 1), {}); }, "accepted");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::document_invalid);
  EXPECT_EQ(e->detail, "too_many_signatures");
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
  // Another encoding declared after a UTF-8 byte order mark: libxml2 reads
  // the declaration there, and would decode the rest as Latin-1.
  const std::string declared = "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<a>\xC3\xA4</a>";
  const auto d = thrown<Error>([&] { (void)signature::verify_xml(declared, {}); }, "accepted");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->detail, "not_utf8") << d->what();
}

TEST(XmlDocument, PrescriptionFactsAreRead) {
  signature::initialise();
  const auto facts = signature::read_prescription(prescription(), {});
  EXPECT_EQ(facts.atc_codes, std::vector<std::string>{"J01CA04"});
  EXPECT_EQ(facts.patient_id, "010170-999R");
  EXPECT_EQ(facts.author_registration_number, "10000001");
  EXPECT_EQ(facts.author_prescriber_id, "900001");
}

// libxml2 2.9 compares each attribute with every earlier one of its element:
// 80,000 attributes took a minute. Refused before libxml2 sees them.
TEST(XmlDocument, ElementsWithTooManyAttributesAndTooManyNodesAreRefusedBeforeParsing) {
  signature::initialise();
  std::string attributes = "<?xml version=\"1.0\"?><ClinicalDocument xmlns=\"urn:hl7-org:v3\"";
  for (int i = 0; i < 80000; ++i) attributes += " a" + std::to_string(i) + "=\"\"";
  attributes += "/>";
  std::string namespaces = "<r";
  for (int i = 0; i < 80000; ++i) namespaces += " xmlns:p" + std::to_string(i) + "=\"urn:x:" + std::to_string(i) + "\"";
  namespaces += "/>";
  for (const auto& doc : {attributes, namespaces}) {
    auto e = thrown<Error>([&] { (void)signature::verify_xml(doc, {}); }, "verified");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), Errc::document_invalid);
    EXPECT_EQ(e->detail, "too_many_attributes") << e->what();
    e = thrown<Error>([&] { (void)signature::read_prescription(doc, {}); }, "read");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->detail, "too_many_attributes") << e->what();
  }

  std::string many = "<r>";
  const signature::DocumentLimits limits;
  for (std::size_t i = 0; i <= limits.max_nodes; ++i) many += "<a/>";
  many += "</r>";
  auto e = thrown<Error>([&] { (void)signature::verify_xml(many, limits); }, "verified");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->detail, "too_many_nodes") << e->what();

  // Markup inside comments, CDATA and attribute values is not counted.
  signature::DocumentLimits few;
  few.max_attributes_per_element = 3;
  const auto facts = signature::read_prescription(
      insert_before(prescription(), "<realmCode",
                    "<!-- <a b=\"\" c=\"\" d=\"\" e=\"\"/> --><title x=\"a=b=c=d&gt;e\"><![CDATA[<a b= c= d= e=>]]>"
                    "</title>"),
      few);
  EXPECT_EQ(facts.atc_codes, std::vector<std::string>{"J01CA04"});
}

}  // namespace
}  // namespace kortti::test
