#pragma once

// Internal to client/ (docs/architecture.md, Layering).
#if !defined(KORTTI_COMPONENT_CLIENT) && !defined(KORTTI_WHITE_BOX)
#error "client/local_ca.hpp is internal to client/"
#endif

// The SCS listener's certificate (kortti scs setup): a CA of the user's own
// that may name only the loopback (nameConstraints: DNS:localhost,
// IP:127.0.0.1, IP:::1) issues a certificate for localhost, and its private
// key is gone when this returns — it never touches the disk, so nothing can
// mint another certificate under it, not even for localhost.

#include <chrono>
#include <string>

#include "common/secret.hpp"

namespace kortti::cli {

struct LocalCertificate {
  std::string ca_pem;    // the CA's certificate: what browsers trust
  std::string leaf_pem;  // the listener's certificate, then the CA's
  SecretString key_pem;  // the listener's private key
};

// Throws std::runtime_error naming the OpenSSL call that failed.
LocalCertificate make_local_certificate(const std::string& owner, std::chrono::days validity);

}  // namespace kortti::cli
