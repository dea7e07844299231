#include "pkcs11/pkcs11.hpp"

namespace kortti::pkcs11 {

std::string_view name_of(Purpose p) noexcept { return p == Purpose::signature ? "signature" : "authentication"; }

std::optional<Purpose> parse_purpose(std::string_view name) {
  if (name == "signature") return Purpose::signature;
  if (name == "authentication") return Purpose::authentication;
  return std::nullopt;
}

std::string_view name_of(KeyType t) noexcept { return t == KeyType::ec ? "ec" : "rsa"; }

std::string_view name_of(Scheme s) noexcept {
  switch (s) {
    case Scheme::pkcs1:
      return "pkcs1";
    case Scheme::pss:
      return "pss";
    case Scheme::ecdsa:
      return "ecdsa";
  }
  return "pkcs1";
}

std::optional<Scheme> parse_scheme(std::string_view name) {
  if (name == "pkcs1") return Scheme::pkcs1;
  if (name == "pss") return Scheme::pss;
  if (name == "ecdsa") return Scheme::ecdsa;
  return std::nullopt;
}

}  // namespace kortti::pkcs11
