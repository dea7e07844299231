#include "common/origin.hpp"

#include <cctype>
#include <string>

#include "common/encoding.hpp"
#include "common/error.hpp"

namespace kortti {

namespace {

[[noreturn]] void bad(const char* param, const std::string& why) {
  throw Error(Errc::invalid_params, std::string("'") + param + "' " + why);
}

bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

}  // namespace

void check_web_origin(std::string_view origin) {
  constexpr std::string_view scheme = "https://";
  if (origin.size() > 255) bad("origin", "is longer than 255 characters");
  if (origin.substr(0, scheme.size()) != scheme)
    bad("origin", "must be https://host[:port], the page's origin; '" + printable(origin, 80) + "' is not");
  std::string_view rest = origin.substr(scheme.size());
  std::string_view host = rest;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {  // an IPv6 literal
    const auto close = rest.find(']');
    if (close == std::string_view::npos) bad("origin", "has an unclosed IPv6 literal");
    host = rest.substr(0, close + 1);
    for (char c : host.substr(1, host.size() - 2))
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.')
        bad("origin", "has a malformed IPv6 literal");
    rest = rest.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') bad("origin", "must end after the host and port (no path, no slash)");
    port = rest.empty() ? rest : rest.substr(1);
    if (!rest.empty() && port.empty()) bad("origin", "has an empty port");
  } else {
    const auto colon = rest.find(':');
    if (colon != std::string_view::npos) {
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
      if (port.empty()) bad("origin", "has an empty port");
    }
    if (host.empty()) bad("origin", "has no host");
    for (char c : host)
      if (!host_char(c))
        bad("origin",
            "must be https://host[:port] with nothing after the host and port (no path, query, user "
            "or trailing slash)");
  }
  if (!port.empty()) {
    unsigned long value = 0;
    for (char c : port) {
      if (c < '0' || c > '9') bad("origin", "has a port that is not a number");
      value = value * 10 + static_cast<unsigned long>(c - '0');
      if (value > 65535) bad("origin", "has a port above 65535");
    }
    if (value == 0) bad("origin", "has port 0");
  }
}

}  // namespace kortti
