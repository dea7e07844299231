#pragma once

// Internal to signature/ (docs/architecture.md, Layering); include signature/signature.hpp.
#if !defined(KORTTI_COMPONENT_SIGNATURE) && !defined(KORTTI_WHITE_BOX)
#error "signature/signer_key.hpp is internal to signature/; include signature/signature.hpp"
#endif

// The signer's certificate and what kind of key it holds: the XML and the
// CMS signer both start from it.

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/openssl.hpp"
#include "signature/signature.hpp"

namespace kortti::signature {

struct SignerKey {
  X509Ptr certificate;
  EVP_PKEY* key = nullptr;  // the certificate's public key, owned by it
  KeyType kind = KeyType::rsa;
};

// `what` names the signatures in the error ("XML signatures").
SignerKey signer_key(ByteView certificate_der, const char* what);

}  // namespace kortti::signature
