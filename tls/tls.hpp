#pragma once

// tls/: TLS client authentication with a card key. CardKeys is a small
// OpenSSL 3 provider in its own library context: a card certificate becomes
// an EVP_PKEY whose one private-key operation — the handshake's
// CertificateVerify — is handed to a Signer, which korttid points at the
// token worker. libssl sees an ordinary key; the private key never leaves
// the card. docs/authentication.md has the design and its pitfalls.

#include <openssl/ssl.h>

#include <functional>
#include <memory>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "common/keys.hpp"
#include "common/openssl.hpp"

namespace kortti::tls {

// Signs `digest` (made with `algorithm`) with the card key by `scheme`; an
// ECDSA signature comes back DER-encoded. Runs on the handshake's thread and
// may block until the card answers; throws kortti::Error when it cannot sign.
using Signer = std::function<Bytes(DigestAlgorithm algorithm, Scheme scheme, const Bytes& digest)>;

class CardKeys {
 public:
  CardKeys();
  ~CardKeys();
  CardKeys(const CardKeys&) = delete;
  CardKeys& operator=(const CardKeys&) = delete;

  // The library context TLS runs in (SSL_CTX_new_ex): OpenSSL's default
  // provider for everything, this provider only for card keys.
  [[nodiscard]] OSSL_LIB_CTX* context() const noexcept;

  // The certificate's public key, its private operation `signer`. Null for
  // a certificate that is not RSA or EC.
  [[nodiscard]] EvpPkeyPtr key(const Bytes& certificate_der, Signer signer) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kortti::tls
