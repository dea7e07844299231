// The first bytes a loopback TCP tunnel's client sent (tls/browser_guard.hpp):
// what web browsers send is refused, what programs send passes. The requests
// are as Chromium 120, Firefox 121 and Safari 17 send them, and as curl,
// Java's HttpClient and Python's urllib do.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tls/browser_guard.hpp"

namespace kortti::tls {
namespace {

const std::vector<std::string> kHosts = {"127.0.0.1:18443", "localhost:18443", "sso.example.fi", "sso.example.fi:443"};

FirstBytes screen(const std::string& bytes, bool ended = false) { return screen_first_bytes(bytes, kHosts, ended); }

TEST(BrowserGuard, ProgramsRequestsPass) {
  for (const std::string request : {
           "GET / HTTP/1.1\r\nHost: 127.0.0.1:18443\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
           "POST /api HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nContent-Length: 2\r\nHost: "
           "localhost:18443\r\nHTTP2-Settings: AAEAAEAAAAIAAAAAAAMAAAAAAAQBAAAAAAUAAEAA\r\nUpgrade: h2c\r\nUser-Agent: "
           "Java-http-client/17.0.9\r\n\r\n{}",
           "GET /x HTTP/1.1\r\nAccept-Encoding: identity\r\nHost: SSO.example.fi\r\nUser-Agent: "
           "Python-urllib/3.11\r\nConnection: close\r\n\r\n",
           "GET / HTTP/1.1\nHost: sso.example.fi:443\n\n",
           "GET / HTTP/1.0\r\n\r\n",
       }) {
    const FirstBytes v = screen(request);
    EXPECT_EQ(v.verdict, FirstBytes::pass) << request << v.why;
  }
}

TEST(BrowserGuard, BrowsersRequestsAreRefusedWithTheirReason) {
  const std::string chromium =
      "GET /admin HTTP/1.1\r\nHost: 127.0.0.1:18443\r\nConnection: keep-alive\r\nsec-ch-ua: \"Chromium\";v=\"120\"\r\n"
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\nAccept: image/avif,*/*\r\n"
      "Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: image\r\n\r\n";
  const std::string firefox_post =
      "POST /orders HTTP/1.1\r\nHost: localhost:18443\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0)\r\n"
      "Content-Type: text/plain\r\nOrigin: https://evil.example\r\nContent-Length: 3\r\n\r\nabc";
  // What a page sends when it could not set the User-Agent or add Sec-*:
  // an older browser's image request.
  const std::string old_browser = "GET / HTTP/1.1\r\nHost: 127.0.0.1:18443\r\nUser-Agent: Mozilla/4.0\r\n\r\n";
  // DNS rebinding: the page's own name, now pointed at 127.0.0.1.
  const std::string rebinding = "GET / HTTP/1.1\r\nHost: evil.example:18443\r\nUser-Agent: x\r\n\r\n";
  const std::string websocket =
      "GET /chat HTTP/1.1\r\nHost: 127.0.0.1:18443\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nORIGIN: http://evil.example\r\nSec-WebSocket-Version: 13\r\n\r\n";
  const struct {
    std::string request;
    const char* why;
  } cases[] = {
      {chromium, "Sec-CH-*"},
      {firefox_post, "User-Agent is a web browser's"},
      // The same with the User-Agent a page set (Firefox lets it).
      {firefox_post.substr(0, firefox_post.find("\r\nUser-Agent")) +
           firefox_post.substr(firefox_post.find("\r\nContent-Type")),
       "Origin"},
      {old_browser, "User-Agent is a web browser's"},
      {rebinding, "Host is neither"},
      {websocket, "Origin"},
      {"GET / HTTP/1.1\r\nHost: 127.0.0.1:18443\r\nsec-fetch-mode: navigate\r\n\r\n", "Sec-Fetch-*"},
      {"GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n", "without Host"},
      {"GET / HTTP/1.1\r\nHost: 127.0.0.1:18443\r\nHost: evil.example\r\n\r\n", "two Host"},
      {"GET / HTTP/1.1\r\nHost: 127.0.0.1:18443\r\n folded\r\n\r\n", "malformed"},
  };
  for (const auto& c : cases) {
    const FirstBytes v = screen(c.request);
    EXPECT_EQ(v.verdict, FirstBytes::refuse) << c.request;
    EXPECT_TRUE(v.http) << c.request;
    EXPECT_NE(v.why.find(c.why), std::string::npos) << c.request << " -> " << v.why;
  }
  // The reason names a rule, never what the client sent.
  EXPECT_EQ(screen(rebinding).why.find("evil"), std::string::npos);
}

// A browser sends its request head in one go, but the head may still come in
// pieces: the verdict waits for the blank line, up to 32 KiB.
TEST(BrowserGuard, AnHttpHeadIsJudgedWhole) {
  const std::string head = "GET / HTTP/1.1\r\nHost: 127.0.0.1:18443\r\nSec-Fetch-Mode: cors\r\n\r\n";
  for (std::size_t cut = 1; cut < head.size(); ++cut)
    EXPECT_EQ(screen(head.substr(0, cut)).verdict, FirstBytes::more) << cut;
  EXPECT_EQ(screen(head).verdict, FirstBytes::refuse);
  // No more will come: an unfinished head or request line is refused.
  EXPECT_EQ(screen("GET / HTTP/1.1\r\nHost: 127.0.0.1:18443\r\n", true).verdict, FirstBytes::refuse);
  EXPECT_EQ(screen("GET /index", true).verdict, FirstBytes::refuse);
  // A head too long to look at is refused, not passed.
  const std::string long_head = "GET / HTTP/1.1\r\nX-Pad: " + std::string(kMaxFirstBytes, 'a');
  EXPECT_EQ(screen(long_head).verdict, FirstBytes::refuse);
  EXPECT_EQ(screen(std::string(kMaxFirstBytes, 'a')).verdict, FirstBytes::refuse);
}

TEST(BrowserGuard, WhatABrowserSendsOtherThanHttpIsRefused) {
  // An https:// request's ClientHello: TLS record, handshake, version 3.1.
  const FirstBytes tls = screen(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11));
  EXPECT_EQ(tls.verdict, FirstBytes::refuse);
  EXPECT_FALSE(tls.http);
  EXPECT_NE(tls.why.find("TLS"), std::string::npos);
  // A WebRTC STUN binding request (RFC 8489), which a page can aim at a
  // "TURN server" on this port.
  const std::string stun(
      "\x00\x01\x00\x00\x21\x12\xa4\x42"
      "abcdefghijkl",
      20);
  EXPECT_EQ(screen(stun.substr(0, 5)).verdict, FirstBytes::more);
  EXPECT_EQ(screen(stun).verdict, FirstBytes::refuse);
  EXPECT_EQ(screen(stun.substr(0, 8), true).verdict, FirstBytes::refuse);
  // The same over ICE-TCP, framed by its length (RFC 4571), which a page
  // can send to a candidate it names (127.0.0.1, this port).
  EXPECT_EQ(screen(std::string("\x00\x14", 2) + stun).verdict, FirstBytes::refuse);
  // An SSLv2-style ClientHello, as WebRTC's "ssltcp" sends.
  EXPECT_EQ(screen(std::string("\x80\x46\x01\x03\x01", 5)).verdict, FirstBytes::refuse);
  // A connection that says nothing: a preconnect, whose request would come
  // after the look.
  EXPECT_EQ(screen("").verdict, FirstBytes::more);
  EXPECT_EQ(screen("", true).verdict, FirstBytes::refuse);
}

TEST(BrowserGuard, OtherProtocolsPass) {
  // What programs speak first that no browser sends: a line protocol, an
  // SSH banner, a binary frame (a length-prefixed message).
  EXPECT_EQ(screen("yksi\n").verdict, FirstBytes::pass);
  EXPECT_EQ(screen("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").verdict, FirstBytes::pass);
  EXPECT_EQ(screen(std::string("\x00\x00\x00\x06hello!", 10)).verdict, FirstBytes::pass);
  EXPECT_EQ(screen(std::string("\x80\x05\x02hello", 8)).verdict, FirstBytes::pass);
  // Short ones that could still begin something a browser sends wait for
  // more, and pass when nothing more comes.
  EXPECT_EQ(screen("yk").verdict, FirstBytes::more);
  EXPECT_EQ(screen("yk", true).verdict, FirstBytes::pass);
  EXPECT_EQ(screen(std::string("\x00\x01", 2), true).verdict, FirstBytes::pass);
  EXPECT_EQ(screen(std::string("\x80\x01", 2)).verdict, FirstBytes::more);
  EXPECT_EQ(screen(std::string("\x80\x01", 2), true).verdict, FirstBytes::pass);
}

}  // namespace
}  // namespace kortti::tls
