// Web eID authentication tokens: the signed value, the algorithm a key
// makes, the JWS form of an ECDSA signature, and the check a relying party
// runs on the token itself (docs/authentication.md).

#include <array>
#include <stdexcept>

#include "common/encoding.hpp"
#include "common/error.hpp"
#include "common/openssl.hpp"
#include "signature/signature.hpp"

namespace kortti::signature {

namespace {

using D = DigestAlgorithm;
using S = Scheme;

constexpr std::array<WebEidAlgorithm, 9> kAlgorithms{{
    {"ES256", D::sha256, S::ecdsa},
    {"ES384", D::sha384, S::ecdsa},
    {"ES512", D::sha512, S::ecdsa},
    {"PS256", D::sha256, S::pss},
    {"PS384", D::sha384, S::pss},
    {"PS512", D::sha512, S::pss},
    {"RS256", D::sha256, S::pkcs1},
    {"RS384", D::sha384, S::pkcs1},
    {"RS512", D::sha512, S::pkcs1},
}};

const WebEidAlgorithm& named(std::string_view name) { return *parse_web_eid_algorithm(name); }

std::string_view curve_of(EVP_PKEY* key) {
  char group[64] = {};
  std::size_t length = 0;
  if (EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof group, &length) != 1) return "";
  const std::string_view name(group, length);
  if (name == "prime256v1" || name == "P-256") return "P-256";
  if (name == "secp384r1" || name == "P-384") return "P-384";
  if (name == "secp521r1" || name == "P-521") return "P-521";
  return "";
}

[[noreturn]] void bad(const char* param, const std::string& why) {
  throw Error(Errc::invalid_params, std::string("'") + param + "' " + why);
}

bool base64_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
}

}  // namespace

const WebEidAlgorithm* parse_web_eid_algorithm(std::string_view name) {
  for (const auto& a : kAlgorithms)
    if (a.name == name) return &a;
  return nullptr;
}

const WebEidAlgorithm& web_eid_algorithm_for(KeyType type, std::string_view curve, bool rsa_pss) {
  if (type == KeyType::rsa) return named(rsa_pss ? "PS256" : "RS256");
  if (curve == "P-256") return named("ES256");
  if (curve == "P-384") return named("ES384");
  if (curve == "P-521") return named("ES512");
  throw Error(Errc::unsupported, "no Web eID algorithm for an EC key on curve '" + std::string(curve) + "'");
}

void check_web_eid_nonce(std::string_view nonce) {
  if (nonce.size() < 44) bad("challenge_nonce", "must be at least 44 characters (256 random bits in base64)");
  if (nonce.size() > 1024) bad("challenge_nonce", "must be at most 1024 characters");
  for (char c : nonce)
    if (!base64_char(c)) bad("challenge_nonce", "must be base64 text");
}

Bytes web_eid_digest(const WebEidAlgorithm& algorithm, std::string_view origin, std::string_view nonce) {
  auto text = [](std::string_view s) { return ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); };
  Bytes value = digest(algorithm.digest, text(origin));
  const Bytes second = digest(algorithm.digest, text(nonce));
  value.insert(value.end(), second.begin(), second.end());
  return digest(algorithm.digest, value);
}

Bytes web_eid_signature(const WebEidAlgorithm& algorithm, std::string_view curve, ByteView card_signature) {
  if (algorithm.scheme != Scheme::ecdsa) return Bytes(card_signature.begin(), card_signature.end());
  auto raw = ecdsa_der_to_raw(card_signature, ec_field_bytes(curve));
  if (!raw)
    throw std::runtime_error("the token's ECDSA signature is not DER or does not fit curve " + std::string(curve));
  return std::move(*raw);
}

WebEidCheck verify_web_eid_token(const WebEidToken& token, std::string_view origin, std::string_view nonce) {
  // web-eid:1 with any minor version, as the reference validators take it.
  if (token.format != "web-eid:1" && token.format.rfind("web-eid:1.", 0) != 0)
    return {"format_unsupported", "the token's format is not web-eid:1"};
  const WebEidAlgorithm* algorithm = parse_web_eid_algorithm(token.algorithm);
  if (algorithm == nullptr) return {"algorithm_unsupported", "the token's algorithm is not one Web eID defines"};
  X509Ptr cert = parse_certificate(token.certificate);
  EVP_PKEY* key = cert ? X509_get0_pubkey(cert.get()) : nullptr;
  if (key == nullptr) return {"certificate_unreadable", "unverifiedCertificate is not an X.509 certificate"};
  const bool ec = EVP_PKEY_is_a(key, "EC") == 1;
  if (ec != (algorithm->scheme == Scheme::ecdsa) || (!ec && EVP_PKEY_is_a(key, "RSA") != 1))
    return {"algorithm_mismatch", "the algorithm " + token.algorithm + " does not fit the certificate's key"};
  Bytes signature = token.signature;
  if (ec) {
    const std::string_view curve = curve_of(key);
    const std::size_t field = ec_field_bytes(curve);
    // JWS ties each ES algorithm to one curve.
    if (field == 0 || web_eid_algorithm_for(KeyType::ec, curve, false).name != algorithm->name)
      return {"algorithm_mismatch", "the algorithm " + token.algorithm + " does not fit the certificate's curve"};
    // JWS fixes the length of r||s; a DER or short value is not a Web eID signature.
    auto der = signature.size() == 2 * field ? ecdsa_raw_to_der(signature) : std::nullopt;
    if (!der) return {"signature_invalid", "the ECDSA signature is not r||s of the key's curve"};
    signature = std::move(*der);
  }
  const Bytes digest_value = web_eid_digest(*algorithm, origin, nonce);
  if (!verify_digest_signature(key, algorithm->scheme, algorithm->digest, digest_value, signature))
    return {"signature_invalid", "the signature does not hold for this origin and nonce"};
  return {};
}

}  // namespace kortti::signature
