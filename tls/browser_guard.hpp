#pragma once

// Internal to tls/ (docs/architecture.md, Layering); include tls/tls.hpp.
#if !defined(KORTTI_COMPONENT_TLS) && !defined(KORTTI_WHITE_BOX)
#error "tls/browser_guard.hpp is internal to tls/; include tls/tls.hpp"
#endif

// A loopback TCP listener is within reach of every web page the
// clinician's browser opens, and the kernel names the clinician as the
// owner of the browser's connection: a page could send requests to the
// upstream logged in with the card. Inside the tunnel korttid sees only
// bytes, so it looks at the first ones, before the card: a browser's
// connection always begins with what a browser sends (an HTTP request, a
// TLS ClientHello, a WebRTC STUN message), and a browser's HTTP request
// carries headers a page cannot take off. docs/authentication.md has the
// reasoning and what it cannot catch.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kortti::tls {

// The most of a client's first bytes looked at: an HTTP request's head
// must end within it.
inline constexpr std::size_t kMaxFirstBytes = 32 * 1024;

struct FirstBytes {
  enum Verdict { more, pass, refuse } verdict = more;
  std::string why;    // refuse: what gave it away; never the client's own bytes
  bool http = false;  // refuse: an HTTP request, which may be answered 403
};

// What the first bytes a client sent say. `hosts`: the Host values, lower
// case, a program's request may carry (the listener's address and the
// upstream's name, each with its port). `ended`: no more bytes will come
// before a verdict is needed (the client half-closed, or the wait is over):
// `more` is then never the answer.
[[nodiscard]] FirstBytes screen_first_bytes(std::string_view bytes, const std::vector<std::string>& hosts, bool ended);

}  // namespace kortti::tls
