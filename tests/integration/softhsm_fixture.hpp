#pragma once

#include <gtest/gtest.h>

#include "common/digest.hpp"
#include "common/encoding.hpp"
#include "tests/support/rpc_error.hpp"
#include "tests/support/support.hpp"

namespace kortti::test {

// korttid over two SoftHSM2 tokens made from the test PKI:
//   cardA: physician's RSA-2048 signature key (01) and authentication key (02)
//   cardB: specialist's EC P-384 signature key (01, CKA_ALWAYS_AUTHENTICATE)
//          and authentication key (02)
class SoftHsmDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override { start({}); }

  void start(DaemonOptions options) {
    hsm_ = std::make_unique<SoftHsm>(tokens_dir_.path());
    if (!made_) {
      hsm_->add_token("cardA", {"physician/sign", "physician/auth"});
      hsm_->add_token("cardB", {"specialist/sign/always-auth", "specialist/auth"});
      made_ = true;
    }
    options.env["SOFTHSM2_CONF"] = hsm_->conf().string();
    // This suite runs alongside the policy tests, whose OCSP responders
    // listen on the ports the test PKI's certificates name: a korttid here
    // that asked them would count as one of their requests.
    if (options.revocation.empty()) options.revocation = "ocsp = false\ncrl = false\n";
    daemon_.reset();
    daemon_ = std::make_unique<Daemon>(std::move(options));
    auto c = daemon_->connect();
    for (const auto& t : c->call("tokens.list")) token_ids_[str(t["label"])] = str(t["token_id"]);
    ASSERT_GE(token_ids_.size(), 2U) << daemon_->log();  // a test may have added its own
  }

  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "---- korttid log ----\n" << daemon_->log() << "---------------------\n";
  }

  std::string cert_id(const std::string& label, const std::string& ck_id) { return token_ids_.at(label) + "/" + ck_id; }
  std::string rsa_sign_cert() { return cert_id("cardA", "01"); }
  std::string rsa_auth_cert() { return cert_id("cardA", "02"); }
  std::string ec_sign_cert() { return cert_id("cardB", "01"); }

  // sign.digest with a fresh random digest; returns the answer and the digest.
  std::pair<Json, Bytes> sign_digest(client::Client& c, const std::string& cert, const std::string& alg,
                                     const std::string& scheme = "", bool with_pin = true) {
    const auto a = parse_digest_algorithm(alg).value();
    Bytes digest = random_bytes(digest_size(a));
    Json params = {{"cert_id", wstr(cert)}, {"digest_algorithm", wstr(alg)}, {"digest", wstr(base64_encode(digest))}};
    if (!scheme.empty()) params["scheme"] = wstr(scheme);
    if (with_pin) params["pin"] = kPin;
    return {c.call("sign.digest", params), digest};
  }

  TempDir tokens_dir_;
  bool made_ = false;
  std::unique_ptr<SoftHsm> hsm_;
  std::unique_ptr<Daemon> daemon_;
  std::map<std::string, std::string> token_ids_;
};

}  // namespace kortti::test
