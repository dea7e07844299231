#pragma once

// An enum's wire names as one table: name_of() and parse() read the same
// rows, so a value and its name cannot drift apart.

#include <optional>
#include <string_view>

namespace kortti {

template <class E>
struct Named {
  E value;
  std::string_view name;
};

// The first row's name for `value` (a table lists each value once first;
// later rows may add spellings that parse()
// accepts).
template <class E, std::size_t N>
constexpr std::string_view name_in(const Named<E> (&table)[N], E value) noexcept {
  for (const auto& row : table)
    if (row.value == value) return row.name;
  return {};
}

template <class E, std::size_t N>
constexpr std::optional<E> parse_in(const Named<E> (&table)[N], std::string_view name) noexcept {
  for (const auto& row : table)
    if (row.name == name) return row.value;
  return std::nullopt;
}

}  // namespace kortti
