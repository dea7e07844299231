#pragma once

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

// nlohmann's checks of its callers (a member read through a const reference
// that the value lacks, an iterator of another value) are assert()s, gone
// under NDEBUG: reading a member a peer's message left out would be
// undefined behaviour. Here they throw. Every file takes nlohmann through
// this header, so the library is the same in all of them.
#ifdef INCLUDE_NLOHMANN_JSON_HPP_
#error "include common/json.hpp, not nlohmann/json.hpp"
#endif
namespace kortti {
// Throws std::out_of_range. (Where nlohmann checks inside a noexcept
// function, the program ends there, as the assert() would.)
[[noreturn]] void json_check_failed();
}  // namespace kortti
#define JSON_ASSERT(condition) ((condition) ? static_cast<void>(0) : ::kortti::json_check_failed())
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

// What would make a JSON text too costly to parse, seen in one pass over it
// (outside strings) before the parser builds anything: nesting deeper than
// `max_depth` (a million '[' are a million nested values, gigabytes), or
// more than `max_values` values, counted by the brackets, commas and colons
// that begin them (a parsed value costs some 30 times its text: 16 MiB of
// "[{},{},…]" made 450 MiB). A message needs a handful of levels and a few
// thousand values.
enum class JsonCost { fine, too_deep, too_many_values };
[[nodiscard]] JsonCost json_cost(std::string_view text, std::size_t max_depth, std::size_t max_values);
// The bounds for a request (a JSON-RPC line, an SCS body); one past either
// is refused before parsing.
inline constexpr std::size_t kMaxJsonNesting = 32;
inline constexpr std::size_t kMaxJsonValues = 100000;

inline WipingString wstr(std::string_view s) { return WipingString(s.data(), s.size()); }
// object[key] = value, for a value that may be a PIN: a short one becomes a
// string on the stack, whose bytes stay there after the move into the
// object, so the stack is scrubbed after.
void put_scrubbed(Json& object, std::string_view key, std::string_view value);
inline std::string to_std(const WipingString& s) { return std::string(s.data(), s.size()); }

}  // namespace kortti
