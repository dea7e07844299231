#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <filesystem>

#include "policy/revocation.hpp"

namespace kortti::policy {

namespace {

constexpr std::string_view kFileScheme = "file://";
constexpr std::size_t kMaxCrlBytes = 10 * 1024 * 1024;

X509CrlPtr parse_crl(BIO* bio) {
  X509CrlPtr crl(PEM_read_bio_X509_CRL(bio, nullptr, nullptr, nullptr));
  if (!crl) {
    ERR_clear_error();
    BIO_reset(bio);
    crl.reset(d2i_X509_CRL_bio(bio, nullptr));
  }
  ERR_clear_error();
  return crl;
}

std::vector<std::string> distribution_points(X509* cert) {
  std::vector<std::string> out;
  const CrlDistPointsPtr points(
      static_cast<CRL_DIST_POINTS*>(X509_get_ext_d2i(cert, NID_crl_distribution_points, nullptr, nullptr)));
  if (!points) return out;
  for (int i = 0; i < sk_DIST_POINT_num(points.get()); ++i) {
    const DIST_POINT* dp = sk_DIST_POINT_value(points.get(), i);
    if (dp->distpoint == nullptr || dp->distpoint->type != 0) continue;
    const GENERAL_NAMES* names = dp->distpoint->name.fullname;
    for (int j = 0; j < sk_GENERAL_NAME_num(names); ++j) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, j);
      if (gn->type != GEN_URI) continue;
      const ASN1_IA5STRING* uri = gn->d.uniformResourceIdentifier;
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                       static_cast<std::size_t>(ASN1_STRING_length(uri)));
    }
  }
  return out;
}

std::string reason_of(const X509_REVOKED* revoked) {
  const Asn1EnumeratedPtr code(
      static_cast<ASN1_ENUMERATED*>(X509_REVOKED_get_ext_d2i(revoked, NID_crl_reason, nullptr, nullptr)));
  if (!code) return {};
  return OCSP_crl_reason_str(ASN1_ENUMERATED_get(code.get()));
}

X509CrlPtr read_crl_file(const std::string& path, const std::string& source, std::string& why_not) {
  X509CrlPtr crl;
  BioPtr bio(BIO_new_file(path.c_str(), "rb"));
  if (bio) crl = parse_crl(bio.get());
  ERR_clear_error();
  if (!crl) why_not = "no CRL could be read from " + source;
  return crl;
}

// RFC 5280 serves CRLs over HTTP as DER. Asking OpenSSL for ASN.1 makes it
// read the whole body itself, under the timeout, which then bounds the
// whole download (connect, request, every byte of the answer): a host that
// trickles is cut off like one that never answers.
X509CrlPtr download_crl(const std::string& url, std::chrono::seconds timeout, std::string& why_not) {
  X509CrlPtr crl;
  BioPtr body(OSSL_HTTP_get(url.c_str(), nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, nullptr, nullptr, 1,
                            kMaxCrlBytes, static_cast<int>(timeout.count())));
  if (body) {
    crl.reset(d2i_X509_CRL_bio(body.get(), nullptr));
    if (!crl) why_not = "what " + url + " sent is not a DER CRL";
  } else {
    why_not = "no CRL could be downloaded from " + url + " within " + std::to_string(timeout.count()) +
              " s: " + openssl_error("no answer");
  }
  ERR_clear_error();
  return crl;
}

bool is_file_source(const std::string& source) {
  return source.rfind(kFileScheme, 0) == 0 || source.find("://") == std::string::npos;
}

}  // namespace

void CrlClient::remember_failed(const std::string& source, const std::string& why, SystemTime now) {
  if (is_file_source(source) || options_.crl_retry_after.count() <= 0) return;
  make_room(failed_, kMaxFailed, now, [](const Failed& f) { return f.until; });
  failed_[source] = {why, now + options_.crl_retry_after};
}

void CrlClient::reject(const std::string& source, const std::string& why, SystemTime now) {
  std::lock_guard lock(mutex_);
  cache_.erase(source);
  remember_failed(source, why, now);
}

X509CrlPtr CrlClient::load(const std::string& source, SystemTime now, bool& cached, std::string& why_not) {
  const bool is_file = is_file_source(source);
  const std::string path = source.rfind(kFileScheme, 0) == 0 ? source.substr(kFileScheme.size()) : source;
  // Files are read again when they change (their mtime is the version);
  // URLs are kept until nextUpdate.
  std::string version;
  if (is_file) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      why_not = "no CRL file " + path;
      return nullptr;
    }
    version = std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
  }
  {
    std::lock_guard lock(mutex_);
    if (auto it = cache_.find(source); it != cache_.end() && it->second.version == version && now < it->second.until) {
      cached = true;
      return X509CrlPtr(X509_CRL_dup(it->second.crl.get()));
    }
    // Checks run one after another on the policy thread: a host that failed
    // a moment ago would make each of them wait out the timeout again.
    if (auto it = failed_.find(source); it != failed_.end()) {
      if (now < it->second.until) {
        why_not = it->second.why + "; not tried again before " + to_rfc3339(it->second.until);
        return nullptr;
      }
      failed_.erase(it);
    }
  }
  X509CrlPtr crl = is_file ? read_crl_file(path, source, why_not) : download_crl(source, options_.timeout, why_not);
  if (!crl) {
    std::lock_guard lock(mutex_);
    remember_failed(source, why_not, now);
    return nullptr;
  }
  const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl.get());
  SystemTime until = next != nullptr ? to_system_time(next) : now + options_.max_cache;
  // A host still serving a CRL past its nextUpdate is not asked again at
  // every check either.
  if (!is_file && until <= now) until = now + options_.crl_retry_after;
  std::lock_guard lock(mutex_);
  // One entry a source: a file's earlier contents go with it.
  cache_.erase(source);
  make_room(cache_, kMaxCrls, now, [](const Cached& c) { return c.until; });
  cache_[source] = {X509CrlPtr(X509_CRL_dup(crl.get())), until, std::move(version)};
  cached = false;
  return crl;
}

std::size_t CrlClient::cached() {
  std::lock_guard lock(mutex_);
  return cache_.size();
}

std::optional<Answer> CrlClient::check(X509* leaf, X509* issuer, SystemTime now, std::chrono::seconds skew,
                                       std::string& why_not) {
  std::vector<std::string> sources = options_.crl_files;
  if (options_.crl_fetch)
    for (auto& dp : distribution_points(leaf)) sources.push_back(dp);
  if (sources.empty()) {
    why_not = "no CRL configured and none named by the certificate";
    return std::nullopt;
  }
  EVP_PKEY* issuer_key = X509_get0_pubkey(issuer);
  for (const auto& source : sources) {
    bool cached = false;
    std::string why;
    X509CrlPtr crl = load(source, now, cached, why);
    if (!crl) {
      why_not = why;
      continue;
    }
    // Only a CRL of this issuer, signed by it and current, may decide.
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(issuer)) != 0) continue;
    if (X509_CRL_verify(crl.get(), issuer_key) != 1) {
      ERR_clear_error();
      why_not = "the CRL from " + source + " does not verify with its issuer's key";
      reject(source, why_not, now);
      continue;
    }
    const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl.get());
    if (next != nullptr && to_system_time(next) + skew < now) {
      why_not = "the CRL from " + source + " is past its nextUpdate";
      continue;
    }
    Answer a;
    a.source = source;
    a.cached = cached;
    X509_REVOKED* revoked = nullptr;
    if (X509_CRL_get0_by_cert(crl.get(), &revoked, leaf) == 1) {
      a.status = "revoked";
      a.revoked_at = to_system_time(X509_REVOKED_get0_revocationDate(revoked));
      a.reason = reason_of(revoked);
    } else {
      a.status = "good";
    }
    return a;
  }
  if (why_not.empty()) why_not = "no CRL of the issuer was found";
  return std::nullopt;
}

std::vector<X509Ptr> load_certificates(const std::string& folder) {
  std::vector<X509Ptr> out;
  if (folder.empty()) return out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    if (!entry.is_regular_file()) continue;
    BioPtr bio(BIO_new_file(entry.path().c_str(), "r"));
    if (!bio) continue;
    while (X509Ptr cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) out.push_back(std::move(cert));
    ERR_clear_error();
  }
  return out;
}

}  // namespace kortti::policy
