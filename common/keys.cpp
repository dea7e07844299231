#include "common/keys.hpp"

#include "common/names.hpp"

namespace kortti {

namespace {

constexpr Named<KeyType> kKeyTypes[] = {{KeyType::rsa, "rsa"}, {KeyType::ec, "ec"}};
constexpr Named<Scheme> kSchemes[] = {{Scheme::pkcs1, "pkcs1"}, {Scheme::pss, "pss"}, {Scheme::ecdsa, "ecdsa"}};

}  // namespace

std::string_view name_of(KeyType type) noexcept { return name_in(kKeyTypes, type); }
std::string_view name_of(Scheme scheme) noexcept { return name_in(kSchemes, scheme); }
std::optional<Scheme> parse_scheme(std::string_view name) { return parse_in(kSchemes, name); }
Scheme default_scheme(KeyType type) noexcept { return type == KeyType::ec ? Scheme::ecdsa : Scheme::pkcs1; }

std::size_t ec_field_bytes(std::string_view curve) noexcept {
  if (curve == "P-256") return 32;
  if (curve == "P-384") return 48;
  if (curve == "P-521") return 66;
  return 0;
}

}  // namespace kortti
