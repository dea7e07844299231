#pragma once

// Internal to pkcs11/ (docs/architecture.md, Layering); include pkcs11/pkcs11.hpp.
#if !defined(KORTTI_COMPONENT_PKCS11) && !defined(KORTTI_WHITE_BOX)
#error "pkcs11/signing.hpp is internal to pkcs11/; include pkcs11/pkcs11.hpp"
#endif

// The encodings around one raw card signature: what goes in (DigestInfo for
// PKCS#1 v1.5, PSS parameters), what comes out (ECDSA r||s to DER), and names.

#include <p11-kit/pkcs11.h>

#include <string>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "pkcs11/pkcs11.hpp"

namespace kortti::pkcs11 {

// Throws Error(unsupported) when the scheme does not apply to the key type.
void check_scheme_fits(Scheme scheme, KeyType key);

CK_MECHANISM_TYPE mechanism_of(Scheme scheme) noexcept;
CK_RSA_PKCS_PSS_PARAMS pss_params(DigestAlgorithm alg) noexcept;

// DER DigestInfo { AlgorithmIdentifier, OCTET STRING digest } (RFC 8017 9.2).
Bytes digest_info(DigestAlgorithm alg, ByteView digest);

// PKCS#11 returns ECDSA signatures as r||s; X.509 tools expect DER.
Bytes ecdsa_raw_to_der(ByteView raw);

// The OpenSSL long name, e.g. sha256WithRSAEncryption, ecdsa-with-SHA384, rsassaPss.
std::string signature_algorithm_name(Scheme scheme, DigestAlgorithm alg);

}  // namespace kortti::pkcs11
