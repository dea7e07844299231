// Hostile and very large documents through korttid: each refused with its
// reason (or, in CMS, only bytes to sign), while another client is served.

#include "tests/documents/documents_fixture.hpp"

namespace kortti::test {
namespace {

// Another client calling korttid all the while: one client's hostile request
// must not hold up the others.
class Bystander {
 public:
  explicit Bystander(const Daemon& daemon)
      : client_(daemon.connect()), thread_([this](const std::stop_token& stop) { run(stop); }) {}
  // Stops calling; how many answers came, 0 if one did not come in time.
  int stop() {
    thread_.request_stop();
    if (thread_.joinable()) thread_.join();
    return unanswered_ ? 0 : served_.load();
  }

 private:
  void run(const std::stop_token& stop) {
    try {
      while (!stop.stop_requested())
        if (client_->call("system.hello", Json::object(), std::chrono::seconds(10)).contains("daemon")) ++served_;
    } catch (const std::exception&) {
      unanswered_ = true;
    }
  }

  std::unique_ptr<client::Client> client_;
  std::atomic<int> served_{0};
  std::atomic<bool> unanswered_{false};
  std::jthread thread_;  // last: it runs on the members above
};

// Long enough for a document of 200 KB, short enough that a hang shows.
constexpr std::chrono::seconds kQuick{20};

// A harm done to a CDA: to the unsigned prescription, which the signing
// methods and verify.xml are given, and to a signed one, so that verify.xml
// also meets it in a document that does carry a signature.
struct Hostile {
  const char* name;
  std::function<std::string(const std::string&)> harm;
  const char* detail;           // sign.xml and sign.prescription
  const char* verify_unsigned;  // verify.xml of the harmed prescription
  const char* verify_signed;    // verify.xml of the harmed signed prescription
};

std::vector<Hostile> hostile_documents() {
  auto replace_all = [](const char* from, const char* to) {
    return [from, to](const std::string& cda) { return std::regex_replace(cda, std::regex(from), to); };
  };
  // A DOCTYPE after the XML declaration, and an entity used in the body.
  auto with_dtd = [](const char* subset, const char* entity) {
    return [subset, entity](const std::string& cda) {
      std::string doc = cda;
      doc.insert(doc.find("?>") + 2, std::string("<!DOCTYPE ClinicalDocument [") + subset + "]>");
      return replace_first(doc, "Amoksisilliini 500 mg kapseli.", entity);
    };
  };
  auto deep = [](const std::string& cda) {
    std::string nested;
    for (int i = 0; i < 300; ++i) nested += "<content>";
    for (int i = 0; i < 300; ++i) nested += "</content>";
    return replace_first(cda, "3 kertaa", nested + "3 kertaa");
  };
  return {
      {"NotWellFormed", replace_all("</ClinicalDocument>", ""), "not_well_formed", "not_well_formed",
       "not_well_formed"},
      // Bytes that are not UTF-8 cannot travel in JSON at all (-32700); a
      // document can still claim another encoding.
      {"DeclaredLatin1", replace_all("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\""), "not_utf8", "not_utf8",
       "not_utf8"},
      {"ExternalEntity", with_dtd("<!ENTITY x SYSTEM \"file:///etc/passwd\">", "&x;"), "dtd_not_allowed",
       "dtd_not_allowed", "dtd_not_allowed"},
      {"BillionLaughs",
       with_dtd("<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">"
                "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">",
                "&c;"),
       "dtd_not_allowed", "dtd_not_allowed", "dtd_not_allowed"},
      {"DeeplyNested", deep, "too_deep", "too_deep", "too_deep"},
      {"OverTheSizeLimit", [](const std::string& cda) { return cda + std::string(200000, ' '); }, "too_large",
       "too_large", "too_large"},
      // verify.xml takes any XML; the Kanta signature is then in no place a
      // profile puts one.
      {"NotACda", replace_all("ClinicalDocument", "note"), "not_cda", "no_signature", "signature_misplaced"},
      {"NoStructuredBody", replace_all("structuredBody", "nonXMLBody"), "no_structured_body", "no_signature",
       "no_structured_body"},
      {"WrongNamespace", replace_all(R"(xmlns="urn:hl7-org:v3")", R"(xmlns="urn:example")"), "wrong_namespace",
       "no_signature", "signature_misplaced"},
      {"DuplicateIds", replace_all("<title>Lääkemääräys</title>", "<title ID=\"x\"/><title ID=\"x\"/>"), "duplicate_id",
       "duplicate_id", "duplicate_id"},
      {"Empty", [](const std::string&) { return std::string(); }, "empty", "empty", "empty"},
  };
}

// `method` must answer 1051 document_invalid with `detail`, and in time;
// `attach` names a param to send as an attachment.
void expect_document_invalid(client::Client& c, const char* method, const Json& params, const char* detail,
                             const char* attach = "") {
  const auto e = rpc_error([&] { c.call_attached(method, params, attach, kQuick); });
  EXPECT_EQ(e.code(), 1051) << e.what();
  EXPECT_EQ(e.reason(), "document_invalid") << e.what();
  EXPECT_EQ(str(e.data().value("detail", Json(""))), detail) << e.what();
}

TEST_F(Documents, HostileDocumentsAreRefusedWithTheirReasonWhileAnotherClientIsServed) {
  const std::string signed_doc = str(sign_prescription(kPhysician, prescription())["document"]);
  ASSERT_EQ(xmlsec_verify(signed_doc).status, 0);
  Bystander bystander(daemon_->daemon());
  const auto hostile = hostile_documents();
  ASSERT_EQ(hostile.size(), 11U);
  for (const auto& h : hostile) {
    const std::string doc = h.harm(prescription());
    const std::string signed_harmed = h.harm(signed_doc);
    ASSERT_NE(doc, prescription()) << h.name;
    ASSERT_NE(signed_harmed, signed_doc) << h.name;
    for (const char* method : {"sign.xml", "sign.prescription"}) {
      SCOPED_TRACE(std::string(h.name) + " " + method);
      Json params = {{"cert_id", wstr(daemon_->cert_id(kPhysician))}, {"document", wstr(doc)}, {"pin", kPin}};
      if (std::string(method) == "sign.xml") params["profile"] = "kanta-cda";
      expect_document_invalid(c(), method, params, h.detail);
    }
    for (const char* attach : {"", "document"}) {
      SCOPED_TRACE(std::string(h.name) + " verify.xml" + (*attach != 0 ? " attached" : ""));
      expect_document_invalid(c(), "verify.xml", {{"document", wstr(doc)}}, h.verify_unsigned, attach);
      expect_document_invalid(c(), "verify.xml", {{"document", wstr(signed_harmed)}}, h.verify_signed, attach);
    }
  }
  EXPECT_GT(bystander.stop(), 0);
  // Nothing was signed but the prescription above, and korttid still signs
  // and verifies.
  std::vector<std::string> actions;
  for (const Json& line : outcomes(daemon_->daemon().audit())) actions.push_back(str(line["action"]));
  EXPECT_EQ(actions, std::vector<std::string>{"sign.prescription"});
  EXPECT_EQ(xmlsec_verify(str(sign_xml(kPhysician, prescription(), "kanta-cda")["document"])).status, 0);
  EXPECT_TRUE(c().call("verify.xml", {{"document", wstr(signed_doc)}})["valid"].get<bool>());
}

// CMS signs and verifies bytes: a hostile document is content like any other,
// never parsed as XML, and it is not CMS.
TEST_F(Documents, HostileDocumentsInCmsAreOnlyBytesToSignAndVerify) {
  Bystander bystander(daemon_->daemon());
  const auto hostile = hostile_documents();
  ASSERT_EQ(hostile.size(), 11U);
  for (const auto& h : hostile) {
    SCOPED_TRACE(h.name);
    const std::string doc = h.harm(prescription());
    const Bytes bytes(doc.begin(), doc.end());
    const std::string encoded = base64_encode(bytes);
    const bool too_large = std::string_view(h.detail) == "too_large";
    expect_document_invalid(c(), "verify.cms", {{"cms", encoded}}, too_large ? "too_large" : "not_cms");
    if (too_large) {
      for (bool detached : {false, true})
        expect_document_invalid(c(), "sign.cms",
                                {{"cert_id", wstr(daemon_->cert_id(kPhysician))},
                                 {"content", encoded},
                                 {"detached", detached},
                                 {"pin", kPin}},
                                "too_large");
      continue;
    }

    const Bytes attached = b64(sign_cms(kPhysician, {{"content", encoded}})["cms"]);
    Json v = c().call("verify.cms", {{"cms", base64_encode(attached)}}, kQuick);
    EXPECT_TRUE(v["valid"].get<bool>()) << v.dump();
    EXPECT_FALSE(v["detached"].get<bool>());
    const auto by_openssl = cms_verify(attached);
    EXPECT_EQ(by_openssl.status, 0) << by_openssl.err;
    EXPECT_EQ(by_openssl.out, doc) << "the content openssl finds in the signature";

    const Bytes detached = b64(sign_cms(kPhysician, {{"content", encoded}, {"detached", true}})["cms"]);
    v = c().call("verify.cms", {{"cms", base64_encode(detached)}, {"content", encoded}}, kQuick);
    EXPECT_TRUE(v["valid"].get<bool>()) << v.dump();
    EXPECT_TRUE(v["detached"].get<bool>());
    Bytes changed = bytes;
    if (changed.empty())
      changed.push_back('<');
    else
      changed[changed.size() / 2] ^= 0x01;
    v = c().call("verify.cms", {{"cms", base64_encode(detached)}, {"content", base64_encode(changed)}}, kQuick);
    EXPECT_FALSE(v["valid"].get<bool>()) << v.dump();
    ASSERT_EQ(v["signers"].size(), 1U) << v.dump();
    EXPECT_EQ(str(v["signers"][0]["content_digest"]), "invalid");
    EXPECT_EQ(str(v["signers"][0]["signature_value"]), "valid");
    EXPECT_NE(cms_verify(detached, changed).status, 0);
  }
  EXPECT_GT(bystander.stop(), 0);
  const Bytes good = b64(sign_cms(kPhysician, {{"content", base64_encode(kReport)}})["cms"]);
  EXPECT_TRUE(c().call("verify.cms", {{"cms", base64_encode(good)}})["valid"].get<bool>());
}

// One follow-up visit of a long care record: about 4 KiB of narrative, with
// what canonical XML rewrites (entity and character references, CDATA, a
// comment, non-ASCII text), an ID, and an entry whose xsi:type needs the
// namespace declared on the root.
std::string follow_up_section(int i) {
  const std::string n = std::to_string(i);
  std::string narrative;
  while (narrative.size() < 4096)
    narrative += "Vointi hyvä; verenpaine 128/84 mmHg &amp; syke 72/min, lääkitys ennallaan. ";
  return "<component><section ID=\"seuranta-" + n +
         "\"><code code=\"1\" codeSystem=\"1.2.246.537.6.12.2002.331\" displayName=\"Seuranta\"/><title>Käynti " + n +
         "</title><text><paragraph>" + narrative + "</paragraph><!-- käynti " + n +
         " --><content>&lt;ei muutoksia&gt;&#13;<![CDATA[a < b & c]]></content></text><entry><observation "
         "classCode=\"OBS\" moodCode=\"EVN\"><code code=\"8480-6\" codeSystem=\"2.16.840.1.113883.6.1\"/><value "
         "xsi:type=\"PQ\" value='128' unit=\"mm[Hg]\"/></observation></entry></section></component>";
}

// korttid computes Kanta's body reference itself, in linear time, and no
// longer hands xmlsec the XPath filter past 1 MiB; xmlsec1 evaluates that
// filter. The two must agree on a body past 1 MiB, and both must see one
// changed byte at its far end.
TEST_F(Documents, AKantaPrescriptionOverOneMebibyteVerifiesWithXmlsec1AndKorttidAndOneChangedByteFailsBoth) {
  start_daemon(16 * 1024 * 1024);  // korttid's default; the fixture's 200,000 is there for OverTheSizeLimit
  std::string sections;
  int count = 0;
  while (sections.size() < 1200 * 1024) sections += follow_up_section(count++);
  const std::string doc = insert_before(prescription(), "</structuredBody>", sections);
  ASSERT_GT(doc.size(), 1024U * 1024U);

  const Json r = c().call("sign.prescription",
                          {{"cert_id", wstr(daemon_->cert_id(kPhysician))}, {"document", wstr(doc)}, {"pin", kPin}},
                          std::chrono::seconds(60));
  EXPECT_TRUE(r["decision"]["allowed"].get<bool>()) << r["decision"].dump();
  const std::string once = str(r["document"]);
  const std::string twice = str(sign_xml(kSpecialist, once, "kanta-cda")["document"]);
  ASSERT_GT(twice.size(), 1024U * 1024U);
  EXPECT_NE(twice.find("<title>Käynti " + std::to_string(count - 1) + "</title>"), std::string::npos);
  const auto ids = signature_ids(twice);
  ASSERT_EQ(ids.size(), 2U);
  for (const auto& id : ids) {
    const auto v = xmlsec_verify(twice, id);
    EXPECT_EQ(v.status, 0) << id << ": " << v.err;
  }
  Json v = c().call("verify.xml", {{"document", wstr(twice)}}, std::chrono::seconds(60));
  EXPECT_TRUE(v["valid"].get<bool>()) << v.dump();
  ASSERT_EQ(v["signatures"].size(), 2U);
  EXPECT_EQ(str(v["signatures"][0]["covers"]["profile"]), "kanta-cda");
  EXPECT_EQ(str(v["signatures"][1]["covers"]["profile"]), "kanta-cda");

  // In the last visit's narrative, past the first MiB.
  std::string tampered = twice;
  const auto at = tampered.rfind("verenpaine 128");
  ASSERT_NE(at, std::string::npos);
  ASSERT_GT(at, 1024U * 1024U);
  ASSERT_LT(at, tampered.find("</structuredBody>"));
  tampered[at] ^= 0x01;  // 'v' -> 'w'
  for (const auto& id : ids) EXPECT_NE(xmlsec_verify(tampered, id).status, 0) << id;
  v = c().call("verify.xml", {{"document", wstr(tampered)}}, std::chrono::seconds(60));
  EXPECT_FALSE(v["valid"].get<bool>()) << v.dump();
  ASSERT_EQ(v["signatures"].size(), 2U);
  for (const auto& s : v["signatures"]) {
    EXPECT_FALSE(s["valid"].get<bool>());
    ASSERT_EQ(s["references"].size(), 2U) << s.dump();
    EXPECT_EQ(str(s["references"][0]["status"]), "invalid") << "the body";
    EXPECT_EQ(str(s["references"][1]["status"]), "valid") << "the timestamp";
    EXPECT_EQ(str(s["signature_value"]), "valid");
  }
}

}  // namespace
}  // namespace kortti::test
