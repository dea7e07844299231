#include "signature/signer_key.hpp"

#include <algorithm>
#include <string>

#include "common/error.hpp"

namespace kortti::signature {

namespace {

// A signature comes with its card's certificate, the same one request after
// request, and OpenSSL 3 decodes a certificate's public key through its
// decoder framework at every parse (some 140 µs; more than the rest of a
// small document's preparation). Each thread keeps the one it parsed last.
X509Ptr parsed_certificate(ByteView der) {
  thread_local Bytes last_der;
  thread_local X509Ptr last;
  if (!last || !std::equal(der.begin(), der.end(), last_der.begin(), last_der.end())) {
    X509Ptr parsed = parse_certificate(der);
    if (!parsed) return nullptr;
    last_der.assign(der.begin(), der.end());
    last = std::move(parsed);
  }
  // Shared, not copied: X509 objects are reference-counted, and nothing here writes to one.
  if (X509_up_ref(last.get()) != 1) return parse_certificate(der);
  return X509Ptr(last.get());
}

}  // namespace

SignerKey signer_key(ByteView certificate_der, const char* what) {
  SignerKey s{parsed_certificate(certificate_der)};
  if (!s.certificate) throw Error(Errc::unsupported, "the signing certificate is not DER");
  s.key = X509_get0_pubkey(s.certificate.get());
  const int type = s.key != nullptr ? EVP_PKEY_get_base_id(s.key) : 0;
  if (type != EVP_PKEY_RSA && type != EVP_PKEY_EC)
    throw Error(Errc::unsupported, std::string(what) + " need an RSA or EC key");
  s.kind = type == EVP_PKEY_RSA ? KeyType::rsa : KeyType::ec;
  return s;
}

}  // namespace kortti::signature
