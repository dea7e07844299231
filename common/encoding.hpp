#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/bytes.hpp"

namespace kortti {

// RFC 4648 base64, standard alphabet, with padding.
std::string base64_encode(ByteView data);
// Strict: rejects whitespace, other alphabets, bad padding and non-zero pad bits.
std::optional<Bytes> base64_decode(std::string_view text);

std::string hex_encode(ByteView data, bool upper = false);
std::optional<Bytes> hex_decode(std::string_view text);

}  // namespace kortti
