// sign.prescription on the virtual card (tests/vcard/) through pcscd and
// OpenSC, where a PIN try is counted by the card itself: SoftHSM2 reports no
// retry counter, so there a wrong PIN that reached the token would go unseen.
//
// The suite's name has "Decisions" in it: it starts the OCSP responder of the
// test PKI on its fixed port, and tests/CMakeLists.txt runs such tests under
// the ocsp_ports lock.

#include <regex>

#include "common/encoding.hpp"
#include "tests/support/pcsc_fixture.hpp"
#include "tests/support/policy_fixture.hpp"

namespace kortti::test {
namespace {

using namespace std::chrono_literals;

// The e-prescription fixture with its author's registration number replaced.
std::string prescription_by(const std::string& number) {
  const std::string doc = read_file(source_dir() / "tests/fixtures/cda/e-prescription.xml");
  return std::regex_replace(doc, std::regex(R"(root="1\.2\.246\.537\.26" extension="10000001")"),
                            "root=\"1.2.246.537.26\" extension=\"" + number + "\"");
}

// korttid on OpenSC through a private pcscd, with the policy tests' rules, the
// registry fixture, and the OCSP responder of hc-rsa (the CA of the RSA
// professionals), so a denial gives the policy's own reasons and no
// revocation_unknown.
class PrescriptionDecisionsOnCard : public PcscDaemonTest {
 protected:
  void SetUp() override {
    DaemonOptions o;
    o.extra = kPolicyRules;
    start_daemon(std::move(o));
    import_registry_fixture(*daemon_);
  }

  OcspResponder ocsp_{"hc-rsa"};
};

TEST_F(PrescriptionDecisionsOnCard, ADeniedPrescriptionUsesNoPinTryWhereTheSameWrongPinOtherwiseCostsOne) {
  // The nurse (10000004, RSA) holds a staff card and has no right to
  // prescribe. The card writes its retry counter to `tries` whenever it
  // checks a PIN, right or wrong: the card's own account of the PIN's use.
  TempDir state;
  VirtualCard card(pcscd_, card_options("nurse", 0, {"--state", (state / "tries").string()}));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  const std::string cert_id = card.token_id() + "/02";  // 9C, the signature key
  auto tries_left = [&] { return c->call("tokens.list").at(0)["pins"]["user"].value("tries_left", -1); };
  ASSERT_EQ(tries_left(), 3) << "read from the card";
  const int verifies = card.apdus(0x20, Apdu::begun);

  const auto denied = rpc_error([&] {
    c->call("sign.prescription",
            {{"cert_id", wstr(cert_id)}, {"document", wstr(prescription_by("10000004"))}, {"pin", "000000"}});
  });
  EXPECT_EQ(denied.code(), 1030) << denied.what();
  EXPECT_EQ(denied.reason(), "policy_denied");
  ASSERT_TRUE(denied.data().contains("reasons")) << denied.data().dump();
  EXPECT_EQ(codes(denied.data()["reasons"]), sorted({"card_type_not_allowed", "no_prescribing_right"}))
      << denied.data().dump();
  EXPECT_EQ(card.apdus(0x20, Apdu::begun), verifies) << "a VERIFY reached the card:\n" << card.events();
  EXPECT_EQ(card.apdus(0x87, Apdu::begun), 0) << "the card signed:\n" << card.events();
  EXPECT_FALSE(fs::exists(state / "tries")) << "the card checked a PIN; tries left: " << read_file(state / "tries");
  EXPECT_EQ(tries_left(), 3);

  // The same wrong PIN on the same key where no policy stands in the way
  // reaches the card and costs a try: the counters above can move.
  const Bytes digest = random_bytes(32);
  const auto wrong = rpc_error([&] {
    c->call("sign.digest", {{"cert_id", wstr(cert_id)},
                            {"digest_algorithm", "sha256"},
                            {"digest", wstr(base64_encode(digest))},
                            {"pin", "000000"}});
  });
  EXPECT_EQ(wrong.code(), 1011) << wrong.what();
  EXPECT_EQ(wrong.data().value("tries_left", -1), 2) << wrong.data().dump();
  EXPECT_GT(card.apdus(0x20, Apdu::begun), verifies) << card.events();
  EXPECT_EQ(read_file(state / "tries"), "2\n");
  EXPECT_EQ(tries_left(), 2);
}

}  // namespace
}  // namespace kortti::test
