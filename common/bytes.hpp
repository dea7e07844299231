#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

namespace kortti {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline ByteView as_bytes(std::string_view s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

// Byte strings in octet-string order (X.690 SET OF order; map keys). The
// same order as operator< on Bytes, which GCC 12 at -O3 cannot be used for:
// it reports the memcmp it inlines there with a bogus bound
// (-Wstringop-overread, a false positive).
struct BytesLess {
  bool operator()(ByteView a, ByteView b) const noexcept {
    const std::size_t common = std::min(a.size(), b.size());
    const int order = common == 0 ? 0 : std::memcmp(a.data(), b.data(), common);
    return order != 0 ? order < 0 : a.size() < b.size();
  }
};

}  // namespace kortti
