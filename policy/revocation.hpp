#pragma once

// Internal to policy/ (docs/architecture.md, Layering); include policy/policy.hpp.
#if !defined(KORTTI_COMPONENT_POLICY) && !defined(KORTTI_WHITE_BOX)
#error "policy/revocation.hpp is internal to policy/; include policy/policy.hpp"
#endif

// OCSP and CRL clients of the Validator: each answers "good", "revoked" or
// "unknown" for one certificate, or nothing (with why) when it cannot.

#include <openssl/x509.h>

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/openssl.hpp"
#include "policy/policy.hpp"

namespace kortti::policy {

struct Answer {
  std::string status;  // good, revoked, unknown
  std::optional<SystemTime> revoked_at;
  std::string reason;
  std::string source;
  bool cached = false;
};

// Loads every certificate in the PEM files of a folder (a missing or empty
// path gives none).
std::vector<X509Ptr> load_certificates(const std::string& folder);

class OcspClient {
 public:
  explicit OcspClient(const RevocationOptions& options) : options_(options) {}
  // `store` verifies the responder's signature; `untrusted` helps build its chain.
  std::optional<Answer> query(X509* leaf, X509* issuer, const std::string& url, X509_STORE* store,
                              STACK_OF(X509) * untrusted, SystemTime now, std::chrono::seconds skew,
                              std::string& why_not);

 private:
  const RevocationOptions& options_;
  std::mutex mutex_;
  struct Cached {
    Answer answer;
    SystemTime until;
  };
  std::map<std::string, Cached> cache_;  // by CertID
  // A responder that did not answer is not asked again for a while: every
  // check would otherwise wait out the full timeout.
  std::map<std::string, SystemTime> down_until_;  // by URL
};

class CrlClient {
 public:
  explicit CrlClient(const RevocationOptions& options) : options_(options) {}
  // Looks through the configured files and the certificate's distribution
  // points for a CRL of `issuer`, signed by it and current.
  std::optional<Answer> check(X509* leaf, X509* issuer, SystemTime now, std::chrono::seconds skew,
                              std::string& why_not);

 private:
  X509CrlPtr load(const std::string& source, SystemTime now, bool& cached, std::string& why_not);

  const RevocationOptions& options_;
  std::mutex mutex_;
  struct Cached {
    X509CrlPtr crl;
    SystemTime until;
  };
  std::map<std::string, Cached> cache_;  // by URL
  struct Failed {
    std::string why;
    SystemTime until;
  };
  std::map<std::string, Failed> failed_;  // by URL: downloads that gave no CRL
};

SystemTime to_system_time(const ASN1_TIME* t);

}  // namespace kortti::policy
