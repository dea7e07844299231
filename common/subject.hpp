#pragma once

#include <string>
#include <string_view>

namespace kortti {

// The CN of an RFC 2253 subject ("CN=Testilääkäri Aino,O=..."), unescaped,
// or the whole subject when it has none: how people are named to people.
inline std::string common_name(std::string_view subject) {
  for (std::size_t at = 0; at < subject.size();) {
    if (subject.substr(at, 3) == "CN=") {
      std::string out;
      for (std::size_t i = at + 3; i < subject.size() && subject[i] != ','; ++i) {
        if (subject[i] == '\\' && i + 1 < subject.size()) ++i;
        out += subject[i];
      }
      return out;
    }
    const auto comma = subject.find(',', at);
    if (comma == std::string_view::npos) break;
    at = comma + 1;
  }
  return std::string(subject);
}

}  // namespace kortti
