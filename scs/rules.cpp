#include "scs/rules.hpp"

#include <algorithm>
#include <cctype>

#include "common/encoding.hpp"

namespace kortti::scs {

namespace {

Refusal bad(std::string text) { return {400, Reason::bad_request, std::move(text)}; }
Refusal unsupported(std::string text) { return {400, Reason::unsupported, std::move(text)}; }

const Json* member(const Json& object, const char* name) {
  const auto it = object.find(name);
  return it == object.end() ? nullptr : &*it;
}

// A list of strings; none when it is not one.
std::optional<std::vector<std::string>> strings(const Json& value) {
  if (!value.is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const Json& v : value) {
    if (!v.is_string()) return std::nullopt;
    out.push_back(to_std(v.get_ref<const WipingString&>()));
  }
  return out;
}

std::optional<Refusal> parse_selector(const Json& value, Selector& out) {
  if (!value.is_object()) return bad("'selector' must be an object");
  if (const Json* usages = member(value, "keyusages")) {
    auto list = strings(*usages);
    if (!list || list->size() != 1)
      return bad("'selector.keyusages' must list one key usage: digitalsignature or nonrepudiation");
    const std::string usage = ascii_lower((*list)[0]);
    if (usage == "nonrepudiation")
      out.purpose = pkcs11::Purpose::signature;
    else if (usage == "digitalsignature")
      out.purpose = pkcs11::Purpose::authentication;
    else
      return unsupported("'selector.keyusages' must be digitalsignature or nonrepudiation, not '" +
                         printable(usage, 40) + "'");
  }
  if (const Json* algorithms = member(value, "keyalgorithms")) {
    auto list = strings(*algorithms);
    if (!list) return bad("'selector.keyalgorithms' must be a list of RSA and EC");
    for (const auto& a : *list) {
      const std::string name = ascii_lower(a);
      if (name == "rsa")
        out.key_types.push_back(KeyType::rsa);
      else if (name == "ec" || name == "ecc" || name == "ecdsa")
        out.key_types.push_back(KeyType::ec);
      else
        return unsupported("'selector.keyalgorithms' may name RSA and EC, not '" + printable(a, 40) + "'");
    }
  }
  if (const Json* issuers = member(value, "issuers")) {
    auto list = strings(*issuers);
    if (!list) return bad("'selector.issuers' must be a list of distinguished names");
    out.issuers = std::move(*list);
  }
  return std::nullopt;
}

// "SHA-256", "sha256" and "SHA256" are one algorithm.
std::optional<DigestAlgorithm> hash_named(std::string_view name) {
  std::string compact;
  for (char c : name)
    if (c != '-') compact += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return parse_digest_algorithm(compact);
}

// The parts of a DN: "CN=A, O=B" and "O=B,CN=A" have the same ones.
std::vector<std::string> name_parts(std::string_view dn) {
  std::vector<std::string> parts;
  std::string part;
  auto flush = [&] {
    std::string cleaned;
    bool after_equals = false;
    for (std::size_t i = 0; i < part.size(); ++i) {
      const char c = part[i];
      if (c == ' ' && (cleaned.empty() || cleaned.back() == '=' || (i + 1 < part.size() && part[i + 1] == '=')))
        continue;
      if (c == '=') after_equals = true;
      cleaned += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    while (!cleaned.empty() && cleaned.back() == ' ') cleaned.pop_back();
    if (after_equals) parts.push_back(cleaned);
    part.clear();
  };
  // OpenSSL's one-line form separates with '/' and begins with one.
  const bool slashes = !dn.empty() && dn.front() == '/';
  for (std::size_t i = 0; i < dn.size(); ++i) {
    if (dn[i] == '\\' && i + 1 < dn.size()) {
      part += dn[i];
      part += dn[++i];
    } else if (slashes ? dn[i] == '/' : (dn[i] == ',' || dn[i] == ';')) {
      flush();
    } else {
      part += dn[i];
    }
  }
  flush();
  std::sort(parts.begin(), parts.end());
  return parts;
}

}  // namespace

bool host_allowed(std::string_view host, std::uint16_t port) {
  const std::string suffix = ":" + std::to_string(port);
  if (host.size() <= suffix.size() || host.substr(host.size() - suffix.size()) != suffix) return false;
  const std::string name = ascii_lower(host.substr(0, host.size() - suffix.size()));
  return name == "localhost" || name == "127.0.0.1" || name == "[::1]";
}

bool is_json_content_type(std::string_view content_type) {
  const auto semicolon = content_type.find(';');
  std::string type = ascii_lower(content_type.substr(0, semicolon));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.pop_back();
  return type == "application/json";
}

std::variant<SignRequest, Refusal> parse_sign_request(const Json& body) {
  if (!body.is_object()) return bad("the body must be a JSON object");
  SignRequest out;
  if (const Json* version = member(body, "version"); version != nullptr && *version != "1.1" && *version != "1.0")
    return unsupported("'version' must be 1.1");

  const Json* type = member(body, "signatureType");
  if (type == nullptr || !type->is_string()) return bad("'signatureType' must be signature, cms or cms-pades");
  if (*type == "signature")
    out.type = SignatureType::signature;
  else if (*type == "cms")
    out.type = SignatureType::cms;
  else if (*type == "cms-pades")
    out.type = SignatureType::cms_pades;
  else
    return unsupported("'signatureType' must be signature, cms or cms-pades");

  if (const Json* hash = member(body, "hashAlgorithm")) {
    if (!hash->is_string()) return bad("'hashAlgorithm' must be a string");
    auto parsed = hash_named(to_std(hash->get_ref<const WipingString&>()));
    if (!parsed) return unsupported("'hashAlgorithm' must be SHA256, SHA384 or SHA512");
    out.hash = *parsed;
  }

  const Json* content_type = member(body, "contentType");
  if (content_type == nullptr || !content_type->is_string()) return bad("'contentType' must be data or digest");
  if (*content_type == "data")
    out.content_type = ContentType::data;
  else if (*content_type == "digest")
    out.content_type = ContentType::digest;
  else
    return unsupported("'contentType' must be data or digest");

  const Json* content = member(body, "content");
  if (content == nullptr || !content->is_string()) return bad("'content' must be base64 text");
  auto bytes = base64_decode(std::string_view(content->get_ref<const WipingString&>()));
  if (!bytes) return bad("'content' is not base64");
  out.content = std::move(*bytes);
  if (out.content_type == ContentType::digest && out.content.size() != digest_size(out.hash))
    return bad("'content' must be a " + std::to_string(digest_size(out.hash)) + "-byte " +
               std::string(kortti::name_of(out.hash)) + " digest, not " + std::to_string(out.content.size()) +
               " bytes");
  if (out.content_type == ContentType::data && out.content.empty()) return bad("'content' is empty");
  if (out.type == SignatureType::cms_pades && out.content_type != ContentType::digest)
    return bad("cms-pades signs a document's digest: 'contentType' must be digest");

  if (const Json* selector = member(body, "selector"))
    if (auto refused = parse_selector(*selector, out.selector)) return *refused;
  return out;
}

std::optional<Refusal> check_authentication_use(const SignRequest& request, std::string_view origin) {
  if (request.selector.purpose != pkcs11::Purpose::authentication) return std::nullopt;
  if (request.type != SignatureType::signature)
    return Refusal{403, Reason::authentication_rule, "the authentication key makes raw signatures only"};
  if (request.content_type != ContentType::data)
    return Refusal{403, Reason::authentication_rule, "the authentication key signs data, never a digest"};
  const std::string prefix = std::string(origin) + "\n";
  const std::string_view head(reinterpret_cast<const char*>(request.content.data()),
                              std::min(request.content.size(), prefix.size()));
  if (head != prefix)
    return Refusal{403, Reason::authentication_rule,
                   "for the authentication key the data must begin with the page's origin and a newline"};
  return std::nullopt;
}

bool same_name(std::string_view a, std::string_view b) {
  const auto left = name_parts(a);
  return !left.empty() && left == name_parts(b);
}

std::optional<pkcs11::CertificateInfo> select_certificate(const std::vector<pkcs11::CertificateInfo>& certificates,
                                                          const Selector& selector) {
  for (const auto& cert : certificates) {
    if (!pkcs11::serves_only(cert, selector.purpose)) continue;
    if (!selector.key_types.empty() &&
        std::find(selector.key_types.begin(), selector.key_types.end(), cert.key_type) == selector.key_types.end())
      continue;
    if (!selector.issuers.empty() && std::none_of(selector.issuers.begin(), selector.issuers.end(),
                                                  [&](const std::string& i) { return same_name(i, cert.issuer); }))
      continue;
    return cert;
  }
  return std::nullopt;
}

std::string signature_algorithm(DigestAlgorithm hash, KeyType key, pkcs11::Scheme scheme) {
  std::string name(kortti::name_of(hash));
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (key == KeyType::ec) return name + "withECDSA";
  return name + (scheme == pkcs11::Scheme::pss ? "withRSAandMGF1" : "withRSA");
}

std::string_view name_of(SignatureType type) noexcept {
  switch (type) {
    case SignatureType::signature:
      return "signature";
    case SignatureType::cms:
      return "cms";
    case SignatureType::cms_pades:
      return "cms-pades";
  }
  return "signature";
}

Json version_document() {
  return {{"version", "1.1"},
          {"httpMethods", "GET, POST"},
          {"contentTypes", "data, digest"},
          {"signatureTypes", "signature,cms,cms-pades"},
          {"selectorAvailable", true},
          {"hashAlgorithms", "SHA256, SHA384, SHA512"}};
}

bool RateLimit::allow(const std::string& origin, std::chrono::steady_clock::time_point now) {
  const auto window_start = now - std::chrono::minutes(1);
  for (auto it = seen_.begin(); it != seen_.end();) {
    auto& times = it->second;
    times.erase(times.begin(), std::find_if(times.begin(), times.end(), [&](auto t) { return t > window_start; }));
    it = times.empty() ? seen_.erase(it) : std::next(it);
  }
  auto& times = seen_[origin];
  if (static_cast<int>(times.size()) >= per_minute_) return false;
  times.push_back(now);
  return true;
}

}  // namespace kortti::scs
