// CMS structures an attacker builds from a real signature (issue 12): none
// is a signature korttid signs, and each is refused or held invalid at once
// while korttid goes on answering others.

#include <functional>
#include <stdexcept>

#include "tests/integration/hostile_fixture.hpp"

namespace kortti::test {
namespace {

// Just enough DER to take a SignedData apart and put it back together with
// other parts (definite lengths only: what korttid's sign.cms writes).
struct Tlv {
  unsigned char tag;
  std::size_t content;  // offset of the content in the buffer
  std::size_t end;      // offset just past it
};

Tlv tlv_at(const Bytes& der, std::size_t at) {
  const unsigned char tag = der.at(at);
  std::size_t length = der.at(at + 1);
  std::size_t content = at + 2;
  if (length == 0x80) throw std::runtime_error("indefinite length");
  if ((length & 0x80U) != 0) {
    const std::size_t octets = length & 0x7fU;
    length = 0;
    for (std::size_t i = 0; i < octets; ++i) length = (length << 8U) | der.at(content++);
  }
  if (content + length > der.size()) throw std::runtime_error("an element runs past its end");
  return {tag, content, content + length};
}

std::vector<Bytes> children_of(const Bytes& der, const Tlv& parent) {
  std::vector<Bytes> out;
  for (std::size_t at = parent.content; at < parent.end;) {
    const Tlv child = tlv_at(der, at);
    out.emplace_back(der.begin() + static_cast<std::ptrdiff_t>(at),
                     der.begin() + static_cast<std::ptrdiff_t>(child.end));
    at = child.end;
  }
  return out;
}

Bytes der(unsigned char tag, const Bytes& content) {
  Bytes out{tag};
  if (content.size() < 0x80) {
    out.push_back(static_cast<unsigned char>(content.size()));
  } else {
    Bytes length;
    for (std::size_t n = content.size(); n != 0; n >>= 8U) length.insert(length.begin(), static_cast<unsigned char>(n));
    out.push_back(static_cast<unsigned char>(0x80U | length.size()));
    out.insert(out.end(), length.begin(), length.end());
  }
  out.insert(out.end(), content.begin(), content.end());
  return out;
}

Bytes concat(const std::vector<Bytes>& parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// 1.2.840.113549.1.7.n: id-data (1), id-signedData (2), id-envelopedData (3).
Bytes pkcs7_oid(unsigned char n) { return {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, n}; }

// ContentInfo { id-signedData, [0] SignedData { version, digestAlgorithms,
// encapContentInfo, [0] certificates, signerInfos } }: `edit` changes the
// SignedData's fields, the rest is encoded again around them.
Bytes edit_signed_data(const Bytes& cms, const std::function<void(std::vector<Bytes>&)>& edit) {
  const Tlv content_info = tlv_at(cms, 0);
  const std::vector<Bytes> outer = children_of(cms, content_info);
  const Bytes explicit_tag = outer.at(1);
  const Bytes signed_data = children_of(explicit_tag, tlv_at(explicit_tag, 0)).at(0);
  std::vector<Bytes> fields = children_of(signed_data, tlv_at(signed_data, 0));
  edit(fields);
  return der(0x30, concat({outer.at(0), der(0xa0, der(0x30, concat(fields)))}));
}

// The one SignerInfo of a signature korttid made, from its signerInfos SET.
Bytes only_signer(const Bytes& signer_infos) {
  const Tlv set = tlv_at(signer_infos, 0);
  return Bytes(signer_infos.begin() + static_cast<std::ptrdiff_t>(set.content), signer_infos.end());
}

// Each a CMS structure a client could send, none a signature korttid signs:
// they must get 1051 not_cms, or an answer that says no signer holds, at
// once, and leave korttid to the next client.
TEST_F(Hostile, CmsStructuresThatAreNotSignaturesAreRefusedOrHeldInvalid) {
  start_with({});
  auto c = daemon_->connect();
  const Bytes content = {'L', 'a', 'u', 's', 'u', 'n', 't', 'o'};
  const Bytes good = b64(c->call(
      "sign.cms", {{"cert_id", wstr(rsa_sign_cert())}, {"content", base64_encode(content)}, {"pin", kPin}})["cms"]);
  ASSERT_EQ(tlv_at(good, 0).end, good.size());
  ASSERT_EQ(edit_signed_data(good, [](std::vector<Bytes>&) {}), good) << "taken apart and put together again";

  auto verify = [&](const Bytes& cms) {
    return c->call("verify.cms", {{"cms", base64_encode(cms)}}, std::chrono::seconds(20));
  };
  const Json before = verify(good);
  ASSERT_EQ(before["signers"].size(), 1U) << before.dump();
  EXPECT_EQ(str(before["signers"][0]["signature_value"]), "valid");
  EXPECT_EQ(str(before["signers"][0]["content_digest"]), "valid");

  Bytes nested;
  for (int i = 0; i < 100000; ++i) nested.insert(nested.end(), {0x30, 0x80});
  // An encapsulated content of BER constructed OCTET STRINGs nested 100,000
  // deep, inside an otherwise proper SignedData.
  Bytes strings = pkcs7_oid(1);
  strings.insert(strings.end(), {0xa0, 0x80});
  for (int i = 0; i < 100000; ++i) strings.insert(strings.end(), {0x24, 0x80});
  strings.insert(strings.end(), {0x04, 0x01, 'x'});
  for (int i = 0; i < 100001; ++i) strings.insert(strings.end(), {0x00, 0x00});
  Bytes huge_outer = {0x30, 0x84, 0x7f, 0xff, 0xff, 0xff};
  huge_outer.insert(huge_outer.end(), good.begin() + static_cast<std::ptrdiff_t>(tlv_at(good, 0).content), good.end());
  Bytes eight_octet_length = {0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  eight_octet_length.insert(eight_octet_length.end(),
                            good.begin() + static_cast<std::ptrdiff_t>(tlv_at(good, 0).content), good.end());
  const std::string pem = "-----BEGIN CMS-----\n" + base64_encode(good) + "\n-----END CMS-----\n";

  struct Case {
    const char* name;
    Bytes cms;
  };
  const std::vector<Case> refused = {
      {"empty", {}},
      {"garbage", random_bytes(4096)},
      {"PEM instead of DER", Bytes(pem.begin(), pem.end())},
      {"cut in half", Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(good.size() / 2))},
      {"one byte short", Bytes(good.begin(), good.end() - 1)},
      {"a byte after it", concat({good, {0x00}})},
      {"a length of 2 GiB", huge_outer},
      {"a length of 2^64 - 1", eight_octet_length},
      {"signerInfos claiming 2 GiB",
       edit_signed_data(good,
                        [](std::vector<Bytes>& f) {
                          Bytes& set = f.back();
                          const Tlv t = tlv_at(set, 0);
                          Bytes lie = {0x31, 0x84, 0x7f, 0xff, 0xff, 0xff};
                          lie.insert(lie.end(), set.begin() + static_cast<std::ptrdiff_t>(t.content), set.end());
                          set = lie;
                        })},
      {"100,000 nested SEQUENCEs", nested},
      {"100,000 nested OCTET STRINGs as content",
       edit_signed_data(good, [&](std::vector<Bytes>& f) { f.at(2) = der(0x30, strings); })},
      {"id-data, not id-signedData", der(0x30, concat({pkcs7_oid(1), der(0xa0, der(0x04, content))}))},
      {"id-envelopedData around a SignedData",
       der(0x30, concat({pkcs7_oid(3), children_of(good, tlv_at(good, 0)).at(1)}))},
      {"id-signedData around an OCTET STRING", der(0x30, concat({pkcs7_oid(2), der(0xa0, der(0x04, content))}))},
  };
  for (const auto& k : refused) {
    SCOPED_TRACE(k.name);
    const auto started = std::chrono::steady_clock::now();
    const auto e = rpc_error([&] { verify(k.cms); });
    EXPECT_EQ(e.code(), 1051) << e.what();
    EXPECT_EQ(e.reason(), "document_invalid") << e.what();
    EXPECT_EQ(str(e.data().value("detail", Json(""))), "not_cms") << e.what();
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  }

  // Well-formed, and nobody's signature: an answer, not valid.
  const Json no_signers = verify(edit_signed_data(good, [](std::vector<Bytes>& f) { f.back() = der(0x31, {}); }));
  EXPECT_FALSE(no_signers["valid"].get<bool>()) << no_signers.dump();
  EXPECT_TRUE(no_signers["signers"].empty()) << no_signers.dump();
  const Json no_certificate = verify(edit_signed_data(
      good, [](std::vector<Bytes>& f) { std::erase_if(f, [](const Bytes& field) { return field.at(0) == 0xa0; }); }));
  EXPECT_FALSE(no_certificate["valid"].get<bool>()) << no_certificate.dump();
  ASSERT_EQ(no_certificate["signers"].size(), 1U) << no_certificate.dump();
  EXPECT_TRUE(no_certificate["signers"][0]["certificate"].is_null()) << no_certificate.dump();
  EXPECT_NE(str(no_certificate["signers"][0]["message"]).find("certificate"), std::string::npos);

  // What belongs with the signature, missing or doubled: the caller's mistake.
  const Bytes detached = b64(c->call("sign.cms", {{"cert_id", wstr(rsa_sign_cert())},
                                                  {"content", base64_encode(content)},
                                                  {"detached", true},
                                                  {"pin", kPin}})["cms"]);
  const std::string content_digest = base64_encode(digest(DigestAlgorithm::sha256, content));
  for (const auto& [name, params] : std::vector<std::pair<const char*, Json>>{
           {"detached, without its content", {{"cms", base64_encode(detached)}}},
           {"attached, with content besides", {{"cms", base64_encode(good)}, {"content", base64_encode(content)}}},
           {"content and digest",
            {{"cms", base64_encode(detached)}, {"content", base64_encode(content)}, {"digest", content_digest}}}}) {
    SCOPED_TRACE(name);
    const auto e = rpc_error([&, &params = params] { c->call("verify.cms", params, std::chrono::seconds(20)); });
    EXPECT_EQ(e.code(), -32602) << e.what();
    EXPECT_EQ(e.reason(), "invalid_params") << e.what();
  }
  expect_daemon_fine();
}

// A SignerInfo costs a few hundred bytes of request and a signature check,
// a policy check of its chain and ~2.6 KiB of answer: 15,000 copies of one
// fit in a 10 MiB signature, and korttid worked half a minute on them before
// closing the connection without an answer (the answer was too big to
// queue). Such a signature is refused before any signer is checked.
TEST_F(Hostile, ASignatureWithThousandsOfSignersIsRefusedAtOnce) {
  start_with({});
  auto c = daemon_->connect();
  const Bytes good = signed_cms(*c);
  std::size_t copies = 0;
  const Bytes crowd = edit_signed_data(good, [&](std::vector<Bytes>& f) {
    const Bytes signer = only_signer(f.back());
    copies = 10 * 1024 * 1024 / signer.size();
    f.back() = der(0x31, concat(std::vector<Bytes>(copies, signer)));
  });
  ASSERT_GT(copies, 10000U);
  const auto e = rpc_error([&] { c->call("verify.cms", {{"cms", base64_encode(crowd)}}, std::chrono::seconds(90)); });
  EXPECT_EQ(e.code(), 1051) << e.what();
  EXPECT_EQ(str(e.data().value("detail", Json(""))), "too_many_signers") << e.what();
  EXPECT_NE(std::string(e.what()).find(std::to_string(copies) + " signers"), std::string::npos) << e.what();
  expect_daemon_fine();
}

// Each signer was handed every other embedded certificate as its chain, and
// each chain went through the policy: 300 signers and 300 certificates (half
// a MiB) cost 17 s and 200 MiB. The counts are bounded (16 signers, 64
// certificates); at the bounds every signer is still checked.
TEST_F(Hostile, SignersAndCertificatesInOneSignatureAreBounded) {
  start_with({});
  auto c = daemon_->connect();
  const Bytes good = signed_cms(*c);
  const std::string pem = read_file(pki_dir() / "ca/hc-rsa.pem");
  const auto begin = pem.find('\n') + 1;
  std::string body = pem.substr(begin, pem.find("-----END") - begin);
  std::erase(body, '\n');
  const Bytes ca = base64_decode(body).value();
  // `signers` copies of the one SignerInfo; the signer's own certificate and
  // `extra` copies of its CA's.
  auto crowd = [&](std::size_t signers, std::size_t extra) {
    return edit_signed_data(good, [&](std::vector<Bytes>& f) {
      Bytes& certificates = f.at(3);
      const Tlv own = tlv_at(certificates, 0);
      ASSERT_EQ(own.tag, 0xa0) << "the certificates";
      Bytes all(certificates.begin() + static_cast<std::ptrdiff_t>(own.content), certificates.end());
      for (std::size_t i = 0; i < extra; ++i) all.insert(all.end(), ca.begin(), ca.end());
      certificates = der(0xa0, all);
      f.back() = der(0x31, concat(std::vector<Bytes>(signers, only_signer(f.back()))));
    });
  };
  auto refusal = [&](const Bytes& cms) {
    const auto e = rpc_error([&] { c->call("verify.cms", {{"cms", base64_encode(cms)}}, std::chrono::seconds(60)); });
    EXPECT_EQ(e.code(), 1051) << e.what();
    return str(e.data().value("detail", Json("")));
  };
  EXPECT_EQ(refusal(crowd(300, 300)), "too_many_signers");
  EXPECT_EQ(refusal(crowd(17, 0)), "too_many_signers");
  EXPECT_EQ(refusal(crowd(16, 64)), "too_many_certificates");  // 65 with the signer's own

  const Json answer = c->call("verify.cms", {{"cms", base64_encode(crowd(16, 63))}}, std::chrono::seconds(120));
  ASSERT_EQ(answer["signers"].size(), 16U) << answer.dump();
  for (const auto& signer : answer["signers"]) EXPECT_EQ(str(signer["signature_value"]), "valid") << signer.dump();
  expect_daemon_fine();
}

}  // namespace
}  // namespace kortti::test
