#pragma once

// Internal to signature/ (docs/architecture.md, Layering); include signature/signature.hpp.
#if !defined(KORTTI_COMPONENT_SIGNATURE) && !defined(KORTTI_WHITE_BOX)
#error "signature/signer_key.hpp is internal to signature/; include signature/signature.hpp"
#endif

// The signer's certificate and what kind of key it holds: the XML and the
// CMS signer both start from it.

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/error.hpp"
#include "common/openssl.hpp"
#include "signature/signature.hpp"

namespace kortti::signature {

struct SignerKey {
  X509Ptr certificate;
  EVP_PKEY* key = nullptr;  // the certificate's public key, owned by it
  KeyType kind = KeyType::rsa;
};

// `what` names the signatures in the error ("XML signatures").
inline SignerKey signer_key(ByteView certificate_der, const char* what) {
  SignerKey s{parse_certificate(certificate_der)};
  if (!s.certificate) throw Error(Errc::unsupported, "the signing certificate is not DER");
  s.key = X509_get0_pubkey(s.certificate.get());
  const int type = s.key != nullptr ? EVP_PKEY_get_base_id(s.key) : 0;
  if (type != EVP_PKEY_RSA && type != EVP_PKEY_EC)
    throw Error(Errc::unsupported, std::string(what) + " need an RSA or EC key");
  s.kind = type == EVP_PKEY_RSA ? KeyType::rsa : KeyType::ec;
  return s;
}

}  // namespace kortti::signature
