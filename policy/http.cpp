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

// host:port of the http_proxy the environment names for `host` (no_proxy
// taken into account, as OpenSSL's own client does), or nothing.
std::optional<std::pair<std::string, std::string>> proxy_for(const std::string& host, std::string& why_not,
                                                             bool& unusable) {
  const char* proxy = OSSL_HTTP_adapt_proxy(nullptr, nullptr, host.c_str(), 0);
  if (proxy == nullptr) return std::nullopt;
  char *proxy_host = nullptr, *proxy_port = nullptr;
  const int parsed =
      OSSL_HTTP_parse_url(proxy, nullptr, nullptr, &proxy_host, &proxy_port, nullptr, nullptr, nullptr, nullptr);
  const OpensslString owned_host(proxy_host), owned_port(proxy_port);
  if (parsed != 1) {
    ERR_clear_error();
    why_not = std::string("the http_proxy ") + proxy + " cannot be parsed";
    unusable = true;
    return std::nullopt;
  }
  return std::pair{std::string(proxy_host), std::string(proxy_port)};
}

// One request to `url` on a connection of its own; the answer, or null
// with why not, or with `redirect` set to where the server sent it.
BioPtr exchange_once(const Url& url, const HttpRequest& request, Clock::time_point deadline, std::string& redirect,
                     std::string& why_not) {
  bool unusable = false;
  const auto proxy = proxy_for(address_of(url.host), why_not, unusable);
  if (unusable) return nullptr;
  const std::string host = proxy ? address_of(proxy->first) : address_of(url.host);
  const std::string port = proxy ? proxy->second : url.port;
  const int fd = connect_within(host, port, deadline, why_not);
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
                                         proxy ? url.host.c_str() : nullptr, proxy ? url.port.c_str() : nullptr,
                                         url.path.c_str()) == 1 &&
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
