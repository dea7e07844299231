// certificates.identity, and the errors of the policy methods' parameters.

#include "tests/support/policy_fixture.hpp"

namespace kortti::test {
namespace {

class Identity : public ::testing::Test {
 protected:
  void SetUp() override {
    rsa_.emplace("hc-rsa");
    PolicyDaemonOptions o;
    o.items = {"physician/sign", "physician/auth"};
    daemon_ = std::make_unique<PolicyDaemon>(std::move(o));
  }
  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "---- korttid log ----\n" << daemon_->daemon().log() << "\n";
  }
  Json identity(Json params) { return daemon_->client().call("certificates.identity", std::move(params)); }

  std::optional<OcspResponder> rsa_;
  std::unique_ptr<PolicyDaemon> daemon_;
};

TEST_F(Identity, SignatureCertificateNameTitleSatuRegistrationNumberValidationAndRecord) {
  const Json j = identity({{"cert_id", wstr(daemon_->cert_id(1))}});
  EXPECT_EQ(str(j["action"]), "sign.prescription");  // what a signature key is for
  const Json& id = j["identity"];
  EXPECT_EQ(str(id["name"]["given"]), "Aino");
  EXPECT_EQ(str(id["name"]["family"]), "Testilääkäri");
  EXPECT_EQ(str(id["title"]), "Laillistettu lääkäri");
  EXPECT_EQ(str(id["organisation"]), "Testisairaala");
  EXPECT_EQ(str(id["satu"]), "99900001A");
  EXPECT_EQ(str(id["registration_number"]), "10000001");
  EXPECT_EQ(str(id["card_type"]), "professional");
  EXPECT_EQ(id["purposes"], Json::array({"signature"}));
  EXPECT_EQ(str(j["validation"]["status"]), "valid");
  EXPECT_EQ(j["validation"]["chain"].size(), 3U);
  EXPECT_EQ(str(j["validation"]["revocation"]["status"]), "good");
  EXPECT_EQ(str(j["professional"]["prescriber_id"]), "900001");
  EXPECT_TRUE(j["registry"]["imported"].get<bool>());
}

TEST_F(Identity, AuthenticationCertificateIsValidatedForAuthentication) {
  const Json j = identity({{"cert_id", wstr(daemon_->cert_id(2))}});
  EXPECT_EQ(str(j["action"]), "authenticate");
  EXPECT_EQ(j["identity"]["purposes"], Json::array({"authentication"}));
  EXPECT_EQ(str(j["validation"]["status"]), "valid");
}

TEST_F(Identity, AskingForAnotherActionReportsTheKeyUsageNotAnError) {
  const Json j = identity({{"cert_id", wstr(daemon_->cert_id(1))}, {"action", "authenticate"}});
  EXPECT_EQ(str(j["validation"]["status"]), "wrong_key_usage");
  EXPECT_FALSE(str(j["validation"]["message"]).empty());
  EXPECT_EQ(str(j["identity"]["registration_number"]), "10000001");
}

TEST_F(Identity, BadParametersAreInvalidParamsAndUnknownCertificatesNotFound) {
  auto& c = daemon_->client();
  EXPECT_EQ(rpc_error([&] { identity({{"cert_id", wstr(daemon_->cert_id(0x7f))}}); }).code(), 1003);
  EXPECT_EQ(rpc_error([&] { identity(Json::object()); }).code(), -32602);
  const auto action = rpc_error([&] { identity({{"cert_id", wstr(daemon_->cert_id(1))}, {"action", "sign"}}); });
  EXPECT_EQ(action.code(), -32602);
  EXPECT_NE(std::string(action.what()).find("sign.prescription, sign.document or authenticate"), std::string::npos);

  auto check_error = [&](Json params) { return rpc_error([&] { c.call("policy.check", std::move(params)); }); };
  EXPECT_EQ(check_error({{"action", "sign.prescription"}}).code(), -32602);  // no signer
  EXPECT_EQ(
      check_error({{"cert_id", wstr(daemon_->cert_id(1))}, {"registration_number", "1"}, {"action", "sign.document"}})
          .code(),
      -32602);                                                            // two signers
  EXPECT_EQ(check_error({{"registration_number", "1"}}).code(), -32602);  // no action
  EXPECT_EQ(check_error({{"registration_number", "1"}, {"action", "sign.document"}, {"context", "J01"}}).code(),
            -32602);
  const auto atc = check_error({{"registration_number", "1"},
                                {"action", "sign.prescription"},
                                {"context", {{"atc_codes", Json::array({"J01CA04", "paracetamol"})}}}});
  EXPECT_EQ(atc.code(), -32602);
  EXPECT_NE(std::string(atc.what()).find("'paracetamol'"), std::string::npos) << atc.what();
  EXPECT_EQ(
      check_error({{"registration_number", "1"}, {"action", "sign.prescription"}, {"context", {{"supervised", "yes"}}}})
          .code(),
      -32602);
  // The daemon answers on.
  EXPECT_TRUE(c.call("policy.check", {{"registration_number", "10000001"}, {"action", "sign.document"}})["allowed"]
                  .get<bool>());
}

TEST_F(Identity, KorttiCliShowsIdentityDecisionsAndRecords) {
  auto kortti = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {kortti_binary().string(), "--socket", daemon_->daemon().socket()});
    return run(args);
  };
  const auto id = kortti({"identity", "--cert", daemon_->cert_id(1)});
  ASSERT_EQ(id.status, 0) << id.err;
  EXPECT_NE(id.out.find("Testilääkäri Aino"), std::string::npos) << id.out;
  EXPECT_NE(id.out.find("10000001"), std::string::npos) << id.out;
  EXPECT_NE(id.out.find("Certificate: valid"), std::string::npos) << id.out;
  EXPECT_NE(id.out.find("ocsp good"), std::string::npos) << id.out;

  const auto allowed = kortti({"check", "--cert", daemon_->cert_id(1), "--atc", "J01CA04"});
  EXPECT_EQ(allowed.status, 0) << allowed.out << allowed.err;
  EXPECT_NE(allowed.out.find("ALLOWED"), std::string::npos) << allowed.out;

  // The nurse with the limited right: an opioid is outside it. Exit 3, the reason printed.
  const auto denied = kortti({"check", "--registration", "10000003", "--atc", "N02AA01"});
  EXPECT_EQ(denied.status, 3) << denied.out << denied.err;
  EXPECT_NE(denied.out.find("DENIED"), std::string::npos) << denied.out;
  EXPECT_NE(denied.out.find("outside_limited_right"), std::string::npos) << denied.out;
  const auto denied_json = kortti({"--json", "check", "--registration", "10000003", "--atc", "N02AA01"});
  EXPECT_EQ(denied_json.status, 3);
  EXPECT_FALSE(Json::parse(denied_json.out)["allowed"].get<bool>());

  const auto record = kortti({"professional", "10000003"});
  ASSERT_EQ(record.status, 0) << record.err;
  EXPECT_NE(record.out.find("Hanna Hoitaja"), std::string::npos) << record.out;
  EXPECT_NE(record.out.find("right"), std::string::npos) << record.out;
  EXPECT_EQ(kortti({"professional", "29999999"}).status, 1);
  EXPECT_EQ(kortti({"check", "--atc", "J01"}).status, 2);  // no signer named

  const auto status = kortti({"status"});
  EXPECT_NE(status.out.find("Valvira registry: 23 professionals"), std::string::npos) << status.out;
}

}  // namespace
}  // namespace kortti::test
