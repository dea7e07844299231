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

// The URIs and other names of a distribution point's full name.
const GENERAL_NAMES* full_name(const DIST_POINT_NAME* name) {
  return name != nullptr && name->type == 0 ? name->name.fullname : nullptr;
}

bool share_a_name(const GENERAL_NAMES* a, const GENERAL_NAMES* b) {
  for (int i = 0; i < sk_GENERAL_NAME_num(a); ++i)
    for (int j = 0; j < sk_GENERAL_NAME_num(b); ++j)
      if (GENERAL_NAME_cmp(sk_GENERAL_NAME_value(a, i), sk_GENERAL_NAME_value(b, j)) == 0) return true;
  return false;
}

// OpenSSL 3.0 takes the extension as non-const, though it only reads it.
const ASN1_OBJECT* object_of(const X509_EXTENSION* e) {
  return X509_EXTENSION_get_object(const_cast<X509_EXTENSION*>(e));
}

std::string oid_of(const X509_EXTENSION* e) {
  char text[128];
  OBJ_obj2txt(text, sizeof text, object_of(e), 1);
  return text;
}

// Why nothing of `crl` may be taken at all, whoever it is asked about
// (RFC 5280 5.2, 5.3): a delta CRL lists only what changed since its base,
// an indirect one speaks for other issuers, and an extension korttid does
// not know that is marked critical changes what the list means. Empty if
// none of these.
std::string unusable(const X509_CRL* crl) {
  for (int i = 0; i < X509_CRL_get_ext_count(crl); ++i) {
    const X509_EXTENSION* e = X509_CRL_get_ext(crl, i);
    const int nid = OBJ_obj2nid(object_of(e));
    if (nid == NID_delta_crl) return "is a delta CRL, which lists only what changed since a base CRL";
    const bool known = nid == NID_issuing_distribution_point || nid == NID_authority_key_identifier ||
                       nid == NID_crl_number || nid == NID_freshest_crl;
    if (!known && X509_EXTENSION_get_critical(e) != 0)
      return "has a critical extension korttid does not know (" + oid_of(e) + ")";
  }
  const STACK_OF(X509_REVOKED)* entries = X509_CRL_get_REVOKED(const_cast<X509_CRL*>(crl));
  for (int i = 0; i < sk_X509_REVOKED_num(entries); ++i) {
    const STACK_OF(X509_EXTENSION)* exts = X509_REVOKED_get0_extensions(sk_X509_REVOKED_value(entries, i));
    for (int j = 0; j < sk_X509_EXTENSION_num(exts); ++j) {
      const X509_EXTENSION* e = sk_X509_EXTENSION_value(exts, j);
      const int nid = OBJ_obj2nid(object_of(e));
      if (nid == NID_certificate_issuer) return "is an indirect CRL (its entries name other issuers)";
      const bool known = nid == NID_crl_reason || nid == NID_invalidity_date || nid == NID_hold_instruction_code;
      if (!known && X509_EXTENSION_get_critical(e) != 0)
        return "has an entry with a critical extension korttid does not know (" + oid_of(e) + ")";
    }
  }
  return {};
}

// Why `crl` does not cover `leaf` (RFC 5280 6.3.3 b), or empty. A CRL of
// some revocation reasons only sets `partial`: a "revoked" from it
// stands, its silence does not say "good".
std::string not_covering(const X509_CRL* crl, X509* leaf, bool& partial) {
  int critical = -1;
  const Owned<ISSUING_DIST_POINT, ISSUING_DIST_POINT_free> idp(
      static_cast<ISSUING_DIST_POINT*>(X509_CRL_get_ext_d2i(crl, NID_issuing_distribution_point, &critical, nullptr)));
  if (!idp) {
    // Absent (-1) is a complete CRL of the issuer; anything else is one
    // that cannot be read.
    ERR_clear_error();
    return critical == -1 ? std::string() : "has an issuingDistributionPoint that cannot be read";
  }
  if (idp->indirectCRL > 0) return "is an indirect CRL (its entries name other issuers)";
  if (idp->onlyattr > 0) return "lists attribute certificates only";
  // RFC 5280's test: basicConstraints with cA set.
  const bool ca = (X509_get_extension_flags(leaf) & EXFLAG_CA) != 0;
  if (idp->onlyCA > 0 && !ca) return "lists CA certificates only";
  if (idp->onlyuser > 0 && ca) return "lists end-entity certificates only";
  if (idp->distpoint != nullptr) {
    // A partitioned CRL: its name must be one the certificate names.
    const GENERAL_NAMES* scope = full_name(idp->distpoint);
    if (scope == nullptr) return "names its scope relative to its issuer, which korttid does not match";
    const CrlDistPointsPtr points(
        static_cast<CRL_DIST_POINTS*>(X509_get_ext_d2i(leaf, NID_crl_distribution_points, nullptr, nullptr)));
    bool named = false;
    for (int i = 0; points && i < sk_DIST_POINT_num(points.get()) && !named; ++i) {
      const GENERAL_NAMES* names = full_name(sk_DIST_POINT_value(points.get(), i)->distpoint);
      named = names != nullptr && share_a_name(names, scope);
    }
    ERR_clear_error();
    if (!named) return "covers a distribution point the certificate does not name";
  }
  partial = idp->onlysomereasons != nullptr;
  return {};
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

// RFC 5280 serves CRLs over HTTP as DER. Asking for ASN.1 makes OpenSSL
// read the whole body itself, under the timeout, which then bounds the
// whole download (the name's lookup, connect, request, every byte of the
// answer): a host that trickles is cut off like one that never answers.
X509CrlPtr download_crl(const std::string& url, std::chrono::seconds timeout, std::string& why_not) {
  X509CrlPtr crl;
  std::string why;
  BioPtr body = http_exchange(url, HttpRequest{nullptr, nullptr, nullptr, nullptr, kMaxCrlBytes}, timeout, why);
  if (body) {
    crl.reset(d2i_X509_CRL_bio(body.get(), nullptr));
    if (!crl) why_not = "what " + url + " sent is not a DER CRL";
  } else {
    why_not = "no CRL could be downloaded from " + url + " within " + std::to_string(timeout.count()) + " s: " + why;
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

std::shared_ptr<CrlClient::Loaded> CrlClient::load(const std::string& source, SystemTime now, bool& cached,
                                                   std::string& why_not) {
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
      return it->second.crl;
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
  auto loaded = std::make_shared<Loaded>();
  loaded->unusable = unusable(crl.get());
  // OpenSSL sorts a CRL's entries at its first lookup: done here, before
  // the CRL is shared, every later lookup only reads it.
  X509_REVOKED* none = nullptr;
  const Asn1IntegerPtr zero(ASN1_INTEGER_new());
  if (zero) (void)X509_CRL_get0_by_serial(crl.get(), &none, zero.get());
  ERR_clear_error();
  loaded->crl = std::move(crl);
  std::lock_guard lock(mutex_);
  // One entry a source: a file's earlier contents go with it.
  cache_.erase(source);
  make_room(cache_, kMaxCrls, now, [](const Cached& c) { return c.until; });
  cache_[source] = {loaded, until, std::move(version)};
  cached = false;
  return loaded;
}

bool CrlClient::verifies(Loaded& loaded, X509* issuer) {
  {
    std::lock_guard lock(mutex_);
    if (loaded.verified_by && X509_cmp(loaded.verified_by.get(), issuer) == 0) return true;
  }
  if (X509_CRL_verify(loaded.crl.get(), X509_get0_pubkey(issuer)) != 1) {
    ERR_clear_error();
    return false;
  }
  X509_up_ref(issuer);
  std::lock_guard lock(mutex_);
  loaded.verified_by.reset(issuer);
  return true;
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
  for (const auto& source : sources) {
    bool cached = false;
    std::string why;
    const std::shared_ptr<Loaded> loaded = load(source, now, cached, why);
    if (!loaded) {
      why_not = why;
      continue;
    }
    X509_CRL* crl = loaded->crl.get();
    // Only a CRL of this issuer, signed by it, current, and covering the
    // certificate may decide.
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) != 0) continue;
    if ((X509_get_extension_flags(issuer) & EXFLAG_KUSAGE) != 0 && (X509_get_key_usage(issuer) & KU_CRL_SIGN) == 0) {
      why_not = "the CRL from " + source + " is signed by a CA whose certificate does not allow signing CRLs";
      continue;
    }
    if (!verifies(*loaded, issuer)) {
      why_not = "the CRL from " + source + " does not verify with its issuer's key";
      reject(source, why_not, now);
      continue;
    }
    const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl);
    if (next != nullptr && to_system_time(next) + skew < now) {
      why_not = "the CRL from " + source + " is past its nextUpdate";
      continue;
    }
    if (to_system_time(X509_CRL_get0_lastUpdate(crl)) > now + skew) {
      why_not = "the CRL from " + source + " is dated in the future (thisUpdate)";
      continue;
    }
    bool partial = false;
    why = loaded->unusable;
    if (why.empty()) why = not_covering(crl, leaf, partial);
    if (!why.empty()) {
      why_not = "the CRL from " + source + " " + why;
      continue;
    }
    Answer a;
    a.source = source;
    a.cached = cached;
    X509_REVOKED* revoked = nullptr;
    if (X509_CRL_get0_by_cert(crl, &revoked, leaf) == 1) {
      a.status = "revoked";
      a.revoked_at = to_system_time(X509_REVOKED_get0_revocationDate(revoked));
      a.reason = reason_of(revoked);
    } else if (partial) {
      why_not = "the CRL from " + source + " covers some revocation reasons only, and does not list the certificate";
      continue;
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
