#pragma once

// Internal to pkcs11/ (docs/architecture.md, Layering); include pkcs11/pkcs11.hpp.
#if !defined(KORTTI_COMPONENT_PKCS11) && !defined(KORTTI_WHITE_BOX)
#error "pkcs11/certificate.hpp is internal to pkcs11/; include pkcs11/pkcs11.hpp"
#endif

#include "pkcs11/pkcs11.hpp"

namespace kortti::pkcs11 {

// Fills the certificate-derived fields of CertificateInfo (subject, issuer,
// validity, key, purposes) from DER. Throws Error(not_found) for bad DER.
void describe_certificate(CertificateInfo& info);

// Purposes from keyUsage: nonRepudiation -> signature, digitalSignature ->
// authentication. A certificate without keyUsage may be used for both.
std::vector<Purpose> purposes_from_key_usage(std::uint32_t key_usage);

}  // namespace kortti::pkcs11
