#pragma once

#include <string>
#include <string_view>

namespace kortti {

// The CN of an RFC 2253 subject ("CN=Testilääkäri Aino,O=..."), unescaped,
// or the whole subject when it has none: how people are named to people.
// An escaped comma ("OU=a\\,CN=b") is part of its value, not the start of
// another attribute.
inline std::string common_name(std::string_view subject) {
  std::size_t at = 0;
  while (at < subject.size()) {
    // The attribute at `at` runs to its first unescaped comma.
    std::size_t end = at;
    std::string value;
    for (; end < subject.size() && subject[end] != ','; ++end) {
      if (subject[end] == '\\' && end + 1 < subject.size()) ++end;
      value += subject[end];
    }
    if (subject.substr(at, 3) == "CN=") return value.substr(3);
    at = end + 1;
  }
  return std::string(subject);
}

}  // namespace kortti
