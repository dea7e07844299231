#pragma once

// Internal to policy/ (docs/architecture.md, Layering); include policy/policy.hpp.
#if !defined(KORTTI_COMPONENT_POLICY) && !defined(KORTTI_WHITE_BOX)
#error "policy/revocation.hpp is internal to policy/; include policy/policy.hpp"
#endif

// OCSP and CRL clients of the Validator: each answers "good", "revoked" or
// "unknown" for one certificate, or nothing (with why) when it cannot.

#include <openssl/x509.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
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

// Makes room for one more entry in a cache of `most` entries: those whose
// `until` has passed go, then, while it is still full, the one that would
// expire first. The caches are keyed by what certificates name (responders,
// distribution points, certificates), so over months without a bound they
// would only grow.
template <class Map, class Until>
void make_room(Map& map, std::size_t most, SystemTime now, Until until) {
  std::erase_if(map, [&](const auto& entry) { return until(entry.second) <= now; });
  while (!map.empty() && map.size() >= most)
    map.erase(std::min_element(map.begin(), map.end(),
                               [&](const auto& a, const auto& b) { return until(a.second) < until(b.second); }));
}

// Loads every certificate in the PEM files of a folder (a missing or empty
// path gives none).
std::vector<X509Ptr> load_certificates(const std::string& folder);

class OcspClient {
 public:
  // Answers kept, and responders remembered as down.
  static constexpr std::size_t kMaxAnswers = 16384;
  static constexpr std::size_t kMaxResponders = 256;

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
  // CRLs kept (each may be megabytes), and hosts remembered as failed.
  static constexpr std::size_t kMaxCrls = 64;
  static constexpr std::size_t kMaxFailed = 256;

  explicit CrlClient(const RevocationOptions& options) : options_(options) {}
  // Looks through the configured files and the certificate's distribution
  // points for a CRL of `issuer`, signed by it and current.
  std::optional<Answer> check(X509* leaf, X509* issuer, SystemTime now, std::chrono::seconds skew,
                              std::string& why_not);
  // The CRLs kept now.
  [[nodiscard]] std::size_t cached();

 private:
  // A CRL as read, with what does not change while it is kept: whether it
  // may decide at all, and the issuer certificate whose key verified it. A
  // CRL of 100,000 entries takes milliseconds to copy, verify or scan;
  // each is done once per CRL, not at every check.
  struct Loaded {
    X509CrlPtr crl;        // its entries sorted: lookups only read it
    std::string unusable;  // why it decides for no one (unusable()), or empty
    X509Ptr verified_by;   // guarded by mutex_
  };
  std::shared_ptr<Loaded> load(const std::string& source, SystemTime now, bool& cached, std::string& why_not);
  // Whether `issuer`'s key verifies the CRL, known after the first check.
  bool verifies(Loaded& loaded, X509* issuer);
  // A CRL of the issuer that did not verify is not kept: a download is then
  // a failed one (asked again after crl_retry_after), not a CRL that would
  // stand until its own nextUpdate.
  void reject(const std::string& source, const std::string& why, SystemTime now);
  // A download that gave no CRL is not tried again for crl_retry_after (a
  // file is read again at once). The caller holds mutex_.
  void remember_failed(const std::string& source, const std::string& why, SystemTime now);

  const RevocationOptions& options_;
  std::mutex mutex_;
  struct Cached {
    std::shared_ptr<Loaded> crl;
    SystemTime until;
    std::string version;  // a file's mtime when it was read; empty for a URL
  };
  std::map<std::string, Cached> cache_;  // by source (file or URL)
  struct Failed {
    std::string why;
    SystemTime until;
  };
  std::map<std::string, Failed> failed_;  // by URL: downloads that gave no CRL
};

SystemTime to_system_time(const ASN1_TIME* t);

// One HTTP request: a POST of `value`, DER as `item` says (a GET without
// one), its answer expected as ASN.1 of `expected_type`, at most
// `max_bytes` long.
struct HttpRequest {
  const char* content_type = nullptr;
  const ASN1_ITEM* item = nullptr;
  const ASN1_VALUE* value = nullptr;
  const char* expected_type = nullptr;
  std::size_t max_bytes = 0;
};
// The answer to `request` from the host of `url` (http://; through the
// http_proxy the environment names for it, if any; up to 5 redirects), the
// whole exchange within `timeout`: each name's lookup, the connections, the
// requests and every byte of the answer. Null with why not.
BioPtr http_exchange(const std::string& url, const HttpRequest& request, std::chrono::seconds timeout,
                     std::string& why_not);

}  // namespace kortti::policy
