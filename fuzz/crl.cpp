// CRLs: CrlClient::check with the input as the configured CRL file (PEM or
// DER, as korttid reads [revocation] crl_files), for the test PKI's
// physician and revoked certificates.
//
// A mutated CRL rarely keeps a valid signature, and then check() stops at the
// signature. So the first byte's low bit asks the harness to re-sign what
// OpenSSL parses from the rest with the issuer's (test) key first: the fuzzer
// then reaches what korttid does with a CRL it trusts (the issuer match,
// nextUpdate, the entry, its reason). The second bit picks the certificate.

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>

#include "common/openssl.hpp"
#include "fuzz/support.hpp"
#include "policy/revocation.hpp"

namespace {

using namespace kortti;

struct Pki {
  X509Ptr leaf, revoked, issuer;
  EvpPkeyPtr issuer_key;
};

X509Ptr certificate(const char* name) {
  const Bytes der = fuzz::data_file(name);
  const unsigned char* p = der.data();
  return X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

const Pki& pki() {
  static const Pki p = [] {
    Pki x{certificate("leaf.der"), certificate("revoked.der"), certificate("issuer.der"), nullptr};
    const Bytes key = fuzz::data_file("issuer.key.der");
    const unsigned char* k = key.data();
    x.issuer_key.reset(d2i_AutoPrivateKey(nullptr, &k, static_cast<long>(key.size())));
    if (!x.leaf || !x.revoked || !x.issuer || !x.issuer_key) std::abort();
    return x;
  }();
  return p;
}

// The input re-signed by the issuer, or nothing when OpenSSL cannot read it.
std::optional<Bytes> resigned(const std::uint8_t* data, std::size_t size) {
  BioPtr bio(BIO_new_mem_buf(data, static_cast<int>(size)));
  X509CrlPtr crl(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr));
  if (!crl) {
    const unsigned char* p = data;
    crl.reset(d2i_X509_CRL(nullptr, &p, static_cast<long>(size)));
  }
  ERR_clear_error();
  if (!crl || X509_CRL_sign(crl.get(), pki().issuer_key.get(), EVP_sha256()) <= 0) {
    ERR_clear_error();
    return std::nullopt;
  }
  unsigned char* der = nullptr;
  const int n = i2d_X509_CRL(crl.get(), &der);
  const OpensslBytes owned(der);
  if (n <= 0) return std::nullopt;
  return Bytes(der, der + n);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  ++data;
  --size;
  std::optional<Bytes> signed_again;
  if (mode & 1) {
    signed_again = resigned(data, size);
    if (!signed_again) return 0;
    data = signed_again->data();
    size = signed_again->size();
  }
  const fuzz::MemoryFile file(data, size);
  // A fresh client per input: its cache is keyed by the file's mtime.
  policy::RevocationOptions options;
  options.crl_files = {file.path()};
  options.crl_fetch = false;
  policy::CrlClient client(options);
  X509* leaf = (mode & 2) ? pki().revoked.get() : pki().leaf.get();
  // A fixed "now" inside the test CRL's validity keeps runs reproducible.
  const SystemTime now = std::chrono::system_clock::from_time_t(1796169600);  // 2026-12-02T00:00:00Z
  // Asked twice: the second answer comes from what the first kept (the
  // CRL, its verdict, the key that verified it) and must be the same.
  try {
    std::string why_first, why_kept;
    const auto first = client.check(leaf, pki().issuer.get(), now, std::chrono::seconds(300), why_first);
    const auto kept = client.check(leaf, pki().issuer.get(), now, std::chrono::seconds(300), why_kept);
    const auto status = [](const std::optional<policy::Answer>& a) { return a ? a->status : std::string(); };
    if (status(first) != status(kept) || why_first != why_kept) {
      std::fprintf(stderr, "crl: the kept CRL answered \"%s\" (%s), the first check \"%s\" (%s)\n",
                   status(kept).c_str(), why_kept.c_str(), status(first).c_str(), why_first.c_str());
      std::abort();
    }
  } catch (const std::exception& e) {
    fuzz::unexpected_exception("crl", e);
  }
  ERR_clear_error();
  return 0;
}
