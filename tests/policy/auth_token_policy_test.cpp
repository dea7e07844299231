// Web eID login tokens and the certificate checks: a certificate the policy
// refuses for `authenticate` never reaches the card, and auth.verify takes a
// token's certificate through the same trust anchors, validity and
// revocation as a relying party would.

#include <openssl/pem.h>

#include "common/digest.hpp"
#include "common/encoding.hpp"
#include "common/openssl.hpp"
#include "tests/support/policy_fixture.hpp"

namespace kortti::test {
namespace {

constexpr const char* kOrigin = "https://sso.example.fi";

Bytes text_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

// A DER ECDSA-Sig-Value (short-form lengths) as JWS r||s of `half` bytes each.
Bytes der_as_raw(const Bytes& der, std::size_t half) {
  Bytes out;
  std::size_t at = 2;  // SEQUENCE, length
  for (int i = 0; i < 2; ++i) {
    const std::size_t len = der.at(at + 1);
    Bytes n(der.begin() + static_cast<std::ptrdiff_t>(at + 2), der.begin() + static_cast<std::ptrdiff_t>(at + 2 + len));
    while (n.size() > half && n.front() == 0) n.erase(n.begin());
    out.insert(out.end(), half - n.size(), 0);
    out.insert(out.end(), n.begin(), n.end());
    at += 2 + len;
  }
  return out;
}

// A token made outside korttid, with a key file of the test PKI: what a
// relying party might be handed by a card korttid never saw.
Json token_from_key_file(const std::string& person, const std::string& purpose, const std::string& nonce) {
  const fs::path dir = pki_dir() / "people" / person;
  const X509Ptr cert = read_pem_certificate(dir / (purpose + ".pem"));
  const Bytes der = certificate_der(cert.get());
  const bool ec = EVP_PKEY_is_a(X509_get0_pubkey(cert.get()), "EC") == 1;
  const DigestAlgorithm alg = ec ? DigestAlgorithm::sha384 : DigestAlgorithm::sha256;
  Bytes value = digest(alg, text_bytes(kOrigin));
  const Bytes second = digest(alg, text_bytes(nonce));
  value.insert(value.end(), second.begin(), second.end());
  Bytes signature = sign_like_a_token(dir / (purpose + ".key"), alg, digest(alg, value), !ec);
  if (ec) signature = der_as_raw(signature, 48);
  return {{"unverifiedCertificate", wstr(base64_encode(der))},
          {"algorithm", ec ? "ES384" : "PS256"},
          {"signature", wstr(base64_encode(signature))},
          {"format", "web-eid:1.0"},
          {"appVersion", "https://example.invalid/test"}};
}

TEST(AuthTokenPolicy, ACertificateThePolicyRefusesNeverReachesTheCard) {
  PolicyDaemonOptions o;
  o.items = {"expired/auth", "revoked/auth", "physician/auth"};
  o.revocation = crl_only();
  PolicyDaemon d(std::move(o));
  auto& c = d.client();
  const std::string nonce = base64_encode(random_bytes(32));
  // A wrong PIN: had the card been asked, the answer would be 1011.
  auto ask = [&](int n) {
    return rpc_error([&] {
      c.call(
          "auth.token",
          {{"cert_id", wstr(d.cert_id(n))}, {"origin", kOrigin}, {"challenge_nonce", wstr(nonce)}, {"pin", "999999"}});
    });
  };
  const auto expired = ask(1);
  EXPECT_EQ(expired.code(), 1031) << expired.what();
  EXPECT_EQ(expired.data()["detail"], "expired") << expired.data().dump();
  const auto revoked = ask(2);
  EXPECT_EQ(revoked.code(), 1031) << revoked.what();
  EXPECT_EQ(revoked.data()["detail"], "revoked") << revoked.data().dump();
  EXPECT_EQ(ask(3).code(), 1011) << "a valid certificate does reach the card";
  const std::string audit = read_file(d.daemon().dir() / "audit.log");
  EXPECT_NE(audit.find("\"outcome\":\"policy_denied\""), std::string::npos) << audit;
  EXPECT_NE(audit.find("\"origin\":\"https://sso.example.fi\""), std::string::npos) << audit;
}

// Anyone may ask for what the policy refuses: the audit lines of one uid's
// denials have a budget, past which they are counted, and the count is a
// line of the trail (at the latest when korttid stops); another uid's
// denials are written as ever.
TEST(AuthTokenPolicy, OneUidsDenialsHaveABudgetOfAuditLines) {
  PolicyDaemonOptions o;
  o.items = {"expired/auth"};
  o.revocation = crl_only();
  o.audit = "denial_lines_per_second_per_uid = 1\n";  // 10 lines in 10 s
  PolicyDaemon d(std::move(o));
  const std::string nonce = base64_encode(random_bytes(32));
  const Json params = {
      {"cert_id", wstr(d.cert_id(1))}, {"origin", kOrigin}, {"challenge_nonce", wstr(nonce)}, {"pin", "999999"}};
  auto lines = [&](const std::string& action, uid_t uid) {
    std::vector<Json> out;
    for (const Json& line : d.daemon().audit())
      if (line["action"] == wstr(action) && line["uid"] == uid) out.push_back(line);
    return out;
  };
  for (int i = 0; i < 40; ++i) EXPECT_EQ(rpc_error([&] { d.client().call("auth.token", params); }).code(), 1031);
  auto other = connect_as(d.daemon().socket(), 4242, 4242);
  EXPECT_EQ(rpc_error([&] { other->call("auth.token", params); }).code(), 1031);
  EXPECT_EQ(lines("auth.token", 4242).size(), 1U) << "another uid's denial is written";
  EXPECT_EQ(d.daemon().stop(), 0) << d.daemon().log();
  // Ten a window (twenty, had the requests spanned the start of a new one),
  // and the rest counted.
  const std::size_t written = lines("auth.token", ::getuid()).size();
  EXPECT_GE(written, 10U);
  EXPECT_LE(written, 20U);
  std::size_t counted = 0;
  for (const Json& line : lines("audit.left_out", ::getuid())) {
    EXPECT_EQ(line["outcome"], "policy_denied");
    counted += std::stoul(str(line["detail"]));
  }
  EXPECT_EQ(written + counted, 40U) << "every denial is written or counted";
}

TEST(AuthTokenPolicy, AuthVerifyRefusesTokensWhoseCertificateARelyingPartyWouldRefuse) {
  PolicyDaemonOptions o;
  o.revocation = crl_only();
  o.import_registry = false;
  PolicyDaemon d(std::move(o));
  auto& c = d.client();
  const std::string nonce = base64_encode(random_bytes(32));
  auto verify = [&](const Json& token) {
    return c.call("auth.verify", {{"token", token}, {"origin", kOrigin}, {"challenge_nonce", wstr(nonce)}});
  };
  const Json good = verify(token_from_key_file("physician", "auth", nonce));
  EXPECT_TRUE(good["valid"].get<bool>()) << good.dump();
  const Json ec = verify(token_from_key_file("specialist", "auth", nonce));
  EXPECT_TRUE(ec["valid"].get<bool>()) << ec.dump();
  const std::pair<std::string, std::string> refused[] = {
      {"expired", "certificate_expired"},
      {"revoked", "certificate_revoked"},
  };
  for (const auto& [person, reason] : refused) {
    const Json r = verify(token_from_key_file(person, "auth", nonce));
    EXPECT_FALSE(r["valid"].get<bool>()) << person;
    EXPECT_EQ(r["reason"], wstr(reason)) << r.dump();
  }
  // The impostor's card comes from a root korttid does not trust, and its key
  // is a signature (non-repudiation) key.
  const Json impostor = verify(token_from_key_file("impostor", "sign", nonce));
  EXPECT_FALSE(impostor["valid"].get<bool>());
  EXPECT_EQ(str(impostor["reason"]).rfind("certificate_", 0), 0U) << impostor.dump();
}

}  // namespace
}  // namespace kortti::test
