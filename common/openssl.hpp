#pragma once

// Owning pointers for OpenSSL objects, and the one place that turns OpenSSL's
// error queue into a message.

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <optional>
#include <string>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "common/keys.hpp"
#include "common/owned.hpp"
#include "common/time.hpp"

namespace kortti {

namespace openssl_detail {

// Macros in OpenSSL, so not template arguments themselves.
inline void free_memory(void* p) noexcept { OPENSSL_free(p); }
inline void free_x509_stack(STACK_OF(X509) * s) noexcept { sk_X509_pop_free(s, X509_free); }
inline void free_x509_stack_only(STACK_OF(X509) * s) noexcept { sk_X509_free(s); }

}  // namespace openssl_detail

using X509Ptr = Owned<X509, X509_free>;
using X509StorePtr = Owned<X509_STORE, X509_STORE_free>;
using X509StoreCtxPtr = Owned<X509_STORE_CTX, X509_STORE_CTX_free>;
using X509CrlPtr = Owned<X509_CRL, X509_CRL_free>;
using EvpPkeyPtr = Owned<EVP_PKEY, EVP_PKEY_free>;
using EvpPkeyCtxPtr = Owned<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using EvpMdCtxPtr = Owned<EVP_MD_CTX, EVP_MD_CTX_free>;
using EvpMdPtr = Owned<EVP_MD, EVP_MD_free>;
using OsslParamPtr = Owned<OSSL_PARAM, OSSL_PARAM_free>;
using OsslLibCtxPtr = Owned<OSSL_LIB_CTX, OSSL_LIB_CTX_free>;
using OsslProviderPtr = Owned<OSSL_PROVIDER, OSSL_PROVIDER_unload>;
using X509ExtensionPtr = Owned<X509_EXTENSION, X509_EXTENSION_free>;
using BioPtr = Owned<BIO, BIO_free_all>;
using EcdsaSigPtr = Owned<ECDSA_SIG, ECDSA_SIG_free>;
using X509SigPtr = Owned<X509_SIG, X509_SIG_free>;
using BignumPtr = Owned<BIGNUM, BN_free>;
using Asn1ObjectPtr = Owned<ASN1_OBJECT, ASN1_OBJECT_free>;
using Asn1TimePtr = Owned<ASN1_TIME, ASN1_TIME_free>;
using Asn1EnumeratedPtr = Owned<ASN1_ENUMERATED, ASN1_ENUMERATED_free>;
using Asn1IntegerPtr = Owned<ASN1_INTEGER, ASN1_INTEGER_free>;
using GeneralNamesPtr = Owned<GENERAL_NAMES, GENERAL_NAMES_free>;
using CertificatePoliciesPtr = Owned<CERTIFICATEPOLICIES, CERTIFICATEPOLICIES_free>;
using CrlDistPointsPtr = Owned<CRL_DIST_POINTS, CRL_DIST_POINTS_free>;
using OcspRequestPtr = Owned<OCSP_REQUEST, OCSP_REQUEST_free>;
using OcspResponsePtr = Owned<OCSP_RESPONSE, OCSP_RESPONSE_free>;
using OcspBasicPtr = Owned<OCSP_BASICRESP, OCSP_BASICRESP_free>;
using OcspCertIdPtr = Owned<OCSP_CERTID, OCSP_CERTID_free>;
// X509_get1_email, X509_get1_ocsp: the strings and the stack.
using EmailStackPtr = Owned<STACK_OF(OPENSSL_STRING), X509_email_free>;

// A stack that owns its certificates (CMS_get1_certs, X509_STORE_CTX_get1_chain),
// and one that borrows them: a stack made to pass certificates someone else owns.
using X509StackPtr = Owned<STACK_OF(X509), openssl_detail::free_x509_stack>;
using BorrowedX509StackPtr = Owned<STACK_OF(X509), openssl_detail::free_x509_stack_only>;

// What OpenSSL allocates with OPENSSL_malloc for the caller: i2d_* output
// (with a null buffer), ASN1_STRING_to_UTF8, OSSL_HTTP_parse_url's parts.
using OpensslBytes = Owned<unsigned char, openssl_detail::free_memory>;
using OpensslString = Owned<char, openssl_detail::free_memory>;

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
// The other way, for JWS (Web eID tokens): r and s each left-padded to
// `field_bytes`; nullopt for anything that is not one DER ECDSA-Sig-Value
// whose numbers fit.
std::optional<Bytes> ecdsa_der_to_raw(ByteView der, std::size_t field_bytes);

// Whether `signature` (ECDSA in DER) is `key`'s signature over `digest` with
// `scheme` (PSS: MGF1 with the digest's hash, salt = hash length). Leaves no
// OpenSSL error behind.
bool verify_digest_signature(EVP_PKEY* key, Scheme scheme, DigestAlgorithm algorithm, ByteView digest,
                             ByteView signature);

// RFC 2253 form of a name, as certificate tools print it.
std::string name_rfc2253(const X509_NAME* name);

// An ASN1_TIME (UTCTime or GeneralizedTime) as a SystemTime, saturated at
// the clock's range (9999-12-31 is a valid notAfter); nullopt if unreadable.
std::optional<SystemTime> to_system_time(const ASN1_TIME* t);

// A certificate's keyUsage bits (KU_*), none when it has no keyUsage
// extension: RFC 5280 would then allow every use, and a login certificate
// could sign prescriptions. DVV's certificates all carry one.
std::uint32_t key_usage_or_none(X509* cert);

}  // namespace kortti
