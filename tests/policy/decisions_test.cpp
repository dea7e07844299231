// policy.check, one decision per row: a signer (a certificate of the test
// PKI on a SoftHSM token, or a registration number alone), an action, a
// context, and the reasons expected. Revocation answers come from real
// `openssl ocsp` responders at the addresses the certificates name.

#include "tests/support/policy_fixture.hpp"

namespace kortti::test {
namespace {

struct Row {
  const char* name;
  const char* signer;  // "person/purpose" (a certificate) or a registration number
  const char* action;
  Json context;
  std::vector<std::string> reasons;  // empty: allowed
  std::vector<std::string> warnings = {};
};

// gtest prints a row by its name, not its bytes.
void PrintTo(const Row& row, std::ostream* os) { *os << row.name; }

const std::string kPrescription = "sign.prescription";

Json atc(std::initializer_list<const char*> codes) {
  Json list = Json::array();
  for (const char* c : codes) list.push_back(c);
  return {{"atc_codes", std::move(list)}};
}

Json with(Json context, const char* key, Json value) {
  context[key] = std::move(value);
  return context;
}

const char* kAinoHetu = "150375-901H";  // the physician's, in the registry fixture

std::vector<Row> rows() {
  return {
      // Certificates of the test PKI, for prescriptions.
      {"PhysicianRsaCard", "physician/sign", "sign.prescription", atc({"J01CA04"}), {}},
      {"SpecialistEcCardOfTheOtherRootGeneration", "specialist/sign", "sign.prescription", atc({"N02AA01"}), {}},
      {"LimitedNurseWithinHerClasses", "nurse_limited/sign", "sign.prescription", atc({"J01CA04", "N02BE01"}), {}},
      {"LimitedNurseOutsideHerClasses",
       "nurse_limited/sign",
       "sign.prescription",
       atc({"N02AA01"}),
       {"outside_limited_right"}},
      {"LimitedNurseOneCodeOutside",
       "nurse_limited/sign",
       "sign.prescription",
       atc({"J01CA04", "N05BA01"}),
       {"outside_limited_right"}},
      {"NurseWithoutPrescriptionRightOnAStaffCard",
       "nurse/sign",
       "sign.prescription",
       atc({"J01CA04"}),
       {"no_prescribing_right", "card_type_not_allowed"}},
      {"StudentUnsupervisedOnAStaffCard",
       "student/sign",
       "sign.prescription",
       atc({"J01CA04"}),
       {"student_status", "card_type_not_allowed"}},
      {"StudentSupervisedStillNotOnAStaffCard",
       "student/sign",
       "sign.prescription",
       with(atc({"J01CA04"}), "supervised", true),
       {"card_type_not_allowed"}},
      {"RevokedCertificate", "revoked/sign", "sign.prescription", atc({"J01CA04"}), {"certificate_revoked"}},
      {"ExpiredCertificate", "expired/sign", "sign.prescription", atc({"J01CA04"}), {"certificate_expired"}},
      {"NotYetValidCertificate", "future/sign", "sign.prescription", atc({"J01CA04"}), {"certificate_not_yet_valid"}},
      {"ImpostorFromAnUntrustedRoot",
       "impostor/sign",
       "sign.prescription",
       atc({"J01CA04"}),
       {"certificate_untrusted"}},
      {"AuthenticationKeyCannotSignPrescriptions",
       "physician/auth",
       "sign.prescription",
       atc({"J01CA04"}),
       {"certificate_wrong_key_usage"}},
      {"SelfPrescribingAnOpioid",
       "physician/sign",
       "sign.prescription",
       with(atc({"N02AA01"}), "patient_id", kAinoHetu),
       {"self_prescribing"}},
      {"SelfPrescribingAnAntibioticIsAllowed",
       "physician/sign",
       "sign.prescription",
       with(atc({"J01CA04"}), "patient_id", kAinoHetu),
       {}},
      {"OpioidForAnotherPatient",
       "physician/sign",
       "sign.prescription",
       with(atc({"N02AA01"}), "patient_id", "020482-902S"),
       {}},

      // Other actions: certificate rules only, the registry does not decide.
      {"PhysicianSignsADocument", "physician/sign", "sign.document", Json::object(), {}},
      {"NurseSignsADocument", "nurse/sign", "sign.document", Json::object(), {}},
      {"RevokedCannotSignADocument", "revoked/sign", "sign.document", Json::object(), {"certificate_revoked"}},
      {"PhysicianAuthenticates", "physician/auth", "authenticate", Json::object(), {}},
      {"SignatureKeyCannotAuthenticate",
       "physician/sign",
       "authenticate",
       Json::object(),
       {"certificate_wrong_key_usage"}},
      {"ExpiredCannotAuthenticate", "expired/auth", "authenticate", Json::object(), {"certificate_expired"}},

      // Registry records, by registration number.
      {"AtcRestrictionMatchesByPrefix",
       "20000001",
       "sign.prescription",
       atc({"J01CA04", "N02AA01"}),
       {"prescribing_restricted"}},
      {"AtcRestrictionOtherClass", "20000001", "sign.prescription", atc({"J01CA04"}), {}},
      {"MedicineClassRestrictionMatches",
       "20000002",
       "sign.prescription",
       with(atc({"D02AC"}), "medicine_classes", Json::array({"30"})),
       {"prescribing_restricted"}},
      {"MedicineClassRestrictionOtherClass",
       "20000002",
       "sign.prescription",
       with(atc({"J01CA04"}), "medicine_classes", Json::array({"10"})),
       {}},
      {"AllMedicinesClassDeniesEverything",
       "20000003",
       "sign.prescription",
       atc({"J01CA04"}),
       {"prescribing_restricted"}},
      {"PrescribingRestrictionWithoutObject",
       "20000004",
       "sign.prescription",
       atc({"J01CA04"}),
       {"prescribing_restricted"}},
      {"HandlingMedicinesRestricted",
       "20000005",
       "sign.prescription",
       atc({"J01CA04"}),
       {"handling_medicines_restricted"}},
      {"SupervisionRequiredAndMissing", "20000006", "sign.prescription", atc({"J01CA04"}), {"supervision_required"}},
      {"SupervisionRequiredAndGiven", "20000006", "sign.prescription", with(atc({"J01CA04"}), "supervised", true), {}},
      {"WorkplaceRestrictionInThatWorkplace",
       "20000007",
       "sign.prescription",
       with(atc({"J01CA04"}), "workplace", "julkinen terveydenhuolto"),
       {}},
      {"WorkplaceRestrictionElsewhere",
       "20000007",
       "sign.prescription",
       with(atc({"J01CA04"}), "workplace", "yksityinen vastaanotto"),
       {"workplace_restricted"}},
      {"WorkplaceRestrictionNoWorkplaceGiven",
       "20000007",
       "sign.prescription",
       atc({"J01CA04"}),
       {"workplace_restricted"}},
      {"LicenceStatusRestricted", "20000008", "sign.prescription", atc({"J01CA04"}), {"licence_restricted"}},
      {"EndedRestrictionNoLongerApplies", "20000009", "sign.prescription", atc({"N02AA01"}), {}},
      {"FutureRestrictionDoesNotApplyYet", "20000010", "sign.prescription", atc({"N02AA01"}), {}},
      {"EndedRightDoesNotCount", "20000011", "sign.prescription", atc({"J01CA04"}), {"no_prescribing_right"}},
      {"FutureRightDoesNotCountYet", "20000012", "sign.prescription", atc({"J01CA04"}), {"no_prescribing_right"}},
      {"ProcedureAndOtherTargetsDoNotGovernPrescribing", "20000013", "sign.prescription", atc({"J01CA04"}), {}},
      {"TwoRestrictionsTwoReasons",
       "20000014",
       "sign.prescription",
       atc({"N05BA01"}),
       {"prescribing_restricted", "supervision_required"}},
      {"DentistRight", "20000015", "sign.prescription", atc({"J01CA04"}), {}},
      {"UnknownRegistrationNumber", "29999999", "sign.prescription", atc({"J01CA04"}), {"unknown_professional"}},
      {"StudentByNumberSupervised", "10000005", "sign.prescription", with(atc({"J01CA04"}), "supervised", true), {}},
      {"StudentByNumberUnsupervised", "10000005", "sign.prescription", atc({"J01CA04"}), {"student_status"}},
  };
}

bool is_certificate(const Row& row) { return std::string(row.signer).find('/') != std::string::npos; }

class Decisions : public ::testing::TestWithParam<Row> {
 protected:
  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "---- korttid log ----\n" << daemon_->daemon().log() << "\n";
  }
  std::unique_ptr<PolicyDaemon> daemon_;
};

TEST_P(Decisions, ReasonsAreExactlyTheExpectedOnes) {
  const Row& row = GetParam();
  std::optional<OcspResponder> rsa, ec;
  PolicyDaemonOptions options;
  if (is_certificate(row)) {
    rsa.emplace("hc-rsa");
    ec.emplace("hc-ec");
    options.items = {row.signer};
  }
  daemon_ = std::make_unique<PolicyDaemon>(std::move(options));
  const Json d = is_certificate(row) ? daemon_->check_cert(1, row.action, row.context)
                                     : daemon_->check_number(row.signer, row.action, row.context);

  EXPECT_EQ(codes(d["reasons"]), sorted(row.reasons)) << d.dump(2);
  EXPECT_EQ(codes(d["warnings"]), sorted(row.warnings)) << d.dump(2);
  EXPECT_EQ(d["allowed"].get<bool>(), row.reasons.empty());
  for (const auto& r : d["reasons"]) EXPECT_FALSE(str(r["message"]).empty());
  EXPECT_TRUE(d["registry"]["imported"].get<bool>());

  if (is_certificate(row)) {
    // The decision says what it looked at: identity, validation, record.
    ASSERT_TRUE(d.contains("identity")) << d.dump(2);
    ASSERT_TRUE(d.contains("certificate")) << d.dump(2);
    const std::string status = str(d["certificate"]["status"]);
    const bool certificate_reason = std::any_of(row.reasons.begin(), row.reasons.end(),
                                                [](const std::string& r) { return r.rfind("certificate_", 0) == 0; });
    EXPECT_EQ(status == "valid", !certificate_reason) << d.dump(2);
    if (status == "valid") {
      // Good certificates were asked about at the responder their AIA names.
      EXPECT_EQ(str(d["certificate"]["revocation"]["method"]), "ocsp") << d.dump(2);
      EXPECT_EQ(str(d["certificate"]["revocation"]["status"]), "good") << d.dump(2);
    }
    if (row.action == kPrescription && status == "valid") {
      ASSERT_FALSE(d["professional"].is_null()) << d.dump(2);
      EXPECT_EQ(str(d["professional"]["registration_number"]), str(d["identity"]["registration_number"]));
    }
  } else if (std::string(row.signer) != "29999999") {
    EXPECT_EQ(str(d["professional"]["registration_number"]), row.signer);
    EXPECT_FALSE(d.contains("certificate"));
  } else {
    EXPECT_TRUE(d["professional"].is_null());
  }
}

INSTANTIATE_TEST_SUITE_P(Table, Decisions, ::testing::ValuesIn(rows()),
                         [](const ::testing::TestParamInfo<Row>& row) { return std::string(row.param.name); });

}  // namespace
}  // namespace kortti::test
