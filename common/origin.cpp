#include "common/origin.hpp"

#include <arpa/inet.h>

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

// A DNS name's labels: 1 to 63 characters, neither first nor last a '-'
// (an IPv4 address passes as four numeric labels).
void check_labels(std::string_view host) {
  if (host.size() > 253) bad("origin", "has a host name longer than 253 characters");
  for (std::size_t start = 0;;) {
    const auto dot = host.find('.', start);
    const std::string_view label = host.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (label.empty()) bad("origin", "has an empty label in its host name (\"..\", or a dot first or last)");
    if (label.size() > 63) bad("origin", "has a host name label longer than 63 characters");
    if (label.front() == '-' || label.back() == '-')
      bad("origin", "has a host name label that begins or ends with '-'");
    if (dot == std::string_view::npos) return;
    start = dot + 1;
  }
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
    const std::string literal(host.substr(1, host.size() - 2));
    in6_addr address{};
    if (::inet_pton(AF_INET6, literal.c_str(), &address) != 1) bad("origin", "has a malformed IPv6 literal");
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
    check_labels(host);
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
