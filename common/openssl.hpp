#pragma once

// Owning pointers for OpenSSL objects, and the one place that turns OpenSSL's
// error queue into a message.

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <optional>
#include <string>

#include "common/bytes.hpp"
#include "common/time.hpp"

namespace kortti {

template <auto Free>
struct OpensslDeleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};

using X509Ptr = std::unique_ptr<X509, OpensslDeleter<X509_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, OpensslDeleter<X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, OpensslDeleter<X509_STORE_CTX_free>>;
using X509CrlPtr = std::unique_ptr<X509_CRL, OpensslDeleter<X509_CRL_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, OpensslDeleter<EVP_PKEY_free>>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, OpensslDeleter<EVP_PKEY_CTX_free>>;
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, OpensslDeleter<EVP_MD_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, OpensslDeleter<BIO_free_all>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, OpensslDeleter<ECDSA_SIG_free>>;
using X509SigPtr = std::unique_ptr<X509_SIG, OpensslDeleter<X509_SIG_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, OpensslDeleter<BN_free>>;

// Drains OpenSSL's error queue of this thread into one line (or `fallback`).
std::string openssl_error(const std::string& fallback);

// DER <-> X509. parse_certificate returns null for anything that is not one
// whole DER certificate.
X509Ptr parse_certificate(ByteView der);
Bytes certificate_der(const X509* cert);

// An ECDSA signature carried as r||s (PKCS#11, XML-DSig) in the DER form
// X.509 tools and OpenSSL's verify expect; nullopt when `raw` is empty or of
// odd length.
std::optional<Bytes> ecdsa_raw_to_der(ByteView raw);

// RFC 2253 form of a name, as certificate tools print it.
std::string name_rfc2253(const X509_NAME* name);

// An ASN1_TIME (UTCTime or GeneralizedTime) as a SystemTime, saturated at
// the clock's range (9999-12-31 is a valid notAfter); nullopt if unreadable.
std::optional<SystemTime> to_system_time(const ASN1_TIME* t);

}  // namespace kortti
