#pragma once

// The SCS interface as a browser page and an attacker reach it: curl over
// HTTPS against korttid (--user-instance, [scs] enabled) over SoftHSM2, the
// pinentry test double answering korttid's PIN dialog. Shared by the
// interface's tests (scs_test.cpp) and its signatures' (scs_sign_test.cpp).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "tests/integration/softhsm_fixture.hpp"

namespace kortti::test {

inline constexpr const char* kOrigin = "https://ehr.example.fi";
inline constexpr const char* kForeign = "https://evil.example";

struct Http {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case; the last of a name
  std::string body;
  std::string err;
  [[nodiscard]] Json json() const { return Json::parse(body, nullptr, false); }
  [[nodiscard]] bool has(const std::string& name) const { return headers.contains(name); }
  [[nodiscard]] std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// The listener's certificate as the user makes it: kortti scs setup,
// leaving the browsers' databases alone.
inline void make_listener_certificate(const fs::path& dir) {
  const CommandResult r = run({kortti_binary().string(), "scs", "setup", "--dir", dir.string(), "--no-nss"});
  if (r.status != 0) throw std::runtime_error("kortti scs setup: " + r.err);
}

// A page's connection that makes its TLS handshake and then sends nothing:
// a browser's preconnect, or a page holding slots.
class IdleTlsConnection {
 public:
  explicit IdleTlsConnection(int port) : ctx_(SSL_CTX_new(TLS_client_method())) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return;
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    char name[] = "localhost";
    SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, name);
    open_ = SSL_connect(ssl_) == 1;
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~IdleTlsConnection() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
  }
  IdleTlsConnection(const IdleTlsConnection&) = delete;
  IdleTlsConnection& operator=(const IdleTlsConnection&) = delete;

  // The handshake was made (not refused before TLS).
  [[nodiscard]] bool handshake_made() const { return open_; }
  // Whether korttid closed it within `timeout` (session tickets aside,
  // nothing else ever comes).
  bool closed_within(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      char byte = 0;
      const int n = SSL_read(ssl_, &byte, 1);
      if (n <= 0 && SSL_get_error(ssl_, n) != SSL_ERROR_WANT_READ) return true;
    }
    return false;
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool open_ = false;
};

class Scs : public SoftHsmDaemonTest {
 protected:
  void SetUp() override {
    make_listener_certificate(files_.path());
    port_ = closed_port();
    launch("");
  }

  // korttid with [scs] enabled and `more` lines added to the table.
  void launch(const std::string& more, std::vector<std::string> args = {"--user-instance"}, DaemonOptions o = {}) {
    o.extra = "[scs]\nenabled = true\nport = " + std::to_string(port_) + "\nallowed_origins = [\"" + kOrigin +
              "\", \"" + page_origin_ + "\"]\ncertificate = \"" + (files_ / "localhost.pem").string() + "\"\nkey = \"" +
              (files_ / "localhost.key").string() + "\"\n" + more;
    dialogs_.use_in(o);
    o.args = std::move(args);
    start(std::move(o));
    dialogs_.answer({"pin:" + std::string(kPin)});
  }

  [[nodiscard]] std::string url(const std::string& path) const {
    return "https://localhost:" + std::to_string(port_) + path;
  }

  // GET /version as uid nobody. -k: nobody cannot read the test's CA file,
  // and the handshake is never reached anyway.
  [[nodiscard]] CommandResult curl_as_nobody() const {
    return run({"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "curl", "-sSk", "--max-time", "20",
                url("/version")});
  }

  // One request with curl, trusting only the listener's CA. `headers` as
  // "Name: value"; a body is POSTed.

  Http curl(const std::string& method, const std::string& path, const std::vector<std::string>& headers,
            const std::optional<std::string>& body = std::nullopt, const std::string& host = "localhost") {
    TempDir tmp;
    std::vector<std::string> argv = {"curl",       "-sS",
                                     "--cacert",   (files_ / "ca.pem").string(),
                                     "-X",         method,
                                     "-o",         (tmp / "body").string(),
                                     "-D",         (tmp / "headers").string(),
                                     "-w",         "%{http_code}",
                                     "--max-time", "60"};
    for (const auto& h : headers) argv.insert(argv.end(), {"-H", h});
    if (body) {
      write_file(tmp / "request", *body);
      argv.insert(argv.end(), {"--data-binary", "@" + (tmp / "request").string()});
    }
    argv.push_back("https://" + host + ":" + std::to_string(port_) + path);
    const CommandResult r = run(argv);
    Http out;
    out.err = r.err;
    out.status = std::atoi(r.out.c_str());
    if (fs::exists(tmp / "body")) out.body = read_file(tmp / "body");
    if (fs::exists(tmp / "headers")) {
      std::istringstream lines(read_file(tmp / "headers"));
      std::string line;
      while (std::getline(lines, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        out.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      }
    }
    return out;
  }

  Http sign(const Json& request, const std::string& origin = kOrigin) {
    return curl("POST", "/sign", {"Origin: " + origin, "Content-Type: application/json"}, to_std(request.dump()));
  }

  static Json signature_request(const std::string& type, const std::string& content_type, const Bytes& content,
                                const std::string& hash = "SHA256", const Json& selector = Json()) {
    Json r = {{"version", "1.1"},
              {"signatureType", wstr(type)},
              {"hashAlgorithm", wstr(hash)},
              {"contentType", wstr(content_type)},
              {"content", wstr(base64_encode(content))}};
    if (!selector.is_null()) r["selector"] = selector;
    return r;
  }

  // The card's certificate (certificates.list) whose DER is `der`; null
  // when no card has it.
  Json card_certificate(const Json& der, const char* purpose) {
    for (const Json& c : daemon_->connect()->call("certificates.list", {{"purpose", purpose}}))
      if (c["der"] == der) return c;
    return Json();
  }
  static std::string scheme_of(const Json& card_cert) { return card_cert["key_type"] == "ec" ? "ecdsa" : "pkcs1"; }

  static int reason(const Http& h) {
    const Json j = h.json();
    return j.is_object() && j.contains("reasonCode") ? j["reasonCode"].get<int>() : -1;
  }

  // A page's /sign sent by curl in the background (its answer's body to
  // `body`), once korttid's dialog for it is up (`dialog`: the dialog's pid,
  // or -1 if none came within 10 s).
  struct Background {
    std::unique_ptr<BackgroundCommand> curl;
    pid_t dialog = -1;
    fs::path body;
  };
  Background sign_in_background(const Json& request, const TempDir& dir) {
    write_file(dir / "request", to_std(request.dump()));
    Background b;
    b.body = dir / "body";
    b.curl = std::make_unique<BackgroundCommand>(
        std::vector<std::string>{"curl", "-sS", "--cacert", (files_ / "ca.pem").string(), "-H",
                                 std::string("Origin: ") + kOrigin, "-H", "Content-Type: application/json",
                                 "--data-binary", "@" + (dir / "request").string(), "-o", b.body.string(),
                                 url("/sign")},
        dir / "curl.log");
    const fs::path shown = dialogs_.dir() / "pid-1";
    std::string pid;
    if (eventually([&] { return fs::exists(shown) && !(pid = read_file(shown)).empty(); }, std::chrono::seconds(10)))
      b.dialog = std::stoi(pid);
    return b;
  }

  TempDir files_;
  PinentryDouble dialogs_;
  int port_ = 0;
  std::string page_origin_ = "https://localhost:8443";
};

}  // namespace kortti::test
