// sign.xml, sign.prescription, sign.cms and their verification through
// korttid, checked by xmlsec1 and openssl. Hostile documents:
// documents_hostile_test.cpp.

#include "tests/documents/documents_fixture.hpp"

namespace kortti::test {
namespace {

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

TEST_F(Documents, ADocumentSentAsAnAttachmentIsSignedAndComesBackAsOne) {
  // Large enough to arrive in many reads, with bytes JSON would escape.
  std::string doc = prescription();
  doc.insert(doc.find("<component>"), "<!-- " + std::string(150000, '"') + "\n\\ -->");
  const auto id = c().send("sign.xml",
                           {{"cert_id", wstr(daemon_->cert_id(kPhysician))},
                            {"document", wstr(doc)},
                            {"profile", "enveloped"},
                            {"pin", kPin}},
                           "document");
  const auto answer = c().receive(std::chrono::seconds(30));
  ASSERT_TRUE(answer.has_value());
  ASSERT_EQ((*answer)["id"], id) << answer->dump();
  const std::string signed_doc = str((*answer)["result"]["document"]);
  EXPECT_EQ(str((*answer)["attachment"]["name"]), "document");
  EXPECT_EQ((*answer)["attachment"]["bytes"], signed_doc.size());
  EXPECT_NE(signed_doc.find(std::string(150000, '"')), std::string::npos);
  const auto ok = xmlsec_verify(signed_doc);
  EXPECT_EQ(ok.status, 0) << ok.err;

  // verify.xml's result has no document: its answer is plain JSON.
  c().send("verify.xml", {{"document", wstr(signed_doc)}}, "document");
  const auto verified = c().receive(std::chrono::seconds(30));
  ASSERT_TRUE(verified.has_value());
  EXPECT_FALSE(verified->contains("attachment"));
  EXPECT_TRUE((*verified)["result"]["valid"].get<bool>()) << verified->dump();
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

// That the PIN never reaches the card is shown on the virtual card, which
// counts tries (prescription_vcard_test.cpp); SoftHSM reports none.
TEST_F(Documents, ADeniedPrescriptionSignsNothingAndSaysWhy) {
  // The nurse has no right to prescribe.
  const auto e = rpc_error([&] { sign_prescription(kNurse, with_author(prescription(), "10000004"), "000000"); });
  EXPECT_EQ(e.code(), 1030);
  EXPECT_EQ(e.reason(), "policy_denied");
  ASSERT_TRUE(e.data().contains("reasons"));
  // A staff card, and no right to prescribe: both reasons are given.
  EXPECT_NE(e.data().dump().find("no_prescribing_right"), std::string::npos) << e.data().dump();
  EXPECT_NE(e.data().dump().find("card_type_not_allowed"), std::string::npos) << e.data().dump();

  // The author in the document must be the card's holder.
  const auto other = rpc_error([&] { sign_prescription(kSpecialist, prescription()); });
  EXPECT_EQ(other.code(), 1030);
  EXPECT_NE(other.data().dump().find("author_not_signer"), std::string::npos) << other.data().dump();
  EXPECT_NE(read_file(daemon_->daemon().dir() / "audit.log").find("policy_denied"), std::string::npos);
}

TEST_F(Documents, SignCmsWithEachSchemeVerifiesWithOpensslAndVerifyCms) {
  struct Case {
    const char* name;
    int cert;
    Json params;
    bool detached;
  };
  const std::vector<Case> cases = {
      {"rsa pkcs1 attached", kPhysician, {{"content", base64_encode(kReport)}}, false},
      {"rsa pss detached from a digest",
       kPhysician,
       {{"digest", base64_encode(digest(DigestAlgorithm::sha256, kReport))},
        {"digest_algorithm", "sha256"},
        {"detached", true},
        {"scheme", "pss"}},
       true},
      {"ec detached", kSpecialist, {{"content", base64_encode(kReport)}, {"detached", true}}, true},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.name);
    const Bytes cms = b64(sign_cms(k.cert, k.params)["cms"]);
    const auto ok = cms_verify(cms, k.detached ? std::optional<Bytes>(kReport) : std::nullopt);
    EXPECT_EQ(ok.status, 0) << ok.err;

    Json params = {{"cms", base64_encode(cms)}};
    if (k.detached) params["content"] = base64_encode(kReport);
    const Json v = c().call("verify.cms", params);
    EXPECT_TRUE(v["valid"].get<bool>()) << v.dump();
    EXPECT_EQ(v["detached"].get<bool>(), k.detached);
    ASSERT_EQ(v["signers"].size(), 1U);
    EXPECT_EQ(str(v["signers"][0]["validation"]["status"]), "valid");
    EXPECT_EQ(str(v["signers"][0]["identity"]["registration_number"]), k.cert == kPhysician ? "10000001" : "10000002");

    // Other content than was signed: both verifiers refuse, ours says where.
    Bytes other = kReport;
    other.push_back('!');
    if (k.detached) {
      EXPECT_NE(cms_verify(cms, other).status, 0);
    }
    Json bad_params = {{"cms", base64_encode(cms)}};
    if (k.detached) {
      bad_params["content"] = base64_encode(other);
    } else {
      Bytes tampered = cms;
      auto at = std::search(tampered.begin(), tampered.end(), kReport.begin(), kReport.end());
      ASSERT_NE(at, tampered.end());
      *(at + static_cast<std::ptrdiff_t>(kReport.size()) - 1) = '2';
      bad_params["cms"] = base64_encode(tampered);
      EXPECT_NE(cms_verify(tampered).status, 0);
    }
    const Json bad = c().call("verify.cms", bad_params);
    EXPECT_FALSE(bad["valid"].get<bool>());
    EXPECT_EQ(str(bad["signers"][0]["content_digest"]), "invalid");
    EXPECT_EQ(str(bad["signers"][0]["signature_value"]), "valid");
  }
  // Not CMS at all; an attached one from a digest.
  EXPECT_EQ(rpc_error([&] { c().call("verify.cms", {{"cms", base64_encode(kReport)}}); }).code(), 1051);
  EXPECT_EQ(rpc_error([&] {
              sign_cms(kPhysician, {{"digest", base64_encode(digest(DigestAlgorithm::sha256, kReport))},
                                    {"digest_algorithm", "sha256"}});
            }).code(),
            -32602);
}

TEST_F(Documents, VerifyCmsChecksTheSignersCertificateThroughThePolicy) {
  // A mathematically sound signature by a revoked certificate (its key is
  // in the test PKI, not on a token).
  const fs::path dir = pki_dir() / "people/revoked";
  const X509Ptr x509 = read_pem_certificate(dir / "sign.pem");
  signature::CmsInput input;
  input.content = kReport;
  const auto prepared = signature::prepare_cms(input, certificate_der(x509.get()), {});
  const Bytes cms = prepared.finish(sign_like_a_token(dir / "sign.key", prepared.digest_algorithm, prepared.digest));
  const Json v = c().call("verify.cms", {{"cms", base64_encode(cms)}});
  EXPECT_FALSE(v["valid"].get<bool>()) << v.dump();
  EXPECT_EQ(str(v["signers"][0]["signature_value"]), "valid");
  EXPECT_EQ(str(v["signers"][0]["validation"]["status"]), "revoked") << v.dump();
  EXPECT_NE(str(v["signers"][0]["message"]).find("certificate"), std::string::npos);
}

TEST_F(Documents, VerifyXmlNamesTheReferenceThatFailed) {
  const std::string once = str(sign_prescription(kPhysician, prescription())["document"]);
  const std::string twice = str(sign_xml(kSpecialist, once, "kanta-cda")["document"]);
  Json v = c().call("verify.xml", {{"document", wstr(twice)}});
  EXPECT_TRUE(v["valid"].get<bool>()) << v.dump();
  ASSERT_EQ(v["signatures"].size(), 2U);
  EXPECT_EQ(str(v["signatures"][0]["identity"]["registration_number"]), "10000001");
  EXPECT_EQ(str(v["signatures"][1]["identity"]["registration_number"]), "10000002");
  for (const auto& s : v["signatures"]) {
    EXPECT_EQ(str(s["signature_value"]), "valid");
    EXPECT_EQ(s["references"].size(), 2U);
  }

  std::string tampered = twice;
  tampered.replace(tampered.find("3 kertaa"), 1, "4");
  EXPECT_NE(xmlsec_verify(tampered).status, 0);
  v = c().call("verify.xml", {{"document", wstr(tampered)}});
  EXPECT_FALSE(v["valid"].get<bool>());
  for (const auto& s : v["signatures"]) {
    EXPECT_FALSE(s["valid"].get<bool>());
    EXPECT_EQ(str(s["references"][0]["uri"]), "");
    EXPECT_EQ(str(s["references"][0]["status"]), "invalid");
    EXPECT_EQ(str(s["signature_value"]), "valid");  // SignedInfo is untouched
  }
  const auto e = rpc_error([&] { c().call("verify.xml", {{"document", wstr(prescription())}}); });
  EXPECT_EQ(e.code(), 1051);
  EXPECT_EQ(str(e.data()["detail"]), "no_signature");
}

TEST_F(Documents, VerifyXmlRefusesWrappedDocumentsAndSaysWhatEachSignatureCovers) {
  const std::string kanta = str(sign_prescription(kPhysician, prescription())["document"]);
  const std::string enveloped = str(sign_xml(kSpecialist, prescription(), "enveloped")["document"]);

  Json v = c().call("verify.xml", {{"document", wstr(kanta)}});
  ASSERT_TRUE(v["valid"].get<bool>()) << v.dump();
  const Json& covers = v["signatures"][0]["covers"];
  EXPECT_EQ(str(covers["profile"]), "kanta-cda") << v.dump();
  ASSERT_EQ(covers["references"].size(), 2U) << v.dump();
  EXPECT_NE(str(covers["references"][0]).find("structuredBody"), std::string::npos) << v.dump();
  EXPECT_NE(str(covers["references"][1]).find("signatureTimestamp"), std::string::npos) << v.dump();
  for (const char* word : {"header", "NOT", "patient", "author"})
    EXPECT_NE(str(covers["not_covered"]).find(word), std::string::npos) << word << ": " << v.dump();
  v = c().call("verify.xml", {{"document", wstr(enveloped)}});
  ASSERT_TRUE(v["valid"].get<bool>()) << v.dump();
  EXPECT_EQ(str(v["signatures"][0]["covers"]["profile"]), "enveloped");
  EXPECT_NE(str(v["signatures"][0]["covers"]["references"][0]).find("whole document"), std::string::npos);
  EXPECT_TRUE(v["signatures"][0]["covers"]["not_covered"].is_null()) << v.dump();

  // A second, unsigned body: xmlsec1 digests it (the filter selects every
  // structuredBody) and refuses; so does korttid.
  const std::string second_body =
      insert_before(kanta, "</ClinicalDocument>",
                    "<component><structuredBody><component><section><text>Oksikodoni 80 mg</text></section></component>"
                    "</structuredBody></component>");
  EXPECT_NE(xmlsec_verify(second_body).status, 0);

  std::string moved = enveloped;
  const auto begin = moved.find("<ds:Signature");
  const auto end = moved.find("</ds:Signature>") + std::string("</ds:Signature>").size();
  const std::string sig = moved.substr(begin, end - begin);
  moved.erase(begin, end - begin);
  moved = insert_before(moved, "<section>", sig);

  const auto ts_at = kanta.find("ID=\"TS-") + 4;
  const std::string ts = kanta.substr(ts_at, kanta.find('"', ts_at) - ts_at);
  const std::string cubic =
      "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xpath-19991116\"><ds:XPath>count(//. | //@* | "
      "//namespace::*) &gt;= count(//. | //@*)</ds:XPath></ds:Transform>";
  const std::vector<std::pair<std::string, const char*>> refused = {
      {second_body, "extra_body"},
      {insert_before(kanta, "<hl7fi:softwareSupport>", "<hl7fi:note xml:id=\"" + ts + "\">2020</hl7fi:note>"),
       "duplicate_id"},
      {moved, "signature_misplaced"},
      {replace_first(enveloped, "URI=\"\"", "URI=\"#xpointer(//. | //@* | //namespace::*)\""), "reference_not_allowed"},
      {insert_before(enveloped, "</ds:Transforms>", cubic), "transform_not_allowed"},
  };
  for (const auto& [doc, detail] : refused) {
    SCOPED_TRACE(detail);
    const auto e = rpc_error([&, &doc = doc] { c().call("verify.xml", {{"document", wstr(doc)}}); });
    EXPECT_EQ(e.code(), 1051) << e.what();
    EXPECT_EQ(str(e.data().value("detail", Json(""))), detail) << e.what();
  }
}

TEST_F(Documents, CostlyOrMalformedSignaturesAreRefusedWhileAnotherClientIsServed) {
  start_daemon(4 * 1024 * 1024);
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

  const std::string signed_doc = str(sign_xml(kPhysician, prescription(), "enveloped")["document"]);
  std::string attributes = "<?xml version=\"1.0\"?><ClinicalDocument xmlns=\"urn:hl7-org:v3\"";
  for (int i = 0; i < 80000; ++i) attributes += " a" + std::to_string(i) + "=\"\"";
  attributes += "><component><structuredBody/></component></ClinicalDocument>";
  // Over the 1 MiB below which XPath filters used to be evaluated.
  const std::string big_xpointer =
      replace_first(insert_before(signed_doc, "</ClinicalDocument>", "<!--" + std::string(1536 * 1024, 'x') + "-->"),
                    "URI=\"\"", "URI=\"#xpointer(//. | //@* | //namespace::*)\"");
  auto value_of = [&](const std::string& text) {
    std::string d = signed_doc;
    const auto begin = d.find("<ds:SignatureValue>") + std::string("<ds:SignatureValue>").size();
    return d.replace(begin, d.find("</ds:SignatureValue>") - begin, text);
  };
  const std::string relative = replace_first(signed_doc, "<ClinicalDocument ", "<ClinicalDocument xmlns:r=\"rel\" ");
  // A note (not a CDA) whose reference claims Kanta's body filter.
  const std::string note = std::regex_replace(
      str(sign_xml(kPhysician, "<note xmlns=\"urn:example:note\">hello</note>", "enveloped")["document"]),
      std::regex("<ds:Transforms>[^]*</ds:Transforms>"),
      "<ds:Transforms><ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>"
      "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xpath-19991116\"><ds:XPath "
      "xmlns:hl7=\"urn:hl7-org:v3\">ancestor-or-self::hl7:structuredBody</ds:XPath></ds:Transform>"
      "</ds:Transforms>");

  struct Case {
    const char* name;
    std::string document;
    int code;
    const char* detail;
  };
  const std::vector<Case> cases = {
      {"80,000 attributes", attributes, 1051, "too_many_attributes"},
      {"an xpointer in a large document", big_xpointer, 1051, "reference_not_allowed"},
      {"an empty SignatureValue", value_of(""), 1051, "malformed_signature"},
      {"a SignatureValue that is not base64", value_of("*"), 1051, "bad_base64"},
      {"no SignedInfo", std::regex_replace(signed_doc, std::regex("<ds:SignedInfo>[^]*</ds:SignedInfo>"), ""), 1051,
       "malformed_signature"},
      {"no DigestValue", std::regex_replace(signed_doc, std::regex("<ds:DigestValue>[^<]*</ds:DigestValue>"), ""), 1051,
       "malformed_signature"},
      {"an unknown signature method", replace_first(signed_doc, "xmldsig-more#rsa-sha256", "xmldsig#rsa-sha1"), 1050,
       "unsupported_algorithm"},
      {"a relative namespace name", relative, 1051, "relative_namespace"},
      {"Kanta's body filter in a document without a body", note, 1051, "transform_not_allowed"},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.name);
    const auto e = rpc_error([&] { c().call("verify.xml", {{"document", wstr(k.document)}}); });
    EXPECT_EQ(e.code(), k.code) << e.what();
    EXPECT_EQ(str(e.data().value("detail", Json(""))), k.detail) << e.what();
  }
  // Signing them fails the same way, before the card is asked.
  for (const auto& [doc, detail] : std::vector<std::pair<std::string, const char*>>{
           {attributes, "too_many_attributes"},
           {replace_first(prescription(), "<ClinicalDocument ", "<ClinicalDocument xmlns:r=\"rel\" "),
            "relative_namespace"}}) {
    for (const char* profile : {"kanta-cda", "enveloped"}) {
      SCOPED_TRACE(std::string(detail) + " " + profile);
      const auto e = rpc_error([&, &doc = doc] { sign_xml(kPhysician, doc, profile); });
      EXPECT_EQ(e.code(), 1051) << e.what();
      EXPECT_EQ(str(e.data().value("detail", Json(""))), detail) << e.what();
    }
  }
  done = true;
  bystander.join();
  EXPECT_GT(served.load(), 0);
  EXPECT_TRUE(c().call("verify.xml", {{"document", wstr(signed_doc)}})["valid"].get<bool>());
}

TEST_F(Documents, ABatchChecksEveryItemOnItsOwnWithOnePinEntry) {
  const Json items = Json::array(
      {{{"method", "sign.prescription"}, {"params", {{"document", wstr(prescription())}}}},
       // Another author than the card's holder: denied, and only this item.
       {{"method", "sign.prescription"}, {"params", {{"document", wstr(with_author(prescription(), "10000002"))}}}},
       {{"method", "sign.xml"}, {"params", {{"document", wstr(prescription())}, {"profile", "enveloped"}}}},
       {{"method", "sign.cms"}, {"params", {{"content", base64_encode(kReport)}}}},
       {{"method", "sign.data"}, {"params", {{"data", base64_encode(kReport)}}}},
       {{"method", "sign.xml"}, {"params", {{"document", "<not-xml"}, {"profile", "enveloped"}}}},
       {{"method", "tokens.list"}},
       {{"method", "sign.digest"}, {"params", {{"digest", "AAAA"}, {"digest_algorithm", "sha256"}, {"pin", kPin}}}}});
  const Json r =
      c().call("sign.batch", {{"cert_id", wstr(daemon_->cert_id(kPhysician))}, {"items", items}, {"pin", kPin}});
  ASSERT_EQ(r["items"].size(), 8U) << r.dump();
  const Json& out = r["items"];
  EXPECT_TRUE(out[0]["result"]["decision"]["allowed"].get<bool>()) << out[0].dump();
  EXPECT_EQ(xmlsec_verify(str(out[0]["result"]["document"])).status, 0);
  EXPECT_EQ(out[1]["error"]["code"], 1030) << out[1].dump();
  EXPECT_NE(out[1]["error"]["data"].dump().find("author_not_signer"), std::string::npos);
  EXPECT_EQ(xmlsec_verify(str(out[2]["result"]["document"])).status, 0) << out[2].dump();
  EXPECT_EQ(cms_verify(b64(out[3]["result"]["cms"])).status, 0) << out[3].dump();
  EXPECT_TRUE(openssl_verify_data(b64(out[4]["result"]["certificate"]), kReport, b64(out[4]["result"]["signature"]),
                                  "sha256", "pkcs1"));
  EXPECT_EQ(out[5]["error"]["code"], 1051);
  EXPECT_EQ(out[6]["error"]["code"], -32602) << "only signing methods can be batched";
  EXPECT_EQ(out[7]["error"]["code"], -32602) << "the PIN belongs to the batch";
  EXPECT_EQ(r["signed"], 4);
  EXPECT_EQ(r["failed"], 4);

  // One wrong PIN: every item fails; the PIN is tried once (SoftHSM keeps no
  // count to show it: the PC/SC batch test does).
  const Json wrong = c().call("sign.batch", {{"cert_id", wstr(daemon_->cert_id(kPhysician))},
                                             {"items", Json::array({items[2], items[3], items[4], items[2]})},
                                             {"pin", "000000"}});
  ASSERT_EQ(wrong["items"].size(), 4U) << wrong.dump();
  for (const auto& item : wrong["items"]) EXPECT_EQ(item["error"]["code"], 1011) << item.dump();

  // Over the configured size.
  Json nine = Json::array();
  for (int i = 0; i < 9; ++i) nine.push_back(items[4]);
  const auto e = rpc_error([&] {
    c().call("sign.batch", {{"cert_id", wstr(daemon_->cert_id(kPhysician))}, {"items", nine}, {"pin", kPin}});
  });
  EXPECT_EQ(e.code(), -32602);
  EXPECT_NE(std::string(e.what()).find("at most 8"), std::string::npos) << e.what();
}

TEST_F(Documents, KorttiPrescribeAndVerifyOnTheCommandLine) {
  TempDir tmp;
  write_file(tmp / "pin", std::string(kPin) + "\n");
  write_file(tmp / "rx.xml", prescription());
  write_file(tmp / "other.xml", with_author(prescription(), "10000002"));
  auto kortti = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {kortti_binary().string(), "--socket", daemon_->daemon().socket()});
    return run(args, {}, "", {{3, tmp / "pin"}});
  };
  const std::string cert = daemon_->cert_id(kPhysician);
  auto r = kortti({"prescribe", "--cert", cert, "--in", (tmp / "rx.xml").string(), "--out",
                   (tmp / "signed.xml").string(), "--pin-fd", "3"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("ALLOWED"), std::string::npos) << r.out;
  EXPECT_EQ(xmlsec_verify(read_file(tmp / "signed.xml")).status, 0);
  r = kortti({"verify", "--in", (tmp / "signed.xml").string()});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("VALID"), std::string::npos);

  std::string tampered = read_file(tmp / "signed.xml");
  tampered.replace(tampered.find("3 kertaa"), 1, "4");
  write_file(tmp / "tampered.xml", tampered);
  r = kortti({"verify", "--in", (tmp / "tampered.xml").string()});
  EXPECT_EQ(r.status, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("NOT VALID"), std::string::npos);
  EXPECT_NE(r.out.find("\"\" invalid"), std::string::npos) << r.out;

  r = kortti({"prescribe", "--cert", cert, "--in", (tmp / "other.xml").string(), "--out",
              (tmp / "other-signed.xml").string(), "--pin-fd", "3"});
  EXPECT_EQ(r.status, 3) << r.err;
  EXPECT_NE(r.err.find("author_not_signer"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "other-signed.xml"));

  EXPECT_EQ(kortti({"verify"}).status, 2);
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

// A rule looking for J01CA04 would not see j01ca04 or " J01CA04": an ATC
// code in another form is refused before the policy and the card.
TEST_F(Documents, APrescriptionsAtcCodeMustBeInItsStandardForm) {
  for (const std::string code : {"j01ca04", " J01CA04", "J01CA0", "J01CA04 "}) {
    const std::string doc =
        std::regex_replace(prescription(), std::regex(R"(code="J01CA04")"), "code=\"" + code + "\"");
    const auto e = rpc_error([&] { sign_prescription(kPhysician, doc); });
    EXPECT_EQ(e.code(), 1051) << code << ": " << e.what();
    EXPECT_EQ(str(e.data()["detail"]), "invalid_atc") << code;
  }
}

}  // namespace
}  // namespace kortti::test
