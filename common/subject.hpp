#pragma once

#include <string>
#include <string_view>

namespace kortti {

// The CN of an RFC 2253 subject ("CN=Testilääkäri Aino,O=..."), unescaped,
// or the whole subject when it has none (or an empty one): how people are
// named to people. Attributes end at an unescaped ',' or, within a
// multi-valued RDN, '+'; an escaped one ("OU=a\\,CN=b") is part of its value.
inline std::string common_name(std::string_view subject) {
  std::size_t at = 0;
  while (at < subject.size()) {
    std::size_t end = at;
    std::string value;
    for (; end < subject.size() && subject[end] != ',' && subject[end] != '+'; ++end) {
      if (subject[end] == '\\' && end + 1 < subject.size()) ++end;
      value += subject[end];
    }
    if (subject.substr(at, 3) == "CN=" && value.size() > 3) return value.substr(3);
    at = end + 1;
  }
  return std::string(subject);
}

}  // namespace kortti
