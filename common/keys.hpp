#pragma once

// The one vocabulary of key types and signature schemes: the card signs with
// them (pkcs11/), documents are built for them (signature/), clients name them.

#include <cstddef>
#include <optional>
#include <string_view>

namespace kortti {

enum class KeyType { rsa, ec };
std::string_view name_of(KeyType type) noexcept;

// RSA PKCS#1 v1.5, RSA-PSS (MGF1 with the digest's hash, salt = hash length), ECDSA.
enum class Scheme { pkcs1, pss, ecdsa };
std::string_view name_of(Scheme scheme) noexcept;
std::optional<Scheme> parse_scheme(std::string_view name);
// What a key signs with unless asked otherwise: PKCS#1 v1.5 for RSA, ECDSA for EC.
Scheme default_scheme(KeyType type) noexcept;
// The bytes of each of r and s in an r||s (JWS, Web eID) ECDSA signature on
// a curve as korttid names it ("P-256", "P-384", "P-521"); 0 for another.
std::size_t ec_field_bytes(std::string_view curve) noexcept;

}  // namespace kortti
