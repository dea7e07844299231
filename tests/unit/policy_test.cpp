// policy/ in process: identity extraction from the test PKI's certificates,
// the extract's record format, chain and validity with the clock skew, and
// the rules as a pure function for cases the daemon tests cannot set up.

#include <gtest/gtest.h>

#include "common/openssl.hpp"
#include "ipc/convert.hpp"
#include "policy/policy.hpp"
#include "tests/support/support.hpp"
#include "tests/support/thrown.hpp"

namespace kortti::policy {
namespace {

Bytes pem_certificate(const std::string& path) { return test::pem_certificates(path).at(0); }

Bytes person(const std::string& who, const std::string& purpose = "sign") {
  return pem_certificate((test::pki_dir() / "people" / who / (purpose + ".pem")).string());
}

SystemTime not_after(const Bytes& der) {
  X509Ptr cert = parse_certificate(der);
  std::tm tm{};
  ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm);
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

TEST(Identity, DefaultMappingReadsTheTestPki) {
  IdentityMapping m;
  m.card_types = {{"2.999.10.1", "professional"}, {"2.999.10.2", "staff"}};
  const Identity id = read_identity(person("physician"), m);
  EXPECT_EQ(id.given_name, "Aino");
  EXPECT_EQ(id.family_name, "Testilääkäri");
  EXPECT_EQ(id.common_name, "Testilääkäri Aino");
  EXPECT_EQ(id.title, "Laillistettu lääkäri");
  EXPECT_EQ(id.organisation, "Testisairaala");
  EXPECT_EQ(id.satu, "99900001A");
  EXPECT_EQ(id.registration_number, "10000001");
  EXPECT_EQ(id.card_type, "professional");
  EXPECT_EQ(id.policies, std::vector<std::string>{"2.999.10.1"});
  EXPECT_TRUE(id.non_repudiation);
  EXPECT_FALSE(id.digital_signature);

  const Identity auth = read_identity(person("nurse", "auth"), m);
  EXPECT_EQ(auth.card_type, "staff");
  EXPECT_TRUE(auth.digital_signature);
  EXPECT_FALSE(auth.non_repudiation);
}

TEST(Identity, MappingIsConfiguration) {
  IdentityMapping m;
  m.registration_number = "subject:serialNumber";   // a card that keeps it there
  m.satu = "subject:2.5.4.5";                       // the same, by OID
  m.title = "";                                     // not read
  m.organisation = "san:otherName:1.2.246.537.99";  // absent: empty
  const Identity id = read_identity(person("specialist"), m);
  EXPECT_EQ(id.registration_number, "99900002B");
  EXPECT_EQ(id.satu, "99900002B");
  EXPECT_EQ(id.title, "");
  EXPECT_EQ(id.organisation, "");
  EXPECT_EQ(id.card_type, "");  // no card types mapped
}

TEST(Identity, MappingSourcesAreChecked) {
  EXPECT_NO_THROW(check_mapping_source("subject:GN"));
  EXPECT_NO_THROW(check_mapping_source("subject:2.5.4.12"));
  EXPECT_NO_THROW(check_mapping_source("san:otherName:1.2.246.537.26"));
  EXPECT_NO_THROW(check_mapping_source(""));
  EXPECT_THROW(check_mapping_source("subject:NoSuchAttribute"), std::invalid_argument);
  EXPECT_THROW(check_mapping_source("san:otherName:registration"), std::invalid_argument);
  EXPECT_THROW(check_mapping_source("issuer:CN"), std::invalid_argument);
  EXPECT_THROW(check_mapping_source("subject:"), std::invalid_argument);
}

TEST(Identity, NotACertificateIsCertificateInvalid) {
  const auto e = test::thrown<Error>(
      [&] {
        (void)read_identity(Bytes{0x30, 0x03, 0x02, 0x01, 0x01}, IdentityMapping{});
      },
      "no error");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::certificate_invalid);
}

RevocationOptions no_revocation() {
  RevocationOptions r;
  r.ocsp = false;
  r.crl = false;
  return r;
}

TEST(Validator, BothRootGenerationsSideBySide) {
  Validator v(
      {(test::pki_dir() / "trust").string(), (test::pki_dir() / "intermediates").string(), std::chrono::seconds(300)},
      no_revocation());
  EXPECT_EQ(v.anchor_count(), 2U);
  const auto rsa = v.validate(person("physician"), {}, Action::sign_prescription);
  EXPECT_TRUE(rsa.valid()) << rsa.message;
  EXPECT_EQ(rsa.chain.size(), 3U);
  EXPECT_EQ(rsa.revocation.status, "not_checked");
  const auto ec = v.validate(person("specialist"), {}, Action::sign_prescription);
  EXPECT_TRUE(ec.valid()) << ec.message;
  EXPECT_NE(ec.chain.back().find("G3 ECC"), std::string::npos);
}

TEST(Validator, AnIntermediateFromTheCardCompletesTheChain) {
  Validator v({(test::pki_dir() / "trust").string(), "", std::chrono::seconds(300)}, no_revocation());
  EXPECT_EQ(v.validate(person("physician"), {}, Action::sign_document).status, "untrusted");
  const Bytes intermediate = pem_certificate((test::pki_dir() / "ca" / "hc-rsa.pem").string());
  EXPECT_TRUE(v.validate(person("physician"), {intermediate}, Action::sign_document).valid());
}

TEST(Validator, OnlyTheAnchorsInTheFolderAreTrusted) {
  test::TempDir only_g2;
  std::filesystem::copy_file(test::pki_dir() / "trust" / "g2-root.pem", only_g2 / "g2-root.pem");
  Validator v({only_g2.path().string(), (test::pki_dir() / "intermediates").string(), std::chrono::seconds(300)},
              no_revocation());
  EXPECT_TRUE(v.validate(person("physician"), {}, Action::sign_document).valid());
  EXPECT_EQ(v.validate(person("specialist"), {}, Action::sign_document).status, "untrusted");
  // An impostor with a root of the same name is still untrusted.
  const Bytes rogue = pem_certificate((test::pki_dir() / "ca" / "rogue-root.pem").string());
  EXPECT_EQ(v.validate(person("impostor"), {rogue}, Action::sign_document).status, "untrusted");
}

SystemTime not_before(const Bytes& der) {
  X509Ptr cert = parse_certificate(der);
  std::tm tm{};
  ASN1_TIME_to_tm(X509_get0_notBefore(cert.get()), &tm);
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

// A one-day certificate from the RSA test CA, so that both ends of its
// validity lie inside the CA's, with the extensions `ext` (a -extfile).
Bytes one_day_certificate(const test::TempDir& dir, const std::string& ext = "keyUsage = critical, nonRepudiation\n") {
  const auto pki = test::pki_dir();
  test::write_file(dir / "ext", ext);
  auto r = test::run({"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-subj", "/CN=one day", "-keyout", (dir / "k.pem").string(), "-out", (dir / "csr.pem").string()});
  if (r.status == 0)
    r = test::run({"openssl", "x509", "-req", "-in", (dir / "csr.pem").string(), "-CA",
                   (pki / "ca" / "hc-rsa.pem").string(), "-CAkey", (pki / "ca" / "hc-rsa.key").string(), "-set_serial",
                   "0x5eed", "-days", "1", "-extfile", (dir / "ext").string(), "-out", (dir / "c.pem").string()});
  if (r.status != 0) throw std::runtime_error("openssl: " + r.err);
  return pem_certificate((dir / "c.pem").string());
}

TEST(Validator, ClockSkewIsAllowedAndNoMore) {
  test::TempDir dir;
  const Bytes cert = one_day_certificate(dir);
  Validator v(
      {(test::pki_dir() / "trust").string(), (test::pki_dir() / "intermediates").string(), std::chrono::seconds(300)},
      no_revocation());
  using std::chrono::seconds;
  EXPECT_TRUE(v.validate(cert, {}, Action::sign_document, not_after(cert) + seconds(299)).valid());
  EXPECT_EQ(v.validate(cert, {}, Action::sign_document, not_after(cert) + seconds(301)).status, "expired");
  EXPECT_TRUE(v.validate(cert, {}, Action::sign_document, not_before(cert) - seconds(299)).valid());
  EXPECT_EQ(v.validate(cert, {}, Action::sign_document, not_before(cert) - seconds(301)).status, "not_yet_valid");
}

TEST(Validator, KeyUsagePerAction) {
  Validator v(
      {(test::pki_dir() / "trust").string(), (test::pki_dir() / "intermediates").string(), std::chrono::seconds(300)},
      no_revocation());
  EXPECT_TRUE(v.validate(person("physician", "auth"), {}, Action::authenticate).valid());
  EXPECT_EQ(v.validate(person("physician", "auth"), {}, Action::sign_document).status, "wrong_key_usage");
  EXPECT_EQ(v.validate(person("physician", "sign"), {}, Action::authenticate).status, "wrong_key_usage");
  // Without keyUsage RFC 5280 allows every use: a login certificate could
  // sign. korttid takes it for none.
  test::TempDir dir;
  const Bytes bare = one_day_certificate(dir, "basicConstraints = CA:FALSE\n");
  for (const Action a : {Action::authenticate, Action::sign_document, Action::sign_prescription}) {
    const ValidationResult r = v.validate(bare, {}, a);
    EXPECT_EQ(r.status, "wrong_key_usage");
    EXPECT_NE(r.message.find("no keyUsage"), std::string::npos) << r.message;
  }
  X509Ptr parsed = parse_certificate(bare);
  EXPECT_EQ(key_usage_or_none(parsed.get()), 0U);
}

TEST(Record, ParsesTheIssueFormatAndWritesItBack) {
  const Json line = Json::parse(R"({"registration_number":"1","prescriber_id":"9","name":{"given":"A","family":"B"},
    "identifiers":{"satu":"S","hetu":"H"},"rights":[{"code":"034","valid_from":"2020-01-01","valid_to":null}],
    "restrictions":[{"target":"10","object":{"system":"ATC","code":"N02A"},"scope":null,
    "valid_from":"2021-02-03T00:00:00+02:00","valid_to":null}],"specialties":["x"]})");
  const Professional p = parse_professional(line);
  EXPECT_EQ(p.rights.at(0).valid.from, "2020-01-01");
  EXPECT_FALSE(p.rights.at(0).valid.to);
  EXPECT_EQ(p.restrictions.at(0).valid.from, "2021-02-03");  // the date of a full time
  EXPECT_EQ(p.restrictions.at(0).object_code, "N02A");
  // The wire form (ipc/) reads back as the same record.
  const Professional again = parse_professional(ipc::to_json(p));
  EXPECT_EQ(ipc::to_json(again).dump(), ipc::to_json(p).dump());
}

TEST(Record, ValidityIsInclusive) {
  const Validity v{"2020-01-01", "2020-12-31"};
  EXPECT_FALSE(v.covers("2019-12-31"));
  EXPECT_TRUE(v.covers("2020-01-01"));
  EXPECT_TRUE(v.covers("2020-12-31"));
  EXPECT_FALSE(v.covers("2021-01-01"));
  EXPECT_TRUE(Validity{}.covers("1900-01-01"));
}

TEST(Record, ErrorsNameTheField) {
  auto error = [](const char* text) {
    try {
      (void)parse_professional(Json::parse(text));
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error(R"({"registration_number":1})"), "registration_number: must be a string");
  EXPECT_EQ(error(R"({"registration_number":"1","rights":{}})"), "rights: must be an array");
  EXPECT_EQ(
      error(R"({"registration_number":"1","rights":[{"code":"1","valid_from":"2020-02-01","valid_to":"2020-01-01"}]})"),
      "rights[0].valid_to: is before valid_from");
  EXPECT_EQ(error(R"({"registration_number":"1","restrictions":[{"target":"10","scope":5}]})"),
            "restrictions[0].scope: must be a string or null");
  EXPECT_EQ(error(R"({"registration_number":"1","name":"A B"})"), "name: must be an object with given and family");
}

// docs/policy.md: a bad date rejects the file. Days the calendar does not
// have, and full times whose clock part is impossible, are bad dates.
TEST(Record, ImpossibleDatesAreRefusedWithTheField) {
  auto error = [](const std::string& field, const std::string& value) {
    const std::string line = R"({"registration_number":"1","rights":[{"code":"1",")" + field + R"(":")" + value +
                             R"("}],"restrictions":[{"target":"10",")" + field + R"(":")" + value + R"("}]})";
    try {
      (void)parse_professional(std::string_view(line));
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  for (const char* bad : {"2026-02-30", "2026-02-29", "2026-13-01", "2026-04-31", "2026-00-01", "2026-01-00"})
    EXPECT_EQ(error("valid_from", bad),
              "rights[0].valid_from: must be a date (YYYY-MM-DD), not '" + std::string(bad) + "'");
  for (const char* bad : {"2026-02-28T25:00:00Z", "2026-02-28T23:60:00Z", "2026-02-28T23:59:60Z",
                          "2026-02-30T00:00:00Z", "2026-02-28T10:00:00+25:00", "2026-02-28T25:00"})
    EXPECT_EQ(error("valid_to", bad),
              "rights[0].valid_to: must be a date (YYYY-MM-DD) or an RFC 3339 time, not '" + std::string(bad) + "'");
  EXPECT_EQ(error("valid_from", "2024-02-29"), "no error");
  EXPECT_EQ(error("valid_to", "2024-02-29T23:59:59+02:00"), "no error");
}

TEST(Record, CodeSetEntriesHaveTheSameStrictDates) {
  EXPECT_THROW((void)parse_code_entry(Json::parse(R"({"code":"1","name":"x","valid_to":"2026-02-30"})")),
               std::invalid_argument);
  EXPECT_NO_THROW((void)parse_code_entry(Json::parse(R"({"code":"1","name":"x","valid_to":"2026-02-28"})")));
}

// A required field given empty is refused as a missing one is: an empty
// registration number or code is a broken export.
TEST(Record, RequiredFieldsAreNotEmpty) {
  const auto error = [](auto parse) -> std::string {
    try {
      parse();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_EQ(error([] { (void)parse_code_entry(Json::parse(R"({"code":"","name":"x"})")); }), "code: must not be empty");
  EXPECT_EQ(error([] { (void)parse_code_entry(Json::parse(R"({"code":"1","name":""})")); }), "name: must not be empty");
  EXPECT_EQ(
      error([] {
        (void)parse_professional(std::string_view(
            R"({"registration_number":"1","restrictions":[{"target":"10","object":{"system":"ATC","code":""}}]})"));
      }),
      "restrictions[0].object.code: must not be empty");
  EXPECT_EQ(error([] { (void)parse_professional(std::string_view(R"({"registration_number":""})")); }),
            "registration_number: must not be empty");
  // A code with white space around it would never match what it names.
  EXPECT_EQ(error([] { (void)parse_professional(std::string_view(R"({"registration_number":" "})")); }),
            "registration_number: must not begin or end with white space");
  EXPECT_EQ(error([] { (void)parse_professional(std::string_view(R"({"registration_number":"1\t"})")); }),
            "registration_number: must not begin or end with white space");
  EXPECT_EQ(error([] { (void)parse_code_entry(Json::parse(R"({"code":" 1","name":"x"})")); }),
            "code: must not begin or end with white space");
  EXPECT_EQ(error([] {
              (void)parse_professional(std::string_view(R"({"registration_number":"1","rights":[{"code":"001 "}]})"));
            }),
            "rights[0].code: must not begin or end with white space");
  // A name is only shown, and may have any.
  EXPECT_EQ(error([] { (void)parse_code_entry(Json::parse(R"({"code":"1","name":" x "})")); }), "no error");
  // Optional ones may be empty.
  EXPECT_EQ(
      error([] { (void)parse_professional(std::string_view(R"({"registration_number":"1","prescriber_id":""})")); }),
      "no error");
}

// --- the rules, for what the daemon tests cannot arrange ---

const SystemTime kNow = std::chrono::system_clock::now();

Registry::Lookup imported(std::optional<Professional> p, std::chrono::hours age = std::chrono::hours(1)) {
  Registry::Lookup l;
  l.professional = std::move(p);
  l.provenance.source = "test";
  l.provenance.imported_at = kNow - age;
  l.provenance.records = 1;
  return l;
}

Professional physician() {
  Professional p;
  p.registration_number = "1";
  p.satu = "S1";
  p.hetu = "010101-900R";
  p.rights = {{"034", {}, ""}};
  return p;
}

std::vector<std::string> codes(const std::vector<Reason>& reasons) {
  std::vector<std::string> out;
  for (const auto& r : reasons) out.push_back(r.code);
  return out;
}

Context atc(std::vector<std::string> codes) {
  Context c;
  c.atc_codes = std::move(codes);
  return c;
}

Rules rules() {
  Rules r;
  r.prescription.rights = {"034"};
  r.prescription.self_prescribing = {"N02A"};
  return r;
}

TEST(Rules, ASatuThatDisagreesWithTheRegistryDenies) {
  Identity id;
  id.satu = "S2";
  id.registration_number = "1";
  const Decision d = evaluate(rules(), Action::sign_prescription, id, std::nullopt, imported(physician()), atc({"J01"}),
                              kNow, "2026-01-01");
  EXPECT_EQ(codes(d.reasons), std::vector<std::string>{"identity_mismatch"});
  EXPECT_FALSE(d.allowed);
}

TEST(Rules, ThePrescriptionsAuthorMustBeTheSigner) {
  Identity id;
  id.satu = "S1";
  id.registration_number = "1";
  Professional p = physician();
  p.prescriber_id = "P1";
  auto decide = [&](std::optional<std::string> number, std::optional<std::string> prescriber) {
    Context c = atc({"J01"});
    c.author_registration_number = std::move(number);
    c.author_prescriber_id = std::move(prescriber);
    return evaluate(rules(), Action::sign_prescription, id, std::nullopt, imported(p), c, kNow, "2026-01-01");
  };
  EXPECT_TRUE(decide("1", std::nullopt).allowed);
  EXPECT_TRUE(decide(std::nullopt, "P1").allowed);
  const Decision other = decide("2", std::nullopt);
  EXPECT_EQ(codes(other.reasons), std::vector<std::string>{"author_not_signer"});
  EXPECT_NE(other.reasons.at(0).message.find("(2)"), std::string::npos) << other.reasons.at(0).message;
  EXPECT_EQ(codes(decide(std::nullopt, "P2").reasons), std::vector<std::string>{"author_not_signer"});
  // With both named, both must be the signer's: another's prescriber ID
  // beside the signer's number is refused too. One the record lacks cannot
  // be compared, and the number decides.
  EXPECT_EQ(codes(decide("2", "P1").reasons), std::vector<std::string>{"author_not_signer"});
  EXPECT_TRUE(decide("1", "P1").allowed);
  const Decision wrong_prescriber = decide("1", "P2");
  EXPECT_EQ(codes(wrong_prescriber.reasons), std::vector<std::string>{"author_not_signer"});
  EXPECT_NE(wrong_prescriber.reasons.at(0).message.find("prescriber ID P2"), std::string::npos)
      << wrong_prescriber.reasons.at(0).message;
  p.prescriber_id.clear();
  EXPECT_TRUE(decide("1", "P2").allowed);
  p.prescriber_id = "P1";
  // No author named (a check without a document): the rule does not apply.
  EXPECT_TRUE(decide(std::nullopt, std::nullopt).allowed);
  // Only prescriptions carry the rule.
  Context c;
  c.author_registration_number = "2";
  EXPECT_TRUE(evaluate(rules(), Action::sign_document, id, std::nullopt, imported(p), c, kNow, "2026-01-01").allowed);
}

TEST(Rules, ACertificateWithoutRegistrationNumberOrKnownSatu) {
  Identity id;
  id.satu = "S9";
  const Decision d = evaluate(rules(), Action::sign_prescription, id, std::nullopt, imported(std::nullopt),
                              atc({"J01"}), kNow, "2026-01-01");
  EXPECT_EQ(codes(d.reasons), std::vector<std::string>{"no_registration_number"});
}

TEST(Rules, NothingImportedDeniesOnlyPrescriptions) {
  Registry::Lookup empty;
  EXPECT_EQ(codes(evaluate(rules(), Action::sign_prescription, std::nullopt, std::nullopt, empty, atc({"J01"}), kNow,
                           "2026-01-01")
                      .reasons),
            std::vector<std::string>{"registry_empty"});
  EXPECT_TRUE(
      evaluate(rules(), Action::sign_document, std::nullopt, std::nullopt, empty, {}, kNow, "2026-01-01").allowed);
}

TEST(Rules, StalenessWarnsOrDenies) {
  Rules r = rules();
  r.registry.max_age = std::chrono::hours(24);
  const auto old = imported(physician(), std::chrono::hours(25));
  const Decision warn =
      evaluate(r, Action::sign_prescription, std::nullopt, std::nullopt, old, atc({"J01"}), kNow, "2026-01-01");
  EXPECT_TRUE(warn.allowed);
  EXPECT_EQ(codes(warn.warnings), std::vector<std::string>{"registry_stale"});
  EXPECT_TRUE(warn.registry_stale);
  r.registry.deny_when_stale = true;
  const Decision deny =
      evaluate(r, Action::sign_prescription, std::nullopt, std::nullopt, old, atc({"J01"}), kNow, "2026-01-01");
  EXPECT_EQ(codes(deny.reasons), std::vector<std::string>{"registry_stale"});
  const auto fresh = imported(physician(), std::chrono::hours(23));
  EXPECT_FALSE(
      evaluate(r, Action::sign_prescription, std::nullopt, std::nullopt, fresh, atc({"J01"}), kNow, "2026-01-01")
          .registry_stale);
}

TEST(Rules, SelfPrescribingStarMeansEveryMedicine) {
  Rules r = rules();
  r.prescription.self_prescribing = {"*"};
  Context c = atc({"J01CA04"});
  c.patient_id = physician().hetu;
  EXPECT_EQ(codes(evaluate(r, Action::sign_prescription, std::nullopt, std::nullopt, imported(physician()), c, kNow,
                           "2026-01-01")
                      .reasons),
            std::vector<std::string>{"self_prescribing"});
  r.prescription.self_prescribing = {};
  EXPECT_TRUE(
      evaluate(r, Action::sign_prescription, std::nullopt, std::nullopt, imported(physician()), c, kNow, "2026-01-01")
          .allowed);
}

// A group code shares medicines with a restriction on one of its
// substances, and an identity code is the same in small letters.
TEST(Rules, AGroupCodeMeetsARestrictionInsideItAndAHetuIsComparedWithoutCase) {
  Professional p = physician();
  Restriction opioid;
  opioid.target = "10";
  opioid.object_system = "ATC";
  opioid.object_code = "N02AA01";
  p.restrictions = {opioid};
  auto reasons = [&](Context c) {
    return codes(
        evaluate(rules(), Action::sign_prescription, std::nullopt, std::nullopt, imported(p), c, kNow, "2026-01-01")
            .reasons);
  };
  for (const char* code : {"N02AA01", "N02AA", "N02A", "N02", "N"})
    EXPECT_EQ(reasons(atc({code})), std::vector<std::string>{"prescribing_restricted"}) << code;
  EXPECT_TRUE(reasons(atc({"N02AB03"})).empty());
  EXPECT_TRUE(reasons(atc({"J01CA04"})).empty());

  p.restrictions.clear();
  Context own = atc({"N02"});  // a group holding self_prescribing's N02A
  own.patient_id = "010101-900r";
  EXPECT_EQ(reasons(own), std::vector<std::string>{"self_prescribing"});
}

TEST(Rules, CardTypesOnlyWhenConfiguredAndOnlyForPrescriptions) {
  Rules r = rules();
  Identity id;
  id.registration_number = "1";
  id.satu = "S1";
  id.card_type = "";  // no policy OID mapped
  EXPECT_TRUE(
      evaluate(r, Action::sign_prescription, id, std::nullopt, imported(physician()), atc({"J01"}), kNow, "2026-01-01")
          .allowed);
  r.prescription.card_types = {"professional"};
  EXPECT_EQ(codes(evaluate(r, Action::sign_prescription, id, std::nullopt, imported(physician()), atc({"J01"}), kNow,
                           "2026-01-01")
                      .reasons),
            std::vector<std::string>{"card_type_not_allowed"});
  EXPECT_TRUE(
      evaluate(r, Action::sign_document, id, std::nullopt, imported(physician()), {}, kNow, "2026-01-01").allowed);
}

TEST(Rules, ASoftFailedRevocationCheckIsAWarning) {
  ValidationResult v;
  v.revocation.status = "unavailable";
  v.revocation.fail_mode = "soft-fail";
  v.revocation.reason = "OCSP responder did not answer";
  const Decision d =
      evaluate(rules(), Action::authenticate, std::nullopt, v, imported(physician()), {}, kNow, "2026-01-01");
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(codes(d.warnings), std::vector<std::string>{"revocation_soft_fail"});
}

TEST(Rules, LocalDateIsTheFinnishCalendarDay) {
  // 2026-01-01T22:30Z is already the 2nd in Helsinki (UTC+2).
  setenv("TZ", "Europe/Helsinki", 1);
  tzset();
  const auto t = std::chrono::system_clock::from_time_t(1767306600);
  EXPECT_EQ(local_date(t), "2026-01-02");
  unsetenv("TZ");
  tzset();
}

}  // namespace
}  // namespace kortti::policy
