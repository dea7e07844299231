// The one HTTP exchange the revocation checks make: an OCSP request POSTed,
// or a CRL fetched.

#include <openssl/err.h>
#include <openssl/http.h>
#include <unistd.h>

#include "common/connect.hpp"
#include "policy/revocation.hpp"

namespace kortti::policy {

BioPtr http_exchange(const std::string& url, const HttpRequest& request, std::chrono::seconds timeout,
                     std::string& why_not) {
  char *host = nullptr, *port = nullptr, *path = nullptr;
  int tls = 0;
  const int parsed = OSSL_HTTP_parse_url(url.c_str(), &tls, nullptr, &host, &port, nullptr, &path, nullptr, nullptr);
  const OpensslString owned_host(host), owned_port(port), owned_path(path);
  if (parsed != 1) {
    ERR_clear_error();
    why_not = "the URL cannot be parsed";
    return nullptr;
  }
  if (tls != 0) {
    why_not = "https is not used for revocation data (RFC 5280 and RFC 6960 serve it over http, signed)";
    return nullptr;
  }
  // OpenSSL would look the name up itself, without a time limit: the
  // connection is made here, within the timeout, and OpenSSL given it.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const int fd = connect_within(host, port, deadline, why_not);
  if (fd < 0) return nullptr;
  BioPtr connection(BIO_new_socket(fd, BIO_CLOSE));
  if (!connection) {
    ::close(fd);
    why_not = openssl_error("out of memory");
    return nullptr;
  }
  // What is left of the timeout bounds the rest: the request and every
  // byte of the answer (OpenSSL reads the ASN.1 answer whole itself).
  const auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline - std::chrono::steady_clock::now() +
                                                                     std::chrono::milliseconds(999));
  BioPtr answer(OSSL_HTTP_transfer(nullptr, host, port, path, 0, nullptr, nullptr, connection.get(), connection.get(),
                                   nullptr, nullptr, 0, nullptr, request.content_type, request.body,
                                   request.expected_type, 1, request.max_bytes,
                                   static_cast<int>(std::max<long>(1, left.count())), 0));
  if (!answer) why_not = openssl_error("no answer");
  ERR_clear_error();
  return answer;
}

}  // namespace kortti::policy
