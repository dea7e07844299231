#include "webeid/commands.hpp"

#include <algorithm>
#include <initializer_list>
#include <map>
#include <optional>

#include "common/digest.hpp"
#include "common/encoding.hpp"
#include "common/error.hpp"
#include "common/keys.hpp"
#include "common/openssl.hpp"
#include "common/origin.hpp"
#include "common/version.hpp"
#include "webeid/messages.hpp"

namespace kortti::webeid {

namespace {

using client::Client;
using Arguments = std::map<std::string, std::string>;

// web-eid-app takes exactly the arguments a command names, each a non-empty
// string, and "lang" (the language of its own dialogs) besides.
Arguments arguments(const Json& request, std::initializer_list<const char*> names) {
  const auto it = request.find("arguments");
  if (it == request.end() || !it->is_object()) throw Failure(kFatal, "the command has no 'arguments' object");
  Arguments out;
  for (const char* name : names) {
    const auto value = it->find(name);
    if (value == it->end() || !value->is_string() || value->get_ref<const WipingString&>().empty())
      throw Failure(kFatal, std::string("argument '") + name + "' must be a non-empty string");
    out[name] = to_std(value->get_ref<const WipingString&>());
  }
  for (const auto& [key, value] : it->items()) {
    if (key == "lang") {
      if (!value.is_string()) throw Failure(kFatal, "argument 'lang' must be a string");
    } else if (!out.contains(to_std(key))) {
      throw Failure(kFatal, "unexpected argument '" + printable(to_std(key), 40) + "'");
    }
  }
  return out;
}

// An origin korttid would refuse is refused here, before the card is asked.
void check_origin(const std::string& origin) {
  try {
    check_web_origin(origin);
  } catch (const Error& e) {
    throw Failure(kFatal, e.what());
  }
}

std::string text(const Json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? to_std(it->get_ref<const WipingString&>()) : std::string();
}

bool has_purpose(const Json& cert, const char* purpose) {
  const auto it = cert.find("purposes");
  if (it == cert.end() || !it->is_array()) return false;
  return std::any_of(it->begin(), it->end(), [&](const Json& p) { return p.is_string() && p == purpose; });
}

// The certificates of `purpose` whose key serves no other: a key that both
// logs in and signs is used for neither. `sign` signs a page's hash, and
// with a key that also logs in any page could forge a login token for
// another site (hash(hash(origin) || hash(nonce)) is just a hash); korttid's
// auth.token refuses such a key, so `authenticate` passes it by.
Json certificates_only_for(Client& korttid, const char* purpose, const char* other) {
  const Json list = korttid.call("certificates.list", {{"purpose", purpose}});
  Json out = Json::array();
  for (const Json& cert : list)
    if (!has_purpose(cert, other)) out.push_back(cert);
  return out;
}

Json signing_certificates(Client& korttid) { return certificates_only_for(korttid, "signature", "authentication"); }

// The first card's authentication certificate. web-eid-app lets the user
// choose among several cards; kortti-webeid does not yet (docs/browsers.md).
Json first_authentication_certificate(Client& korttid) {
  const Json list = certificates_only_for(korttid, "authentication", "signature");
  if (list.empty())
    throw Failure(kFatal, "no card present has a key that logs in only (an authentication certificate)");
  return list.front();
}

struct HashFunction {
  const char* name;  // as Web eID names it
  DigestAlgorithm algorithm;
};
constexpr HashFunction kHashFunctions[] = {
    {"SHA-256", DigestAlgorithm::sha256},
    {"SHA-384", DigestAlgorithm::sha384},
    {"SHA-512", DigestAlgorithm::sha512},
};

const HashFunction& hash_function(const std::string& name) {
  for (const auto& h : kHashFunctions)
    if (name == h.name) return h;
  throw Failure(kFatal,
                "hash function '" + printable(name, 40) + "' is not one kortti signs with (SHA-256, SHA-384, SHA-512)");
}

bool is_ec(const Json& cert) { return text(cert, "key_type") == "ec"; }

// What Web eID calls the signatures a key makes: ECDSA as r||s, RSA with
// PKCS#1 v1.5 padding (korttid's default for RSA keys).
Json signature_algorithm(const Json& cert, const char* hash) {
  return {{"cryptoAlgorithm", is_ec(cert) ? "ECC" : "RSA"},
          {"hashFunction", hash},
          {"paddingScheme", is_ec(cert) ? "NONE" : "PKCS1.5"}};
}

std::size_t field_bytes(const std::string& curve) {
  const std::size_t field = ec_field_bytes(curve);
  if (field == 0) throw Failure(kFatal, "the card's EC key is on a curve Web eID does not name ('" + curve + "')");
  return field;
}

Bytes decode(const std::string& what, const std::string& base64) {
  std::optional<Bytes> bytes = base64_decode(base64);
  if (!bytes) throw Failure(kFatal, "argument '" + what + "' is not base64");
  return std::move(*bytes);
}

// korttid's answers are checked as the page's arguments are: the page gets
// only what Web eID defines, and nothing korttid's answer may hold besides
// (an "error" member in a token would read as this host's failure).
std::string korttid_text(const Json& object, const char* what, const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string() || it->get_ref<const WipingString&>().empty())
    throw Failure(kFatal, std::string("korttid's ") + what + " has no '" + key + "'");
  return to_std(it->get_ref<const WipingString&>());
}

// The Web eID token (format web-eid:1.0): these five members, each text.
Json web_eid_token(const Json& answer) {
  const auto token = answer.find("token");
  if (token == answer.end() || !token->is_object()) throw Failure(kFatal, "korttid's answer has no 'token'");
  Json out = Json::object();
  for (const char* key : {"unverifiedCertificate", "algorithm", "signature", "format", "appVersion"})
    out[key] = wstr(korttid_text(*token, "token", key));
  return out;
}

Json authenticate(const Json& request, const Connect& korttid) {
  const Arguments a = arguments(request, {"challengeNonce", "origin"});
  const std::string& nonce = a.at("challengeNonce");
  if (nonce.size() < 44 || nonce.size() > 128)
    throw Failure(kFatal, "the challenge nonce must be 44 to 128 characters, not " + std::to_string(nonce.size()));
  check_origin(a.at("origin"));
  const Json cert = first_authentication_certificate(korttid());
  // korttid's dialog names the origin: typing the PIN is the user's consent.
  const Json answer = korttid().call("auth.token", {{"cert_id", cert.at("cert_id")},
                                                    {"origin", wstr(a.at("origin"))},
                                                    {"challenge_nonce", wstr(nonce)},
                                                    {"pin_prompt", true}});
  return web_eid_token(answer);
}

Json signing_certificate(const Json& request, const Connect& korttid) {
  const Arguments a = arguments(request, {"origin"});
  check_origin(a.at("origin"));
  // The certificate names the user: korttid gives it to the page only after
  // the user allowed it in korttid's dialog, which names the page.
  const Json cert = korttid().call("certificates.share", {{"purpose", "signature"}, {"origin", wstr(a.at("origin"))}});
  Json algorithms = Json::array();
  for (const auto& h : kHashFunctions) algorithms.push_back(signature_algorithm(cert, h.name));
  return {{"certificate", wstr(korttid_text(cert, "certificate", "der"))},
          {"supportedSignatureAlgorithms", std::move(algorithms)}};
}

Json sign(const Json& request, const Connect& korttid) {
  const Arguments a = arguments(request, {"hash", "hashFunction", "certificate", "origin"});
  check_origin(a.at("origin"));
  const HashFunction& h = hash_function(a.at("hashFunction"));
  const Bytes hash = decode("hash", a.at("hash"));
  if (hash.size() != digest_size(h.algorithm))
    throw Failure(kFatal, std::string(h.name) + " hash must be " + std::to_string(digest_size(h.algorithm)) +
                              " bytes long, but is " + std::to_string(hash.size()) + " instead");
  const Bytes wanted = decode("certificate", a.at("certificate"));
  // The page names the certificate it was given: the card must still hold it.
  const Json list = signing_certificates(korttid());
  const auto cert = std::find_if(list.begin(), list.end(), [&](const Json& c) {
    return base64_decode(text(c, "der")) == std::optional<Bytes>(wanted);
  });
  if (cert == list.end())
    throw Failure(kFatal,
                  "no card present holds the certificate the page asks to sign with as a signature certificate");
  // Known before the card signs: a PIN2 signature is never made to be thrown away.
  const std::size_t field = is_ec(*cert) ? field_bytes(text(*cert, "curve")) : 0;
  const Json answer = korttid().call("sign.digest", {{"cert_id", cert->at("cert_id")},
                                                     {"digest_algorithm", wstr(name_of(h.algorithm))},
                                                     {"digest", wstr(base64_encode(hash))},
                                                     {"scheme", is_ec(*cert) ? "ecdsa" : "pkcs1"},
                                                     {"origin", wstr(a.at("origin"))},
                                                     {"pin_prompt", true}});
  std::optional<Bytes> signature = base64_decode(korttid_text(answer, "answer", "signature"));
  if (!signature) throw Failure(kFatal, "korttid's signature is not base64");
  if (is_ec(*cert)) {
    // korttid answers ECDSA in DER; Web eID, as the card makes it, r||s.
    signature = ecdsa_der_to_raw(*signature, field);
    if (!signature) throw Failure(kFatal, "korttid's ECDSA signature is not DER");
  }
  return {{"signature", wstr(base64_encode(*signature))}, {"signatureAlgorithm", signature_algorithm(*cert, h.name)}};
}

}  // namespace

std::string announced_version() { return std::string(kWebEidVersion) + "+kortti." + kVersion; }

Json run_command(const Json& request, const Connect& korttid) {
  const auto command = request.find("command");
  if (command == request.end() || !command->is_string()) throw Failure(kFatal, "the message has no 'command'");
  const std::string name = to_std(command->get_ref<const WipingString&>());
  if (name == "authenticate") return authenticate(request, korttid);
  if (name == "get-signing-certificate") return signing_certificate(request, korttid);
  if (name == "sign") return sign(request, korttid);
  // The extension's status check: the version was all it wanted.
  if (name == "quit") return Json::object();
  throw Failure(kFatal, "command '" + printable(name, 40) + "' is not supported");
}

}  // namespace kortti::webeid
