// OCSP responses: OcspClient::query for the test PKI's physician (or revoked)
// certificate, against a responder on the loopback that answers the input as
// the body of its HTTP answer. query() is the smallest public entry: the
// response is parsed inside it (policy/ocsp.cpp, post()), and nothing takes
// a response as bytes.
//
// As for CRLs, the first byte's low bit asks the harness to re-sign the
// basic response OpenSSL parses from the rest with the responder's (test)
// key, so that the fuzzer gets past OCSP_basic_verify to what korttid does
// with a response it trusts; the second bit picks the certificate.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>
#include <thread>

#include "common/openssl.hpp"
#include "fuzz/support.hpp"
#include "policy/revocation.hpp"

namespace {

using namespace kortti;

X509Ptr certificate(const char* name) {
  const Bytes der = fuzz::data_file(name);
  const unsigned char* p = der.data();
  return X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

EvpPkeyPtr key(const char* name) {
  const Bytes der = fuzz::data_file(name);
  const unsigned char* p = der.data();
  return EvpPkeyPtr(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(der.size())));
}

struct Pki {
  X509Ptr leaf = certificate("leaf.der"), revoked = certificate("revoked.der"), issuer = certificate("issuer.der"),
          root = certificate("root.der"), responder = certificate("responder.der");
  EvpPkeyPtr responder_key = key("responder.key.der");
  X509StorePtr store{X509_STORE_new()};
  BorrowedX509StackPtr untrusted{sk_X509_new_null()};
  Pki() {
    if (!leaf || !revoked || !issuer || !root || !responder || !responder_key || !untrusted) std::abort();
    X509_STORE_add_cert(store.get(), root.get());
    sk_X509_push(untrusted.get(), issuer.get());
  }
};

const Pki& pki() {
  static const Pki p;
  return p;
}

// One HTTP/1.0 responder thread on 127.0.0.1: reads a request (headers and
// Content-Length bytes), answers `body`, closes.
class Responder {
 public:
  Responder() {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listener_, 16) != 0 || ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      std::abort();
    url_ = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/";
    std::thread([this] { serve(); }).detach();
  }

  [[nodiscard]] const std::string& url() const { return url_; }
  void set_body(std::string body) {
    std::lock_guard lock(mutex_);
    body_ = std::move(body);
  }

 private:
  void serve() {
    for (;;) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::string request;
      char buf[4096];
      std::size_t need = std::string::npos;
      while (need == std::string::npos || request.size() < need) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<std::size_t>(n));
        if (const auto end = request.find("\r\n\r\n"); need == std::string::npos && end != std::string::npos) {
          std::size_t length = 0;
          if (const auto cl = request.find("Content-Length: "); cl != std::string::npos)
            length = std::stoul(request.substr(cl + 16));
          need = end + 4 + length;
        }
      }
      std::string answer;
      {
        std::lock_guard lock(mutex_);
        answer = "HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: " +
                 std::to_string(body_.size()) + "\r\n\r\n" + body_;
      }
      for (std::size_t done = 0; done < answer.size();) {
        const ssize_t n = ::write(fd, answer.data() + done, answer.size() - done);
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
      }
      ::close(fd);
    }
  }

  int listener_ = -1;
  std::string url_;
  std::mutex mutex_;
  std::string body_;
};

Responder& responder() {
  static Responder r;
  return r;
}

// The basic response of the input signed again by the responder, in a
// successful OCSPResponse; nothing when OpenSSL cannot read it.
std::optional<std::string> resigned(const std::uint8_t* data, std::size_t size) {
  const unsigned char* p = data;
  const OcspResponsePtr response(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(size)));
  if (!response) return std::nullopt;
  const OcspBasicPtr basic(OCSP_response_get1_basic(response.get()));
  if (!basic) return std::nullopt;
  if (OCSP_basic_sign(basic.get(), pki().responder.get(), pki().responder_key.get(), EVP_sha256(), nullptr, 0) != 1)
    return std::nullopt;
  const OcspResponsePtr again(OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic.get()));
  if (!again) return std::nullopt;
  unsigned char* der = nullptr;
  const int n = i2d_OCSP_RESPONSE(again.get(), &der);
  const OpensslBytes owned(der);
  if (n <= 0) return std::nullopt;
  return std::string(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)pki();
  (void)responder();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  std::string body(fuzz::as_text(data + 1, size - 1));
  if (mode & 1) {
    auto again = resigned(data + 1, size - 1);
    ERR_clear_error();
    if (!again) return 0;
    body = std::move(*again);
  }
  responder().set_body(std::move(body));
  // A fresh client per input: it caches answers and unanswering responders.
  // The responder's canned answers carry no nonce, or another one.
  static policy::RevocationOptions options = [] {
    policy::RevocationOptions o;
    o.ocsp_nonce = policy::OcspNonce::if_present;
    o.timeout = std::chrono::seconds(5);
    return o;
  }();
  policy::OcspClient client(options);
  X509* leaf = (mode & 2) ? pki().revoked.get() : pki().leaf.get();
  std::string why_not;
  try {
    (void)client.query(leaf, pki().issuer.get(), responder().url(), pki().store.get(), pki().untrusted.get(),
                       std::chrono::system_clock::now(), std::chrono::seconds(300), why_not);
  } catch (const std::exception& e) {
    fuzz::unexpected_exception("ocsp", e);
  }
  ERR_clear_error();
  return 0;
}
