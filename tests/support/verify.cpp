#include "tests/support/support.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <stdexcept>

#include "common/openssl.hpp"

namespace kortti::test {

std::vector<Bytes> pem_certificates(const fs::path& pem) {
  BioPtr bio(BIO_new_file(pem.c_str(), "r"));
  std::vector<Bytes> out;
  while (bio) {
    X509Ptr x509(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!x509) break;
    out.push_back(certificate_der(x509.get()));
  }
  ERR_clear_error();  // the end of the file
  if (out.empty()) throw std::runtime_error("no certificate in " + pem.string());
  return out;
}

CommandResult xmlsec_verify(const std::string& document, const std::string& signature_id) {
  TempDir tmp;
  write_file(tmp / "signed.xml", document);
  // Kanta's timestamp reference points at an ID attribute, which without a
  // DTD only exists when named.
  std::vector<std::string> argv = {"xmlsec1",      "--verify",
                                   "--id-attr:ID", "urn:hl7finland:signatureTimestamp",
                                   "--id-attr:Id", "http://www.w3.org/2000/09/xmldsig#:Signature"};
  for (const auto* pem : {"trust/g2-root.pem", "trust/g3-root.pem"})
    argv.insert(argv.end(), {"--trusted-pem", (pki_dir() / pem).string()});
  for (const auto* pem : {"ca/hc-rsa.pem", "ca/hc-ec.pem"})
    argv.insert(argv.end(), {"--untrusted-pem", (pki_dir() / pem).string()});
  if (!signature_id.empty()) argv.insert(argv.end(), {"--node-id", signature_id});
  argv.push_back((tmp / "signed.xml").string());
  return run(argv);
}

CommandResult cms_verify(const Bytes& cms, const std::optional<Bytes>& content) {
  TempDir tmp;
  write_bytes(tmp / "sig.der", cms);
  // The issuing CAs too: a card holds only its own certificates, so a
  // signature may carry no chain.
  std::string store;
  for (const auto* pem : {"trust/g2-root.pem", "trust/g3-root.pem", "ca/hc-rsa.pem", "ca/hc-ec.pem"})
    store += read_file(pki_dir() / pem);
  write_file(tmp / "roots.pem", store);
  std::vector<std::string> argv = {"openssl",
                                   "cms",
                                   "-verify",
                                   "-cades",
                                   "-binary",
                                   "-inform",
                                   "DER",
                                   "-in",
                                   (tmp / "sig.der").string(),
                                   "-CAfile",
                                   (tmp / "roots.pem").string(),
                                   "-purpose",
                                   "any",
                                   "-out",
                                   (tmp / "content.bin").string()};
  if (content) {
    write_bytes(tmp / "data.bin", *content);
    argv.insert(argv.end(), {"-content", (tmp / "data.bin").string()});
  }
  CommandResult r = run(argv);
  if (r.status == 0) r.out = read_file(tmp / "content.bin");
  return r;
}

X509Ptr read_pem_certificate(const fs::path& pem) {
  BioPtr bio(BIO_new_file(pem.c_str(), "r"));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  return cert;
}

EvpPkeyPtr read_pem_key(const fs::path& pem) {
  BioPtr bio(BIO_new_file(pem.c_str(), "r"));
  EvpPkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  return key;
}

Bytes sign_like_a_token(const fs::path& key_pem, DigestAlgorithm alg, const Bytes& digest, bool pss) {
  const EvpPkeyPtr key = read_pem_key(key_pem);
  if (!key) throw std::runtime_error("cannot read " + key_pem.string());
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(key.get(), nullptr));
  EVP_PKEY_sign_init(ctx.get());
  if (EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_RSA) {
    EVP_PKEY_CTX_set_rsa_padding(ctx.get(), pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING);
    if (pss) EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST);
  }
  EVP_PKEY_CTX_set_signature_md(ctx.get(), evp_md(alg));
  std::size_t len = 0;
  EVP_PKEY_sign(ctx.get(), nullptr, &len, digest.data(), digest.size());
  Bytes sig(len);
  if (EVP_PKEY_sign(ctx.get(), sig.data(), &len, digest.data(), digest.size()) != 1)
    throw std::runtime_error("signing with " + key_pem.string() + " failed");
  sig.resize(len);
  return sig;
}

namespace {

std::vector<std::string> scheme_options(const std::string& flag, const std::string& scheme) {
  if (scheme != "pss") return {};
  return {flag, "rsa_padding_mode:pss", flag, "rsa_pss_saltlen:digest"};
}

fs::path public_key_pem(const TempDir& dir, const Bytes& certificate_der) {
  write_bytes(dir / "cert.der", certificate_der);
  auto r = run({"openssl", "x509", "-inform", "DER", "-in", (dir / "cert.der").string(), "-pubkey", "-noout"});
  if (r.status != 0) throw std::runtime_error("openssl x509: " + r.err);
  write_file(dir / "pub.pem", r.out);
  return dir / "pub.pem";
}

}  // namespace

bool openssl_verify_digest(const Bytes& certificate_der, const Bytes& digest, const Bytes& signature,
                           const std::string& digest_algorithm, const std::string& scheme) {
  TempDir dir;
  const fs::path pub = public_key_pem(dir, certificate_der);
  write_bytes(dir / "digest.bin", digest);
  write_bytes(dir / "sig.bin", signature);
  std::vector<std::string> argv = {"openssl",  "pkeyutl",
                                   "-verify",  "-pubin",
                                   "-inkey",   pub.string(),
                                   "-in",      (dir / "digest.bin").string(),
                                   "-sigfile", (dir / "sig.bin").string()};
  if (scheme != "ecdsa") argv.insert(argv.end(), {"-pkeyopt", "digest:" + digest_algorithm});
  for (auto& o : scheme_options("-pkeyopt", scheme)) argv.push_back(o);
  auto r = run(argv);
  return r.status == 0 && r.out.find("Signature Verified Successfully") != std::string::npos;
}

bool openssl_verify_data(const Bytes& certificate_der, const Bytes& data, const Bytes& signature,
                         const std::string& digest_algorithm, const std::string& scheme) {
  TempDir dir;
  const fs::path pub = public_key_pem(dir, certificate_der);
  write_bytes(dir / "data.bin", data);
  write_bytes(dir / "sig.bin", signature);
  std::vector<std::string> argv = {"openssl",    "dgst",       "-" + digest_algorithm,    "-verify",
                                   pub.string(), "-signature", (dir / "sig.bin").string()};
  for (auto& o : scheme_options("-sigopt", scheme)) argv.push_back(o);
  argv.push_back((dir / "data.bin").string());
  auto r = run(argv);
  return r.status == 0 && r.out.find("Verified OK") != std::string::npos;
}

// The openssl CLI's hash of a text, as raw bytes.
Bytes openssl_hash(const std::string& alg, const std::string& text) {
  TempDir dir;
  write_file(dir / "in.txt", text);
  auto r = run({"openssl", "dgst", "-" + alg, "-binary", (dir / "in.txt").string()});
  if (r.status != 0) throw std::runtime_error("openssl dgst: " + r.err);
  return Bytes(r.out.begin(), r.out.end());
}

namespace {

// Tag, short-form length, content. Written into a vector of its final size:
// GCC 12 at -O3 warns falsely (-Warray-bounds) on a range insert after a
// two-byte initializer list.
Bytes der_tagged(std::uint8_t tag, const Bytes& content) {
  Bytes out(2 + content.size());
  out[0] = tag;
  out[1] = static_cast<std::uint8_t>(content.size());
  std::copy(content.begin(), content.end(), out.begin() + 2);
  return out;
}

Bytes der_integer(ByteView value) {
  std::size_t skip = 0;
  while (skip + 1 < value.size() && value[skip] == 0) ++skip;
  Bytes body(value.begin() + static_cast<std::ptrdiff_t>(skip), value.end());
  // An empty value is the integer 0; a leading 1 bit would read as negative.
  if (body.empty() || (body[0] & 0x80) != 0) body.insert(body.begin(), 0);
  return der_tagged(0x02, body);
}

}  // namespace

// JWS r||s as the DER ECDSA-Sig-Value openssl verifies (short form lengths:
// P-384's r and s make at most 102 bytes).
Bytes ecdsa_raw_as_der(const Bytes& raw) {
  const std::size_t half = raw.size() / 2;
  Bytes seq = der_integer(ByteView(raw.data(), half));
  const Bytes s = der_integer(ByteView(raw.data() + half, half));
  seq.insert(seq.end(), s.begin(), s.end());
  return der_tagged(0x30, seq);
}

// The Web eID rule, independently: does `token` sign this origin and nonce?
bool web_eid_rule_holds(const Json& token, const std::string& origin, const std::string& nonce) {
  const std::string algorithm = str(token["algorithm"]);
  const std::string bits = algorithm.substr(2);
  const std::string hash = "sha" + bits;
  Bytes value = openssl_hash(hash, origin);
  const Bytes second = openssl_hash(hash, nonce);
  value.insert(value.end(), second.begin(), second.end());
  Bytes signature = b64(token["signature"]);
  std::string scheme = "pkcs1";
  if (algorithm[0] == 'E') {
    scheme = "ecdsa";
    signature = ecdsa_raw_as_der(signature);
  } else if (algorithm[0] == 'P') {
    scheme = "pss";
  }
  return openssl_verify_data(b64(token["unverifiedCertificate"]), value, signature, hash, scheme);
}

}  // namespace kortti::test
