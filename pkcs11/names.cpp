#include "common/names.hpp"
#include "pkcs11/pkcs11.hpp"

namespace kortti::pkcs11 {

namespace {

constexpr Named<Purpose> kPurposes[] = {{Purpose::authentication, "authentication"}, {Purpose::signature, "signature"}};

}  // namespace

std::string_view name_of(Purpose p) noexcept { return name_in(kPurposes, p); }
std::optional<Purpose> parse_purpose(std::string_view name) { return parse_in(kPurposes, name); }

}  // namespace kortti::pkcs11
