#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/secret.hpp"

namespace kortti {

// An allocator that wipes memory before giving it back. Requests carry PINs;
// with this allocator every string a parsed request held (values, keys and
// the parser's own scratch buffer) is overwritten when it is freed.
template <class T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() noexcept = default;
  template <class U>
  WipingAllocator(const WipingAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)
  T* allocate(std::size_t n) { return std::allocator<T>{}.allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept {
    wipe(p, n * sizeof(T));
    std::allocator<T>{}.deallocate(p, n);
  }
  template <class U>
  bool operator==(const WipingAllocator<U>&) const noexcept {
    return true;
  }
};

using WipingString = std::basic_string<char, std::char_traits<char>, WipingAllocator<char>>;

// The JSON type of the wire protocol, daemon and client alike.
using Json = nlohmann::basic_json<std::map, std::vector, WipingString, bool, std::int64_t, std::uint64_t, double,
                                  WipingAllocator>;

// Whether brackets nest deeper than `limit` outside strings. A message needs
// a handful of levels; a million '[' would make the parser build a million
// nested values (gigabytes) before it saw the text is useless.
bool nested_deeper_than(std::string_view text, std::size_t limit);
// How deep a request (a JSON-RPC line, an SCS body) may nest; deeper ones
// are refused before parsing.
inline constexpr std::size_t kMaxJsonNesting = 32;

inline WipingString wstr(std::string_view s) { return WipingString(s.data(), s.size()); }
inline std::string to_std(const WipingString& s) { return std::string(s.data(), s.size()); }

}  // namespace kortti
