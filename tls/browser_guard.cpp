#include "tls/browser_guard.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "common/encoding.hpp"

namespace kortti::tls {

namespace {

bool token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

FirstBytes refused(std::string why, bool http) { return {FirstBytes::refuse, std::move(why), http}; }

const char* const kTlsHello =
    "it began a TLS handshake: send the upstream's protocol in the clear, korttid makes the TLS";

// "METHOD " at the start: the beginning of an HTTP request line.
bool method_first(std::string_view line) {
  const auto space = line.find(' ');
  return space != std::string_view::npos && space > 0 &&
         std::all_of(line.begin(), line.begin() + static_cast<std::ptrdiff_t>(space), token_char);
}

// "METHOD target HTTP/d.d", as every browser's request begins.
bool request_line(std::string_view line) {
  if (!method_first(line) || line.size() < 9) return false;
  const std::string_view version = line.substr(line.size() - 9);
  return version.substr(0, 6) == " HTTP/" && std::isdigit(static_cast<unsigned char>(version[6])) != 0 &&
         version[7] == '.' && std::isdigit(static_cast<unsigned char>(version[8])) != 0;
}

bool printable(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= 0x20 && c < 0x7f) || c == '\r' || c == '\t'; });
}

// The request's headers, from after the request line to the blank line.
FirstBytes screen_headers(std::string_view headers, const std::vector<std::string>& hosts, bool http11) {
  bool host_seen = false;
  while (!headers.empty()) {
    const auto end = headers.find('\n');
    const std::string_view line = headers.substr(0, end);
    headers.remove_prefix(end == std::string_view::npos ? headers.size() : end + 1);
    if (trim(line).empty()) continue;
    const auto colon = line.find(':');
    // Folded and broken lines alike: no browser sends one.
    if (colon == std::string_view::npos || colon == 0 || !std::all_of(line.begin(), line.begin() + colon, token_char))
      return refused("a malformed HTTP header line", true);
    const std::string name = ascii_lower(line.substr(0, colon));
    const std::string value = ascii_lower(trim(line.substr(colon + 1)));
    // A page cannot take these off a browser's request (the Fetch
    // standard's forbidden headers); no program needs them here.
    if (name == "origin") return refused("it carries Origin, which web browsers send", true);
    if (name.rfind("sec-fetch-", 0) == 0)
      return refused("it carries a Sec-Fetch-* header, which web browsers send", true);
    if (name.rfind("sec-ch-", 0) == 0) return refused("it carries a Sec-CH-* header, which web browsers send", true);
    if (name == "user-agent" && value.rfind("mozilla/", 0) == 0)
      return refused("its User-Agent is a web browser's (Mozilla/...)", true);
    if (name == "host") {
      if (host_seen) return refused("it has two Host headers", true);
      host_seen = true;
      // A page whose name an attacker pointed at 127.0.0.1 (DNS
      // rebinding) sends its own name.
      if (std::find(hosts.begin(), hosts.end(), value) == hosts.end())
        return refused("its Host is neither this listener's address nor the upstream's name", true);
    }
  }
  if (!host_seen && http11) return refused("an HTTP/1.1 request without Host", true);
  return {FirstBytes::pass, "", true};
}

}  // namespace

FirstBytes screen_first_bytes(std::string_view bytes, const std::vector<std::string>& hosts, bool ended) {
  const FirstBytes more{FirstBytes::more, "", false};
  const FirstBytes pass{FirstBytes::pass, "", false};
  // A browser that opened a connection ahead of need (a preconnect) sends
  // its request later, when any check would be over.
  if (bytes.empty()) return ended ? refused("it sent nothing first", false) : more;
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(bytes[i]); };
  // A TLS record (handshake, version 3.x): a browser's https:// request.
  if (byte(0) == 0x16) {
    if (bytes.size() < 2) return ended ? pass : more;
    if (byte(1) == 0x03) return refused(kTlsHello, false);
  }
  // An SSLv2-style ClientHello (a two-byte length with its top bit set,
  // then type 1 and version 3.x or 2): old TLS stacks and WebRTC's "ssltcp".
  if ((byte(0) & 0x80) != 0) {
    if (bytes.size() < 4) return ended ? pass : more;
    if (byte(2) == 0x01 && (byte(3) == 0x03 || byte(3) == 0x00)) return refused(kTlsHello, false);
  }
  // A STUN message (RFC 8489: two zero bits, then the magic cookie at byte
  // 4): a page's WebRTC reaching a "TURN server" on this port; or one framed
  // by a two-byte length (RFC 4571), as ICE over TCP sends it to a
  // candidate the page names.
  if ((byte(0) & 0xc0) == 0) {
    const auto cookie_at = [&](std::size_t i) {
      return byte(i) == 0x21 && byte(i + 1) == 0x12 && byte(i + 2) == 0xa4 && byte(i + 3) == 0x42;
    };
    const bool framed = bytes.size() >= 10 && (byte(2) & 0xc0) == 0 && cookie_at(6);
    if ((bytes.size() >= 8 && cookie_at(4)) || framed)
      return refused("it sent a STUN message, as a web page's WebRTC does", false);
    if (bytes.size() < 10) return ended ? pass : more;
  }
  const auto line_end = bytes.find('\n');
  if (line_end == std::string_view::npos) {
    if (!printable(bytes)) return pass;
    if (bytes.size() >= kMaxFirstBytes) return refused("its first line is over 32 KiB", false);
    if (!ended) return more;
    return method_first(bytes) ? refused("an unfinished HTTP request line", true) : pass;
  }
  const std::string_view line = trim(bytes.substr(0, line_end));
  if (!request_line(line)) return pass;
  // An HTTP request: its head is looked at whole.
  const std::string_view rest = bytes.substr(line_end + 1);
  std::size_t head_end = std::string_view::npos;
  for (std::size_t at = 0; at < rest.size() && head_end == std::string_view::npos; ++at) {
    // A blank line: "\n" or "\r\n" at the start of a line.
    const bool line_start = at == 0 || rest[at - 1] == '\n';
    if (line_start && rest[at] == '\n') head_end = at;
    if (line_start && rest[at] == '\r' && at + 1 < rest.size() && rest[at + 1] == '\n') head_end = at;
  }
  if (head_end == std::string_view::npos) {
    if (bytes.size() >= kMaxFirstBytes) return refused("its HTTP request head is over 32 KiB", true);
    return ended ? refused("an unfinished HTTP request head", true) : more;
  }
  return screen_headers(rest.substr(0, head_end), hosts, line.substr(line.size() - 3) == "1.1");
}

}  // namespace kortti::tls
