#pragma once

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/support/rpc_error.hpp"
#include "tests/support/support.hpp"

namespace kortti::test {

// The prescription rules of the policy tests. Codes other than 034 are test
// codes (tests/fixtures/registry/rights.csv); card types follow make-pki.sh.
inline constexpr const char* kPolicyRules = R"(
[identity.card_types]
"2.999.10.1" = "professional"
"2.999.10.2" = "staff"

[policy.prescription]
rights = ["001", "002", "010", "034"]
limited_rights = ["121"]
limited_atc = ["J01", "G03A", "N02BE01"]
self_prescribing = ["N02A", "N05B", "N05C", "N06B", "N07BC"]
card_types = ["professional"]
)";

// Revocation from the test PKI's CRL file only: no responder, no port.
inline std::string crl_only() {
  return "ocsp = false\ncrl_fetch = false\ncrl_files = [\"" + (pki_dir() / "ca" / "hc-rsa" / "crl.pem").string() +
         "\"]\n";
}

struct PolicyDaemonOptions {
  std::vector<std::string> items;  // SoftHSM token "card": person/purpose, CKA_IDs 01, 02, ...
  std::string revocation;          // lines for [revocation]
  std::string registry;            // lines for [registry]
  std::string ipc;                 // lines for [ipc]
  std::string audit;               // lines for [audit]
  std::string rules = kPolicyRules;
  bool import_registry = true;
  std::vector<std::string> wrapper;  // DaemonOptions::wrapper
};

// korttid with the test PKI's roots, a registry imported from the fixture,
// the test rules, and a SoftHSM token holding the named certificates.
class PolicyDaemon {
 public:
  explicit PolicyDaemon(PolicyDaemonOptions o) {
    DaemonOptions options;
    if (!o.items.empty()) {
      hsm_ = std::make_unique<SoftHsm>(tokens_.path());
      hsm_->add_token("card", o.items);
      options.env["SOFTHSM2_CONF"] = hsm_->conf().string();
    }
    options.revocation = o.revocation;
    options.registry = o.registry;
    options.ipc = o.ipc;
    options.audit = o.audit;
    options.extra = o.rules;
    options.wrapper = std::move(o.wrapper);
    daemon_ = std::make_unique<Daemon>(std::move(options));
    if (o.import_registry) import_registry_fixture(*daemon_);
    client_ = daemon_->connect();
    if (!o.items.empty()) token_id_ = str(client_->call("tokens.list").at(0)["token_id"]);
  }

  [[nodiscard]] std::string cert_id(int n = 1) const {
    char id[8];
    std::snprintf(id, sizeof id, "%02x", n);
    return token_id_ + "/" + id;
  }
  client::Client& client() { return *client_; }
  Daemon& daemon() { return *daemon_; }

  Json check_cert(int n, const std::string& action, Json context = Json::object()) {
    return client_->call("policy.check",
                         {{"cert_id", wstr(cert_id(n))}, {"action", wstr(action)}, {"context", std::move(context)}});
  }
  Json check_number(const std::string& number, const std::string& action, Json context = Json::object()) {
    return client_->call(
        "policy.check",
        {{"registration_number", wstr(number)}, {"action", wstr(action)}, {"context", std::move(context)}});
  }

 private:
  TempDir tokens_;
  std::unique_ptr<SoftHsm> hsm_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<client::Client> client_;
  std::string token_id_;
};

// The reason codes of a decision, sorted.
inline std::vector<std::string> codes(const Json& list) {
  std::vector<std::string> out;
  for (const auto& r : list) out.push_back(str(r["code"]));
  std::sort(out.begin(), out.end());
  return out;
}

inline std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace kortti::test
