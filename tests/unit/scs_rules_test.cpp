// The SCS interface's rules without a socket: Host, Content-Type, the /sign
// body, the authentication key's rule, certificate selection, names, rate.

#include <gtest/gtest.h>

#include "common/encoding.hpp"
#include "scs/rules.hpp"

namespace kortti::scs {
namespace {

constexpr std::uint16_t kPort = 53952;

TEST(ScsHost, OnlyLoopbackNamesWithThePortPass) {
  EXPECT_TRUE(host_allowed("localhost:53952", kPort));
  EXPECT_TRUE(host_allowed("LOCALHOST:53952", kPort));
  EXPECT_TRUE(host_allowed("127.0.0.1:53952", kPort));
  EXPECT_TRUE(host_allowed("[::1]:53952", kPort));
  EXPECT_FALSE(host_allowed("evil.example:53952", kPort));  // DNS rebinding
  EXPECT_FALSE(host_allowed("localhost", kPort));
  EXPECT_FALSE(host_allowed("localhost:53951", kPort));
  EXPECT_FALSE(host_allowed("localhost.evil.example:53952", kPort));
  EXPECT_FALSE(host_allowed("127.0.0.2:53952", kPort));
  EXPECT_FALSE(host_allowed("", kPort));
  EXPECT_FALSE(host_allowed(":53952", kPort));
}

TEST(ScsContentType, OnlyJsonMakesAPreflightedRequest) {
  EXPECT_TRUE(is_json_content_type("application/json"));
  EXPECT_TRUE(is_json_content_type("application/json; charset=utf-8"));
  EXPECT_TRUE(is_json_content_type("Application/JSON"));
  EXPECT_FALSE(is_json_content_type("text/plain"));
  EXPECT_FALSE(is_json_content_type("application/x-www-form-urlencoded"));
  EXPECT_FALSE(is_json_content_type("application/jsonx"));
  EXPECT_FALSE(is_json_content_type(""));
}

Json request(const std::string& type, const std::string& content_type, const Bytes& content) {
  return {{"version", "1.1"},
          {"signatureType", wstr(type)},
          {"hashAlgorithm", "SHA256"},
          {"contentType", wstr(content_type)},
          {"content", wstr(base64_encode(content))}};
}

Refusal refusal(const Json& body) {
  auto parsed = parse_sign_request(body);
  if (auto* r = std::get_if<Refusal>(&parsed)) return *r;
  ADD_FAILURE() << "accepted: " << body.dump();
  return {};
}

TEST(ScsSignRequest, TheThreeSignatureTypes) {
  const Bytes data = {'h', 'i'};
  auto a = parse_sign_request(request("signature", "data", data));
  ASSERT_TRUE(std::holds_alternative<SignRequest>(a));
  EXPECT_EQ(std::get<SignRequest>(a).type, SignatureType::signature);
  EXPECT_EQ(std::get<SignRequest>(a).content, data);
  EXPECT_EQ(std::get<SignRequest>(a).selector.purpose, pkcs11::Purpose::signature);  // nonrepudiation by default

  const Bytes d32(32, 7);
  auto b = parse_sign_request(request("cms-pades", "digest", d32));
  ASSERT_TRUE(std::holds_alternative<SignRequest>(b));
  EXPECT_EQ(std::get<SignRequest>(b).type, SignatureType::cms_pades);
  EXPECT_EQ(std::get<SignRequest>(b).content_type, ContentType::digest);

  Json c = request("cms", "data", data);
  c["hashAlgorithm"] = "SHA-384";
  c["selector"] = {{"keyusages", {"digitalsignature"}}, {"keyalgorithms", {"EC", "RSA"}}, {"issuers", {"CN=X"}}};
  auto parsed = parse_sign_request(c);
  ASSERT_TRUE(std::holds_alternative<SignRequest>(parsed));
  const auto& s = std::get<SignRequest>(parsed);
  EXPECT_EQ(s.hash, DigestAlgorithm::sha384);
  EXPECT_EQ(s.selector.purpose, pkcs11::Purpose::authentication);
  EXPECT_EQ(s.selector.key_types, (std::vector<KeyType>{KeyType::ec, KeyType::rsa}));
  EXPECT_EQ(s.selector.issuers, std::vector<std::string>{"CN=X"});
}

TEST(ScsSignRequest, MalformedAndUnsupportedRequestsAreRefusedWithTheirReason) {
  const Bytes data = {'x'};
  EXPECT_EQ(refusal(Json::array()).reason, Reason::bad_request);
  EXPECT_EQ(refusal(request("raw", "data", data)).reason, Reason::unsupported);
  EXPECT_EQ(refusal(request("signature", "file", data)).reason, Reason::unsupported);
  Json sha1 = request("signature", "data", data);
  sha1["hashAlgorithm"] = "SHA1";
  EXPECT_EQ(refusal(sha1).reason, Reason::unsupported);
  Json v2 = request("signature", "data", data);
  v2["version"] = "2.0";
  EXPECT_EQ(refusal(v2).reason, Reason::unsupported);
  Json not_base64 = request("signature", "data", data);
  not_base64["content"] = "***";
  EXPECT_EQ(refusal(not_base64).reason, Reason::bad_request);
  EXPECT_EQ(refusal(request("signature", "digest", Bytes(31, 1))).reason, Reason::bad_request);  // not a SHA-256
  EXPECT_EQ(refusal(request("cms-pades", "data", data)).reason, Reason::bad_request);
  EXPECT_EQ(refusal(request("signature", "data", {})).reason, Reason::bad_request);
  Json two_usages = request("signature", "data", data);
  two_usages["selector"] = {{"keyusages", {"digitalsignature", "nonrepudiation"}}};
  EXPECT_EQ(refusal(two_usages).reason, Reason::bad_request);
  Json dsa = request("signature", "data", data);
  dsa["selector"] = {{"keyalgorithms", {"DSA"}}};
  EXPECT_EQ(refusal(dsa).reason, Reason::unsupported);
  Json selector = request("signature", "data", data);
  selector["selector"] = "nonrepudiation";
  EXPECT_EQ(refusal(selector).reason, Reason::bad_request);
  EXPECT_EQ(refusal(request("signature", "digest", Bytes(31, 1))).http_status, 400);
}

TEST(ScsAuthenticationKey, SignsOnlyDataThatNamesThePage) {
  const std::string origin = "https://ehr.example.fi";
  auto make = [&](const std::string& type, const std::string& content_type, const std::string& text) {
    auto parsed = parse_sign_request(request(type, content_type, Bytes(text.begin(), text.end())));
    auto r = std::get<SignRequest>(parsed);
    r.selector.purpose = pkcs11::Purpose::authentication;
    return r;
  };
  EXPECT_FALSE(check_authentication_use(make("signature", "data", origin + "\nchallenge 42"), origin));
  const std::string digest(32, 'd');
  const auto refused = {
      check_authentication_use(make("signature", "digest", digest), origin),
      check_authentication_use(make("signature", "data", "challenge 42"), origin),
      check_authentication_use(make("signature", "data", origin + "challenge"), origin),  // no newline
      check_authentication_use(make("signature", "data", origin + ".evil.example\nx"), origin),
      check_authentication_use(make("signature", "data", origin), origin),
      check_authentication_use(make("signature", "data", "https://other.example\nx"), origin),
      check_authentication_use(make("cms", "data", origin + "\nx"), origin),
  };
  for (const auto& r : refused) {
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->reason, Reason::authentication_rule);
    EXPECT_EQ(r->http_status, 403);
  }
  // The signature key has no such rule.
  auto signature = make("signature", "digest", digest);
  signature.selector.purpose = pkcs11::Purpose::signature;
  EXPECT_FALSE(check_authentication_use(signature, origin));
}

TEST(ScsNames, TheSameNameInEitherSpellingMatches) {
  EXPECT_TRUE(same_name("CN=DVV Test CA, O=DVV, C=FI", "C=FI,O=DVV,CN=DVV Test CA"));
  EXPECT_TRUE(same_name("cn=dvv test ca,o=dvv,c=fi", "CN=DVV Test CA, O=DVV, C=FI"));
  EXPECT_TRUE(same_name("/C=FI/O=DVV/CN=DVV Test CA", "CN=DVV Test CA,O=DVV,C=FI"));
  EXPECT_TRUE(same_name("CN = A\\, B, C=FI", "C=FI,CN=A\\, B"));
  EXPECT_FALSE(same_name("CN=DVV Test CA, O=DVV", "CN=DVV Test CA, O=DVV, C=FI"));
  EXPECT_FALSE(same_name("CN=DVV Test CA 2, O=DVV, C=FI", "CN=DVV Test CA, O=DVV, C=FI"));
  EXPECT_FALSE(same_name("", ""));
}

pkcs11::CertificateInfo cert(const std::string& id, KeyType type, std::vector<pkcs11::Purpose> purposes,
                             const std::string& issuer = "CN=CA 1,C=FI") {
  pkcs11::CertificateInfo c;
  c.cert_id = id;
  c.key_type = type;
  c.purposes = std::move(purposes);
  c.issuer = issuer;
  return c;
}

TEST(ScsSelector, EachKeyDoesOneJob) {
  using pkcs11::Purpose;
  const std::vector<pkcs11::CertificateInfo> certs = {
      cert("both", KeyType::rsa, {Purpose::signature, Purpose::authentication}),
      cert("auth-rsa", KeyType::rsa, {Purpose::authentication}),
      cert("sign-rsa", KeyType::rsa, {Purpose::signature}),
      cert("sign-ec", KeyType::ec, {Purpose::signature}, "CN=CA 2,C=FI"),
  };
  Selector s;
  EXPECT_EQ(select_certificate(certs, s)->cert_id, "sign-rsa");  // never the key that also logs in
  s.key_types = {KeyType::ec};
  EXPECT_EQ(select_certificate(certs, s)->cert_id, "sign-ec");
  s.key_types = {};
  s.issuers = {"C=FI, CN=CA 2"};
  EXPECT_EQ(select_certificate(certs, s)->cert_id, "sign-ec");
  s.issuers = {"CN=CA 3,C=FI"};
  EXPECT_FALSE(select_certificate(certs, s));
  Selector auth;
  auth.purpose = Purpose::authentication;
  EXPECT_EQ(select_certificate(certs, auth)->cert_id, "auth-rsa");
  auth.key_types = {KeyType::ec};
  EXPECT_FALSE(select_certificate(certs, auth));
  EXPECT_FALSE(select_certificate({}, Selector{}));
}

TEST(ScsNames, SignatureAlgorithmsAsJavaNamesThem) {
  EXPECT_EQ(signature_algorithm(DigestAlgorithm::sha256, KeyType::rsa, pkcs11::Scheme::pkcs1), "SHA256withRSA");
  EXPECT_EQ(signature_algorithm(DigestAlgorithm::sha384, KeyType::ec, pkcs11::Scheme::ecdsa), "SHA384withECDSA");
  EXPECT_EQ(signature_algorithm(DigestAlgorithm::sha512, KeyType::rsa, pkcs11::Scheme::pss), "SHA512withRSAandMGF1");
  const Json v = version_document();
  EXPECT_EQ(v["version"], "1.1");
  EXPECT_EQ(v["signatureTypes"], "signature,cms,cms-pades");
  EXPECT_EQ(v["selectorAvailable"], true);
}

TEST(ScsRate, AnOriginGetsItsShareInAnyMinute) {
  RateLimit rate(3);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(rate.allow("https://a.example", t0));
  EXPECT_TRUE(rate.allow("https://a.example", t0 + std::chrono::seconds(1)));
  EXPECT_TRUE(rate.allow("https://a.example", t0 + std::chrono::seconds(2)));
  EXPECT_FALSE(rate.allow("https://a.example", t0 + std::chrono::seconds(3)));
  EXPECT_TRUE(rate.allow("https://b.example", t0 + std::chrono::seconds(3)));  // its own share
  EXPECT_FALSE(rate.allow("https://a.example", t0 + std::chrono::seconds(59)));
  EXPECT_TRUE(rate.allow("https://a.example", t0 + std::chrono::seconds(61)));  // the first has left the minute
}

}  // namespace
}  // namespace kortti::scs
