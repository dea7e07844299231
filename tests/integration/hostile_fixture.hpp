#pragma once

// The attacker's tests against the real korttid (issue 12): a bystander
// client that must keep being answered. Shared by the socket's and the
// documents' tests (hostile_test.cpp) and the CMS structures'
// (hostile_cms_test.cpp).

#include "tests/integration/softhsm_fixture.hpp"

namespace kortti::test {

class Hostile : public SoftHsmDaemonTest {
 protected:
  void start_with(DaemonOptions o) {
    start(std::move(o));
    bystander_ = daemon_->connect();
    bystander_->call("system.hello", {{"client", "bystander"}});
  }

  void expect_daemon_fine() {
    ASSERT_TRUE(daemon_->running()) << daemon_->log();
    EXPECT_EQ(bystander_->call("system.hello", Json::object(), std::chrono::seconds(10))["daemon"], "korttid");
  }

  // An attached CMS signature by korttid, RSA: the raw material the CMS
  // tests take apart.
  Bytes signed_cms(client::Client& c) {
    return b64(c.call("sign.cms", {{"cert_id", wstr(rsa_sign_cert())},
                                   {"content", base64_encode(Bytes{'L', 'a', 'u', 's', 'u', 'n', 't', 'o'})},
                                   {"pin", kPin}})["cms"]);
  }

  std::unique_ptr<client::Client> bystander_;
};

}  // namespace kortti::test
