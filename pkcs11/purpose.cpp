#include <algorithm>

#include "common/names.hpp"
#include "pkcs11/pkcs11.hpp"

namespace kortti::pkcs11 {

namespace {

constexpr Named<Purpose> kPurposes[] = {{Purpose::authentication, "authentication"}, {Purpose::signature, "signature"}};

}  // namespace

std::string_view name_of(Purpose p) noexcept { return name_in(kPurposes, p); }
std::optional<Purpose> parse_purpose(std::string_view name) { return parse_in(kPurposes, name); }

bool has_purpose(const CertificateInfo& cert, Purpose p) noexcept {
  return std::find(cert.purposes.begin(), cert.purposes.end(), p) != cert.purposes.end();
}

bool serves_only(const CertificateInfo& cert, Purpose p) noexcept {
  const Purpose other = p == Purpose::signature ? Purpose::authentication : Purpose::signature;
  return has_purpose(cert, p) && !has_purpose(cert, other);
}

}  // namespace kortti::pkcs11
