// The revocation checks' HTTP exchange (policy/http.cpp) against small
// HTTP servers of the test's own on loopback: an IPv6 address in the URL,
// redirects, and the http_proxy of the environment, which the checks take
// as OpenSSL's own client did before they made the connection themselves.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>

#include "policy/revocation.hpp"

namespace kortti::test {
namespace {

using namespace std::chrono_literals;

// A DER value (SEQUENCE { INTEGER 5 }): the checks read answers as ASN.1.
const std::string kDer("\x30\x03\x02\x01\x05", 5);

// Answers each connection with what `answer` makes of the request line,
// and keeps the requests' heads.
class TinyHttp {
 public:
  explicit TinyHttp(bool ipv6, std::function<std::string(const std::string& request_line)> answer)
      : answer_(std::move(answer)) {
    fd_ = ::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ipv6) {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_loopback;
      bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
      socklen_t len = sizeof a;
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
      port_ = ntohs(a.sin6_port);
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
      socklen_t len = sizeof a;
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
      port_ = ntohs(a.sin_port);
    }
    bound_ = bound_ && ::listen(fd_, 16) == 0;
    thread_ = std::thread([this] { serve(); });
  }
  ~TinyHttp() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  TinyHttp(const TinyHttp&) = delete;
  TinyHttp& operator=(const TinyHttp&) = delete;

  [[nodiscard]] bool bound() const { return bound_; }
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::vector<std::string> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

  static std::string ok(const std::string& body) {
    return "HTTP/1.0 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  static std::string found(const std::string& location) {
    return "HTTP/1.0 302 Found\r\nLocation: " + location + "\r\nContent-Length: 0\r\n\r\n";
  }

 private:
  void serve() {
    for (;;) {
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      std::string head;
      char buf[1024];
      while (head.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        head.append(buf, static_cast<std::size_t>(n));
      }
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(head);
      }
      const std::string reply = answer_(head.substr(0, head.find("\r\n")));
      (void)!::write(c, reply.data(), reply.size());
      ::close(c);
    }
  }

  std::function<std::string(const std::string&)> answer_;
  int fd_ = -1;
  bool bound_ = false;
  int port_ = 0;
  mutable std::mutex mutex_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

// A GET of `url` as a CRL download makes it: the body, or "none: why".
std::string get(const std::string& url) {
  std::string why;
  const BioPtr body =
      policy::http_exchange(url, policy::HttpRequest{nullptr, nullptr, nullptr, nullptr, 1024}, 5s, why);
  if (!body) return "none: " + why;
  char* data = nullptr;
  const long n = BIO_get_mem_data(body.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

// The environment's http_proxy for one test.
class ProxyVariable {
 public:
  explicit ProxyVariable(const std::string& value) { ::setenv("http_proxy", value.c_str(), 1); }
  ~ProxyVariable() { ::unsetenv("http_proxy"); }
  ProxyVariable(const ProxyVariable&) = delete;
  ProxyVariable& operator=(const ProxyVariable&) = delete;
};

TEST(HttpExchange, AnIpv6AddressInTheUrlIsConnectedToWithoutALookup) {
  TinyHttp server(true, [](const std::string&) { return TinyHttp::ok(kDer); });
  ASSERT_TRUE(server.bound()) << "no IPv6 loopback";
  EXPECT_EQ(get("http://[::1]:" + std::to_string(server.port()) + "/hc-rsa.crl"), kDer);
  ASSERT_EQ(server.requests().size(), 1U);
  EXPECT_EQ(server.requests()[0].rfind("GET /hc-rsa.crl HTTP/1.0\r\n", 0), 0U) << server.requests()[0];
  EXPECT_NE(server.requests()[0].find("Host: [::1]"), std::string::npos) << server.requests()[0];
}

TEST(HttpExchange, RedirectsAreFollowedUpToFive) {
  TinyHttp target(false, [](const std::string&) { return TinyHttp::ok(kDer); });
  const std::string real = "http://127.0.0.1:" + std::to_string(target.port()) + "/real.crl";
  TinyHttp moved(false, [&real](const std::string&) { return TinyHttp::found(real); });
  ASSERT_TRUE(target.bound() && moved.bound());
  EXPECT_EQ(get("http://127.0.0.1:" + std::to_string(moved.port()) + "/old.crl"), kDer);
  EXPECT_EQ(target.requests().size(), 1U);

  std::string self;
  TinyHttp loop(false, [&self](const std::string&) { return TinyHttp::found(self); });
  self = "http://127.0.0.1:" + std::to_string(loop.port()) + "/again.crl";
  const std::string a = get(self);
  EXPECT_NE(a.find("more than 5 redirects"), std::string::npos) << a;
  EXPECT_EQ(loop.requests().size(), 6U);
}

TEST(HttpExchange, TheEnvironmentsHttpProxyIsUsedAndTheNameLeftToIt) {
  // The proxy answers for a name no name server knows: korttid must not
  // look it up, and must ask for the whole URL.
  TinyHttp proxy(false, [](const std::string&) { return TinyHttp::ok(kDer); });
  ASSERT_TRUE(proxy.bound());
  const ProxyVariable variable("http://127.0.0.1:" + std::to_string(proxy.port()));
  EXPECT_EQ(get("http://crl.kortti-test.invalid/hc-rsa.crl"), kDer);
  ASSERT_EQ(proxy.requests().size(), 1U);
  const std::string request = proxy.requests()[0];
  EXPECT_EQ(request.rfind("GET http://crl.kortti-test.invalid:80/hc-rsa.crl HTTP/1.0\r\n", 0), 0U) << request;
  EXPECT_NE(request.find("Host: crl.kortti-test.invalid"), std::string::npos) << request;
}

TEST(HttpExchange, HttpsIsRefused) {
  const std::string a = get("https://127.0.0.1:1/x.crl");
  EXPECT_NE(a.find("https is not used"), std::string::npos) << a;
}

}  // namespace
}  // namespace kortti::test
