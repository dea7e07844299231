// The one HTTP exchange the revocation checks make: an OCSP request POSTed,
// or a CRL fetched. OpenSSL's HTTP client does the protocol; the connection
// is made here, so that the name's lookup is held to the timeout too.

#include <openssl/err.h>
#include <openssl/http.h>
#include <unistd.h>

#include "common/connect.hpp"
#include "policy/revocation.hpp"

namespace kortti::policy {

namespace {

using Clock = std::chrono::steady_clock;

// Redirects followed, each to another http:// URL, within the one timeout.
constexpr int kMaxRedirects = 5;

struct Url {
  std::string host;  // as the Host header names it ("[::1]" for an IPv6 address)
  std::string port;
  std::string path;
};

// An http:// URL's parts, or nothing with why not.
std::optional<Url> parse(const std::string& url, std::string& why_not) {
  char *host = nullptr, *port = nullptr, *path = nullptr;
  int tls = 0;
  const int parsed = OSSL_HTTP_parse_url(url.c_str(), &tls, nullptr, &host, &port, nullptr, &path, nullptr, nullptr);
  const OpensslString owned_host(host), owned_port(port), owned_path(path);
  if (parsed != 1) {
    ERR_clear_error();
    why_not = "the URL " + url + " cannot be parsed";
    return std::nullopt;
  }
  if (tls != 0) {
    why_not = "https is not used for revocation data (" + url + "; RFC 5280 and RFC 6960 serve it over http, signed)";
    return std::nullopt;
  }
  return Url{host, port, path};
}

// The address to connect to: an IPv6 address without the URL's brackets.
std::string address_of(const std::string& host) {
  return host.size() > 2 && host.front() == '[' && host.back() == ']' ? host.substr(1, host.size() - 2) : host;
}

// Where a request for `url` goes: its host, or the http_proxy the
// environment names for that host (no_proxy taken into account, as
// OpenSSL's own client does). Nothing, with why not, for a proxy that
// cannot be parsed.
struct Route {
  std::string host;  // to connect to: an address without brackets, or a name
  std::string port;
  bool proxied = false;
};
std::optional<Route> route_to(const Url& url, std::string& why_not) {
  const std::string host = address_of(url.host);
  const char* proxy = OSSL_HTTP_adapt_proxy(nullptr, nullptr, host.c_str(), 0);
  if (proxy == nullptr) return Route{host, url.port, false};
  char *proxy_host = nullptr, *proxy_port = nullptr;
  const int parsed =
      OSSL_HTTP_parse_url(proxy, nullptr, nullptr, &proxy_host, &proxy_port, nullptr, nullptr, nullptr, nullptr);
  const OpensslString owned_host(proxy_host), owned_port(proxy_port);
  if (parsed != 1) {
    ERR_clear_error();
    why_not = std::string("the http_proxy ") + proxy + " cannot be parsed";
    return std::nullopt;
  }
  return Route{address_of(proxy_host), proxy_port, true};
}

// One request to `url` on a connection of its own; the answer, or null
// with why not, or with `redirect` set to where the server sent it.
BioPtr exchange_once(const Url& url, const HttpRequest& request, Clock::time_point deadline, std::string& redirect,
                     std::string& why_not) {
  const std::optional<Route> route = route_to(url, why_not);
  if (!route) return nullptr;
  const int fd = connect_within(route->host, route->port, deadline, why_not);
  if (fd < 0) return nullptr;
  BioPtr connection(BIO_new_socket(fd, BIO_CLOSE));
  if (!connection) {
    ::close(fd);
    why_not = openssl_error("out of memory");
    return nullptr;
  }
  const Owned<OSSL_HTTP_REQ_CTX, OSSL_HTTP_REQ_CTX_free> rctx(
      OSSL_HTTP_REQ_CTX_new(connection.get(), connection.get(), 0));
  // What is left of the timeout, in whole seconds, rounded up: OpenSSL
  // counts whole seconds of the wall clock, so the exchange may end up to a
  // second after the deadline, never sooner than it.
  const auto left = std::chrono::ceil<std::chrono::seconds>(deadline - Clock::now()).count();
  // Through a proxy the request names the whole URL (RFC 7230 5.3.2).
  const bool ready =
      rctx && left > 0 &&
      OSSL_HTTP_REQ_CTX_set_request_line(rctx.get(), request.item != nullptr ? 1 : 0,
                                         route->proxied ? url.host.c_str() : nullptr,
                                         route->proxied ? url.port.c_str() : nullptr, url.path.c_str()) == 1 &&
      OSSL_HTTP_REQ_CTX_add1_header(rctx.get(), "Host", url.host.c_str()) == 1 &&
      OSSL_HTTP_REQ_CTX_set_expected(rctx.get(), request.expected_type, 1, static_cast<int>(left), 0) == 1 &&
      OSSL_HTTP_REQ_CTX_set1_req(rctx.get(), request.content_type, request.item, request.value) == 1;
  if (!ready) {
    why_not = left > 0 ? openssl_error("cannot make the request") : "no time left for the request";
    ERR_clear_error();
    return nullptr;
  }
  OSSL_HTTP_REQ_CTX_set_max_response_length(rctx.get(), static_cast<unsigned long>(request.max_bytes));
  char* location = nullptr;
  BioPtr answer(OSSL_HTTP_exchange(rctx.get(), &location));
  const OpensslString owned_location(location);
  if (!answer) {
    if (location != nullptr)
      redirect = location;
    else
      why_not = openssl_error("no answer");
  }
  ERR_clear_error();
  return answer;
}

}  // namespace

BioPtr http_exchange(const std::string& url, const HttpRequest& request, std::chrono::seconds timeout,
                     std::string& why_not) {
  const auto deadline = Clock::now() + timeout;
  std::string at = url;
  for (int redirects = 0;; ++redirects) {
    const std::optional<Url> parts = parse(at, why_not);
    if (!parts) return nullptr;
    std::string redirect;
    BioPtr answer = exchange_once(*parts, request, deadline, redirect, why_not);
    if (answer || redirect.empty()) return answer;
    if (redirects == kMaxRedirects) {
      why_not = "more than " + std::to_string(kMaxRedirects) + " redirects";
      return nullptr;
    }
    at = redirect;
  }
}

}  // namespace kortti::policy
