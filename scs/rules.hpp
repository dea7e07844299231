#pragma once

// Internal to scs/ (docs/architecture.md, Layering); include scs/scs.hpp.
#if !defined(KORTTI_COMPONENT_SCS) && !defined(KORTTI_WHITE_BOX)
#error "scs/rules.hpp is internal to scs/; include scs/scs.hpp"
#endif

// What the SCS interface decides without a socket or a card: which requests
// pass its defences, what a /sign request asks for, which certificate
// answers a selector, and how the answer names things. Pure functions, so
// every rule has a unit test (tests/unit/scs_rules_test.cpp).

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "common/json.hpp"
#include "pkcs11/pkcs11.hpp"

namespace kortti::scs {

// The reasonCode of a refused request. DVV does not publish SCS's values:
// these are kortti's (docs/browsers.md lists them).
enum class Reason : int {
  ok = 0,
  bad_request = 100,          // not JSON, a field missing or of the wrong kind
  unsupported = 101,          // a signatureType, hashAlgorithm, contentType or version not offered
  origin_not_allowed = 102,   // no Origin on /sign, or one not in allowed_origins
  host_not_allowed = 103,     // Host is not localhost, 127.0.0.1 or [::1] with the port
  content_type = 104,         // /sign without Content-Type: application/json
  too_large = 105,            // the body passes max_body_bytes
  rate_limited = 106,         // the origin asked too often
  authentication_rule = 107,  // the authentication key: a digest, or data not starting with the origin
  not_found = 108,            // no such path, or a method the path does not take
  busy = 109,                 // as many signatures as allowed are waiting already
  no_certificate = 200,       // no card, or no certificate the selector accepts
  cancelled = 201,            // the user cancelled the PIN dialog, or let it time out
  pin = 202,                  // a wrong or locked PIN
  certificate_invalid = 203,  // the certificate did not pass validation or the policy
  card_error = 204,           // the card was pulled, busy, or failed
  internal = 205,             // korttid's own failure (the log has a correlation id)
};

struct Refusal {
  int http_status = 400;
  Reason reason = Reason::bad_request;
  std::string text;
};

// --- the request's headers ---

// The Host header is one of localhost, 127.0.0.1 or [::1] with the
// listener's port: a DNS-rebound name (evil.example resolving to 127.0.0.1)
// never is.
[[nodiscard]] bool host_allowed(std::string_view host, std::uint16_t port);

// Content-Type is application/json, with parameters (charset) or without.
[[nodiscard]] bool is_json_content_type(std::string_view content_type);

// --- /sign ---

enum class SignatureType { signature, cms, cms_pades };
enum class ContentType { data, digest };

struct Selector {
  pkcs11::Purpose purpose = pkcs11::Purpose::signature;  // keyusages: nonrepudiation (default) or digitalsignature
  std::vector<KeyType> key_types;                        // keyalgorithms; empty: any
  std::vector<std::string> issuers;                      // issuers' DNs; empty: any
};

struct SignRequest {
  SignatureType type = SignatureType::signature;
  DigestAlgorithm hash = DigestAlgorithm::sha256;
  ContentType content_type = ContentType::data;
  Bytes content;  // the data, or its digest
  Selector selector;
};

// The request's body, or a Refusal (400 bad_request, 400 unsupported).
// A digest must be as long as its hash algorithm says.
[[nodiscard]] std::variant<SignRequest, Refusal> parse_sign_request(const Json& body);

// The authentication key signs only what names the page that asks: data
// that begins with the origin and a newline, as a raw signature. Anything
// else would make it a signing oracle for logins elsewhere.
[[nodiscard]] std::optional<Refusal> check_authentication_use(const SignRequest& request, std::string_view origin);

// Two distinguished names are the same: the same attribute=value parts, in
// any order and either spelling of the separators, case aside.
[[nodiscard]] bool same_name(std::string_view a, std::string_view b);

// The first certificate (in korttid's token order) the selector accepts. A
// signature key that is also an authentication key is never chosen for
// nonrepudiation, nor the other way round: each key does one job.
[[nodiscard]] std::optional<pkcs11::CertificateInfo> select_certificate(
    const std::vector<pkcs11::CertificateInfo>& certificates, const Selector& selector);

// "SHA256withRSA", "SHA384withECDSA", "SHA256withRSAandMGF1".
[[nodiscard]] std::string signature_algorithm(DigestAlgorithm hash, KeyType key, pkcs11::Scheme scheme);
[[nodiscard]] std::string_view name_of(SignatureType type) noexcept;

// GET /version's answer.
[[nodiscard]] Json version_document();

// --- rate ---

// At most `per_minute` signatures per origin in any sliding minute.
class RateLimit {
 public:
  explicit RateLimit(int per_minute) : per_minute_(per_minute) {}
  // Counts the request when it is allowed.
  [[nodiscard]] bool allow(const std::string& origin, std::chrono::steady_clock::time_point now);

 private:
  int per_minute_;
  std::map<std::string, std::vector<std::chrono::steady_clock::time_point>> seen_;
};

}  // namespace kortti::scs
