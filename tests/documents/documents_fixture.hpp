#pragma once

// sign.xml and sign.prescription through korttid: SoftHSM2 tokens holding the
// test PKI's keys, real OCSP responders, the registry fixture, and xmlsec1
// as the independent verifier. Shared by documents_test.cpp and
// documents_hostile_test.cpp.

#include <atomic>
#include <functional>
#include <regex>
#include <sstream>
#include <thread>

#include <openssl/pem.h>

#include "common/encoding.hpp"
#include "common/openssl.hpp"
#include "signature/signature.hpp"
#include "tests/support/policy_fixture.hpp"

namespace kortti::test {

inline constexpr int kPhysician = 1;   // RSA-2048, 10000001, may prescribe
inline constexpr int kSpecialist = 2;  // EC P-384, 10000002, may prescribe
inline constexpr int kNurse = 3;       // RSA-2048, 10000004, no prescription right

// A document to sign as CMS.
inline const Bytes kReport = {'L', 'a', 'u', 's', 'u', 'n', 't', 'o', ' ', '1'};

inline std::string prescription() { return read_file(source_dir() / "tests/fixtures/cda/e-prescription.xml"); }

inline std::string with_author(std::string doc, const std::string& number) {
  return std::regex_replace(doc, std::regex(R"(root="1\.2\.246\.537\.26" extension="10000001")"),
                            "root=\"1.2.246.537.26\" extension=\"" + number + "\"");
}

// The Id of every ds:Signature in a document, in order.
inline std::vector<std::string> signature_ids(const std::string& doc) {
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
    start_daemon(200000);
  }
  // A test may restart korttid with room for documents that are small in
  // bytes and costly to parse.
  void start_daemon(std::size_t max_document_bytes) {
    daemon_.reset();
    PolicyDaemonOptions o;
    o.items = {"physician/sign", "specialist/sign", "nurse/sign"};
    o.rules += "\n[signature]\nmax_document_bytes = " + std::to_string(max_document_bytes) + "\nbatch_max_items = 8\n";
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
  Json sign_cms(int cert, Json params) {
    params["cert_id"] = wstr(daemon_->cert_id(cert));
    params["pin"] = kPin;
    return c().call("sign.cms", params);
  }

  std::optional<OcspResponder> rsa_, ec_;
  std::unique_ptr<PolicyDaemon> daemon_;
};

inline std::string insert_before(std::string doc, const std::string& at, const std::string& text) {
  const auto i = doc.find(at);
  EXPECT_NE(i, std::string::npos) << at;
  return i == std::string::npos ? doc : doc.insert(i, text);
}

inline std::string replace_first(std::string doc, const std::string& from, const std::string& to) {
  const auto i = doc.find(from);
  EXPECT_NE(i, std::string::npos) << from;
  return i == std::string::npos ? doc : doc.replace(i, from.size(), to);
}

}  // namespace kortti::test
