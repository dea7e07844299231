// sign.xml and sign.prescription through korttid: SoftHSM2 tokens holding the
// test PKI's keys, real OCSP responders, the registry fixture, and xmlsec1
// as the independent verifier.

#include <regex>
#include <thread>

#include "tests/policy/policy_fixture.hpp"

namespace kortti::test {
namespace {

constexpr int kPhysician = 1;   // RSA-2048, 10000001, may prescribe
constexpr int kSpecialist = 2;  // EC P-384, 10000002, may prescribe
constexpr int kNurse = 3;       // RSA-2048, 10000004, no prescription right

std::string prescription() { return read_file(source_dir() / "tests/fixtures/cda/e-prescription.xml"); }

std::string with_author(std::string doc, const std::string& number) {
  return std::regex_replace(doc, std::regex(R"(root="1\.2\.246\.537\.26" extension="10000001")"),
                            "root=\"1.2.246.537.26\" extension=\"" + number + "\"");
}

// The Id of every ds:Signature in a document, in order.
std::vector<std::string> signature_ids(const std::string& doc) {
  std::vector<std::string> ids;
  const std::regex id(R"re(<ds:Signature [^>]*Id="([^"]+)")re");
  for (auto it = std::sregex_iterator(doc.begin(), doc.end(), id); it != std::sregex_iterator(); ++it)
    ids.push_back((*it)[1]);
  return ids;
}

class Documents : public ::testing::Test {
 protected:
  void SetUp() override {
    rsa_.emplace("hc-rsa");
    ec_.emplace("hc-ec", 18889);
    PolicyDaemonOptions o;
    o.items = {"physician/sign", "specialist/sign", "nurse/sign"};
    o.rules += "\n[signature]\nmax_document_bytes = 200000\n";
    daemon_ = std::make_unique<PolicyDaemon>(std::move(o));
  }
  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "---- korttid log ----\n" << daemon_->daemon().log() << "\n";
  }
  client::Client& c() { return daemon_->client(); }
  Json sign_xml(int cert, const std::string& doc, const std::string& profile) {
    return c().call("sign.xml", {{"cert_id", wstr(daemon_->cert_id(cert))},
                                 {"document", wstr(doc)},
                                 {"profile", wstr(profile)},
                                 {"pin", kPin}});
  }
  Json sign_prescription(int cert, const std::string& doc, const std::string& pin = kPin) {
    return c().call("sign.prescription",
                    {{"cert_id", wstr(daemon_->cert_id(cert))}, {"document", wstr(doc)}, {"pin", wstr(pin)}});
  }
  int tries_left() {
    const Json t = c().call("tokens.list").at(0);
    return t["pins"]["user"].value("tries_left", -1);
  }

  std::optional<OcspResponder> rsa_, ec_;
  std::unique_ptr<PolicyDaemon> daemon_;
};

TEST_F(Documents, SignXmlEachProfileWithRsaAndEcVerifiesWithXmlsec1) {
  for (int cert : {kPhysician, kSpecialist}) {
    for (const char* profile : {"kanta-cda", "enveloped"}) {
      SCOPED_TRACE(std::string(profile) + " cert " + std::to_string(cert));
      const std::string signed_doc = str(sign_xml(cert, prescription(), profile)["document"]);
      const auto ok = xmlsec_verify(signed_doc);
      EXPECT_EQ(ok.status, 0) << ok.err;
      EXPECT_NE(signed_doc.find(cert == kPhysician ? "xmldsig-more#rsa-sha256\"" : "xmldsig-more#ecdsa-sha384\""),
                std::string::npos);
      std::string tampered = signed_doc;
      tampered.replace(tampered.find("Amoksisilliini 500 mg kapseli."), 14, "Amoksisilliini 900");
      EXPECT_NE(xmlsec_verify(tampered).status, 0);
    }
  }
}

TEST_F(Documents, PrescriptionOfAnAllowedProfessionalIsSignedAndASecondSignatureKeepsTheFirstValid) {
  const Json r = sign_prescription(kPhysician, prescription());
  EXPECT_TRUE(r["decision"]["allowed"].get<bool>());
  EXPECT_EQ(str(r["decision"]["professional"]["registration_number"]), "10000001");
  const std::string once = str(r["document"]);
  EXPECT_EQ(xmlsec_verify(once).status, 0) << xmlsec_verify(once).err;
  EXPECT_NE(once.find("<hl7fi:signatureCollection>"), std::string::npos);
  EXPECT_NE(once.find("kortti test fixture"), std::string::npos) << "the existing localHeader is kept";

  // A second professional co-signs the signed document.
  const std::string twice = str(sign_xml(kSpecialist, once, "kanta-cda")["document"]);
  const auto ids = signature_ids(twice);
  ASSERT_EQ(ids.size(), 2U);
  for (const auto& id : ids) {
    const auto v = xmlsec_verify(twice, id);
    EXPECT_EQ(v.status, 0) << id << ": " << v.err;
  }
}

TEST_F(Documents, ADeniedPrescriptionSignsNothingAndNeverUsesThePin) {
  const int before = tries_left();
  // The nurse has no right to prescribe; a wrong PIN would cost a try if it
  // reached the card.
  const auto e = rpc_error([&] { sign_prescription(kNurse, with_author(prescription(), "10000004"), "000000"); });
  EXPECT_EQ(e.code(), 1030);
  EXPECT_EQ(e.reason(), "policy_denied");
  ASSERT_TRUE(e.data().contains("reasons"));
  // A staff card, and no right to prescribe: both reasons are given.
  EXPECT_NE(e.data().dump().find("no_prescribing_right"), std::string::npos) << e.data().dump();
  EXPECT_NE(e.data().dump().find("card_type_not_allowed"), std::string::npos) << e.data().dump();
  EXPECT_EQ(tries_left(), before);

  // The author in the document must be the card's holder.
  const auto other = rpc_error([&] { sign_prescription(kSpecialist, prescription()); });
  EXPECT_EQ(other.code(), 1030);
  EXPECT_NE(other.data().dump().find("author_not_signer"), std::string::npos) << other.data().dump();
  EXPECT_NE(read_file(daemon_->daemon().dir() / "audit.log").find("policy_denied"), std::string::npos);
}

struct Hostile {
  const char* name;
  std::string document;
  const char* detail;
};

std::vector<Hostile> hostile_documents() {
  const std::string cda = prescription();
  std::string deep = "<?xml version=\"1.0\"?><ClinicalDocument xmlns=\"urn:hl7-org:v3\">";
  for (int i = 0; i < 300; ++i) deep += "<a>";
  for (int i = 0; i < 300; ++i) deep += "</a>";
  deep += "</ClinicalDocument>";
  std::string no_body = std::regex_replace(cda, std::regex("structuredBody"), "nonXMLBody");
  std::string wrong_ns = std::regex_replace(cda, std::regex(R"(xmlns="urn:hl7-org:v3")"), R"(xmlns="urn:example")");
  std::string declared = std::regex_replace(cda, std::regex("encoding=\"UTF-8\""), "encoding=\"ISO-8859-1\"");
  return {
      {"NotWellFormed", std::regex_replace(cda, std::regex("</ClinicalDocument>"), ""), "not_well_formed"},
      // Bytes that are not UTF-8 cannot travel in JSON at all (-32700); a
      // document can still claim another encoding.
      {"DeclaredLatin1", declared, "not_utf8"},
      {"ExternalEntity",
       "<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><ClinicalDocument "
       "xmlns=\"urn:hl7-org:v3\">&x;</ClinicalDocument>",
       "dtd_not_allowed"},
      {"BillionLaughs",
       "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">"
       "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]><ClinicalDocument "
       "xmlns=\"urn:hl7-org:v3\">&c;</ClinicalDocument>",
       "dtd_not_allowed"},
      {"DeeplyNested", deep, "too_deep"},
      {"OverTheSizeLimit", cda + std::string(200000, ' '), "too_large"},
      {"NotACda", "<?xml version=\"1.0\"?><note>hello</note>", "not_cda"},
      {"NoStructuredBody", no_body, "no_structured_body"},
      {"WrongNamespace", wrong_ns, "wrong_namespace"},
      {"DuplicateIds",
       std::regex_replace(cda, std::regex("<title>Lääkemääräys</title>"), "<title ID=\"x\"/><title ID=\"x\"/>"),
       "duplicate_id"},
      {"Empty", "", "empty"},
  };
}

TEST_F(Documents, HostileDocumentsAreRefusedWithTheirReasonWhileAnotherClientIsServed) {
  auto other = daemon_->daemon().connect();
  std::atomic<bool> done{false};
  std::atomic<int> served{0};
  std::jthread bystander([&] {
    while (!done) {
      if (other->call("system.hello").contains("daemon")) ++served;
    }
  });
  struct Stop {
    std::atomic<bool>& flag;
    ~Stop() { flag = true; }
  } stop{done};
  for (const auto& h : hostile_documents()) {
    for (const char* method : {"sign.xml", "sign.prescription"}) {
      SCOPED_TRACE(std::string(h.name) + " " + method);
      Json params = {{"cert_id", wstr(daemon_->cert_id(kPhysician))}, {"document", wstr(h.document)}, {"pin", kPin}};
      if (std::string(method) == "sign.xml") params["profile"] = "kanta-cda";
      const auto e = rpc_error([&] { c().call(method, params); });
      EXPECT_EQ(e.code(), 1051) << e.what();
      EXPECT_EQ(e.reason(), "document_invalid");
      EXPECT_EQ(str(e.data().value("detail", Json(""))), h.detail) << e.what();
    }
  }
  done = true;
  bystander.join();
  EXPECT_GT(served.load(), 0);
  // Nothing was signed, and korttid still signs.
  EXPECT_EQ(read_file(daemon_->daemon().dir() / "audit.log").find("\"sign.xml\""), std::string::npos);
  EXPECT_EQ(xmlsec_verify(str(sign_xml(kPhysician, prescription(), "kanta-cda")["document"])).status, 0);
}

TEST_F(Documents, APrescriptionWithoutAtcCodesOrAuthorIsInvalid) {
  const std::string no_atc = std::regex_replace(
      prescription(), std::regex(R"(codeSystem="1\.2\.246\.537\.6\.32\.2007")"), R"(codeSystem="1.2.3")");
  auto e = rpc_error([&] { sign_prescription(kPhysician, no_atc); });
  EXPECT_EQ(e.code(), 1051);
  EXPECT_EQ(str(e.data()["detail"]), "missing_atc");
  const std::string no_author =
      std::regex_replace(prescription(), std::regex(R"(<assignedAuthor>[^]*</assignedAuthor>)"), "<assignedAuthor/>");
  e = rpc_error([&] { sign_prescription(kPhysician, no_author); });
  EXPECT_EQ(str(e.data()["detail"]), "missing_author");
}

}  // namespace
}  // namespace kortti::test
