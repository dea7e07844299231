// Token: the certificates on the card, read once per insertion, and the
// private key behind each.

#include "pkcs11/token.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "common/encoding.hpp"
#include "common/openssl.hpp"
#include "pkcs11/certificate.hpp"

namespace kortti::pkcs11 {

namespace {

// Issuers of `leaf` among `pool`, nearest first, stopping at a self-signed one.
std::vector<Bytes> chain_of(const Bytes& leaf, const std::vector<Bytes>& pool) {
  std::vector<Bytes> chain;
  X509Ptr current = parse_certificate(leaf);
  for (int depth = 0; current && depth < 8; ++depth) {
    if (X509_check_issued(current.get(), current.get()) == X509_V_OK) break;
    X509Ptr next;
    for (const Bytes& candidate : pool) {
      if (candidate == leaf) continue;
      X509Ptr c = parse_certificate(candidate);
      if (c && X509_check_issued(c.get(), current.get()) == X509_V_OK) {
        next = std::move(c);
        chain.push_back(candidate);
        break;
      }
    }
    current = std::move(next);
  }
  return chain;
}

}  // namespace

std::vector<CertificateInfo> Token::certificates() {
  if (certificates_) return *certificates_;
  Session& s = work();
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  CK_CERTIFICATE_TYPE type = CKC_X_509;
  const auto handles = s.find({{CKA_CLASS, &cls, sizeof cls}, {CKA_CERTIFICATE_TYPE, &type, sizeof type}});
  std::vector<CertificateInfo> out;
  // Every certificate object may be an issuer, listed or not (a CA whose key
  // korttid cannot sign with is still a link of a chain).
  std::vector<Bytes> pool;
  std::map<std::string, int> seen;
  for (CK_OBJECT_HANDLE h : handles) {
    CertificateInfo c;
    c.token_id = id_;
    c.der = s.bytes(h, CKA_VALUE);
    if (c.der.empty()) continue;
    pool.push_back(c.der);
    const Bytes ck_id = s.bytes(h, CKA_ID);
    const Bytes label = s.bytes(h, CKA_LABEL);
    c.label.assign(label.begin(), label.end());
    std::string local = ck_id.empty() ? "noid" : hex_encode(ck_id);
    if (const int n = seen[local]++; n > 0) local += "-" + std::to_string(n + 1);
    c.cert_id = id_ + "/" + local;
    try {
      describe_certificate(c);
    } catch (const Error& e) {
      spdlog::warn("token {}: skipping certificate object '{}': {}", id_, c.label, e.what());
      continue;
    }
    key_ids_[c.cert_id] = ck_id;
    out.push_back(std::move(c));
  }
  for (auto& c : out) c.chain = chain_of(c.der, pool);
  // In the order of their ids, not the module's (SoftHSM2's changes from
  // one start to the next): a client, or a front end that takes the first
  // of a purpose, sees the same list every time.
  std::stable_sort(out.begin(), out.end(),
                   [](const CertificateInfo& a, const CertificateInfo& b) { return a.cert_id < b.cert_id; });
  certificates_ = out;
  std::lock_guard lock(mutex_);
  published_certificates_ = std::make_shared<const std::vector<CertificateInfo>>(out);
  return out;
}

const CertificateInfo& Token::find_certificate(std::string_view cert_id) {
  if (!certificates_) certificates();
  for (const auto& c : *certificates_)
    if (c.cert_id == cert_id) return c;
  throw certificate_not_found(cert_id);
}

Error certificate_not_found(std::string_view cert_id) {
  return Error(Errc::not_found, "no certificate '" + std::string(cert_id) + "' on this card");
}

CertificateInfo Token::certificate(std::string_view cert_id) { return find_certificate(cert_id); }

Token::Key Token::private_key(const std::string& cert_id) {
  if (auto it = keys_.find(cert_id); it != keys_.end()) return it->second;
  // 1003 for an id the card's list lacks; reads the list, and with it
  // key_ids_, when it has not been read.
  (void)find_certificate(cert_id);
  Session& s = work();
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  Bytes ck_id = key_ids_.at(cert_id);
  const auto found = s.find({{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, ck_id.data(), ck_id.size()}}, 2);
  if (found.empty()) throw Error(Errc::not_found, "the card has no private key for certificate '" + cert_id + "'");
  Key key{found.front(), s.boolean(found.front(), CKA_ALWAYS_AUTHENTICATE).value_or(false)};
  keys_[cert_id] = key;
  return key;
}

}  // namespace kortti::pkcs11
