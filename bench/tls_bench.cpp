// TLS client authentication through a korttid tunnel (the card key on
// SoftHSM2) against an in-process OpenSSL client that holds the same key in
// a PEM file, both to the same `openssl s_server`, interleaved in one run.
//
// Goals (issue 13): a full handshake through the tunnel (connect, handshake
// with the card's signature, one HTTP request and its answer) at p50 <= 1.3x
// the direct client's; a 64 MB download through a tunnel at >= 0.8x the
// throughput of a direct TLS connection (s_server -WWW serving a file).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <vector>

#include "common/openssl.hpp"
#include "tests/support/support.hpp"

namespace {

using namespace kortti;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kHandshakes = 60;
constexpr std::size_t kBulkBytes = 64U * 1024 * 1024;
constexpr int kBulkRuns = 3;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int tcp_connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("tcp connect");
  return fd;
}

int unix_connect(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("unix connect");
  return fd;
}

// The direct side: this process's own OpenSSL with the key from its file.
struct Direct {
  SSL_CTX* ctx = nullptr;
  Direct(const fs::path& cert, const fs::path& key, const fs::path& server_cert) {
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_use_certificate_file(ctx, cert.c_str(), SSL_FILETYPE_PEM);
    SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM);
    SSL_CTX_load_verify_locations(ctx, server_cert.c_str(), nullptr);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    // Each handshake a full one, as through the tunnel (no resumption), and
    // no chain built from the server's roots at each one, as the tunnel
    // builds none: the same TLS work on both sides.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
  }
  ~Direct() { SSL_CTX_free(ctx); }
  SSL* connect(int fd) const {
    SSL* ssl = SSL_new(ctx);
    SSL_set1_host(ssl, "localhost");
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) throw std::runtime_error(openssl_error("direct handshake"));
    return ssl;
  }
};

std::size_t read_to_end(const std::function<long(char*, std::size_t)>& read) {
  static char buf[65536];
  std::size_t total = 0;
  for (long n; (n = read(buf, sizeof buf)) > 0;) total += static_cast<std::size_t>(n);
  return total;
}

// korttid with one upstream, `server`, listening on dir/socket, the card's
// PIN1 session open.
std::unique_ptr<test::Daemon> tunnel_daemon(const test::SoftHsm& hsm, const test::TlsServer& server,
                                            const fs::path& dir, const std::string& socket) {
  test::DaemonOptions o;
  o.env["SOFTHSM2_CONF"] = hsm.conf().string();
  o.log_level = "warn";
  o.revocation = "ocsp = false\ncrl = false\n";
  // KORTTI_BENCH_AUDIT=DIR puts the audit trail there (a tmpfs shows what
  // its fdatasync costs each handshake).
  const char* audit_dir = std::getenv("KORTTI_BENCH_AUDIT");
  o.audit_file = (audit_dir != nullptr ? fs::path(audit_dir) : dir) / (socket + ".audit");
  o.extra =
      "[tls]\nenabled = true\n[[tls.upstream]]\nname = \"b\"\nconnect = \"127.0.0.1:" + std::to_string(server.port()) +
      "\"\nserver_name = \"localhost\"\nca_file = \"" + server.certificate().string() + "\"\nlisten = \"" +
      (dir / socket).string() + "\"\n";
  auto d = std::make_unique<test::Daemon>(std::move(o));
  auto c = d->connect();
  const std::string token = test::str(c->call("tokens.list").at(0)["token_id"]);
  c->call("session.login", {{"token_id", wstr(token)}, {"pin", test::kPin}});
  return d;
}

// One request through the tunnel at `socket` (its connection and handshake
// included): the answer's bytes.
std::size_t through_tunnel(const fs::path& socket, const std::string& request) {
  const int fd = unix_connect(socket.string());
  (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  const std::size_t n = read_to_end([fd](char* d, std::size_t len) -> long { return ::read(fd, d, len); });
  ::close(fd);
  return n;
}

// The same request directly, on a connection of its own.
std::size_t direct(const Direct& client, int port, const std::string& request) {
  const int fd = tcp_connect(port);
  SSL* ssl = client.connect(fd);
  SSL_write(ssl, request.data(), static_cast<int>(request.size()));
  const std::size_t n = read_to_end([ssl](char* d, std::size_t len) -> long {
    std::size_t r = 0;
    return SSL_read_ex(ssl, d, len, &r) == 1 ? static_cast<long>(r) : -1;
  });
  SSL_free(ssl);
  ::close(fd);
  return n;
}

// What `fetch` took, in ms, and the bytes it answered; throws when it
// answered fewer than `least`.
std::pair<double, std::size_t> timed(const std::function<std::size_t()>& fetch, std::size_t least, const char* what) {
  const auto t = Clock::now();
  const std::size_t n = fetch();
  const double ms = ms_since(t);
  if (n < least) throw std::runtime_error(std::string("short answer ") + what + ": " + std::to_string(n) + " bytes");
  return {ms, n};
}

// The file s_server -WWW serves for the download.
void write_bulk_file(const fs::path& files) {
  fs::create_directories(files);
  const Bytes chunk = test::random_bytes(1 << 20);
  std::ofstream big(files / "big.bin", std::ios::binary);
  for (std::size_t i = 0; i < kBulkBytes / chunk.size(); ++i)
    big.write(reinterpret_cast<const char*>(chunk.data()), static_cast<std::streamsize>(chunk.size()));
}

}  // namespace

int main() {
  const fs::path person = test::pki_dir() / "people" / "physician";
  test::TempDir dir;
  test::SoftHsm hsm(dir / "hsm");
  hsm.add_token("card", {"physician/auth"});

  test::TlsServer page;  // -www: one page per connection
  write_bulk_file(dir / "files");
  test::TlsServer files({}, dir / "files");  // GET /big.bin
  auto page_daemon = tunnel_daemon(hsm, page, dir.path(), "page.sock");
  auto files_daemon = tunnel_daemon(hsm, files, dir.path(), "files.sock");
  const Direct page_client(person / "auth.pem", person / "auth.key", page.certificate());
  const Direct files_client(person / "auth.pem", person / "auth.key", files.certificate());

  const std::string get_page = "GET / HTTP/1.0\r\n\r\n";
  std::vector<double> tunnel_ms, direct_ms;
  for (int i = 0; i < kHandshakes; ++i) {
    tunnel_ms.push_back(
        timed([&] { return through_tunnel(dir / "page.sock", get_page); }, 1, "through the tunnel").first);
    direct_ms.push_back(timed([&] { return direct(page_client, page.port(), get_page); }, 1, "directly").first);
  }
  const std::string get_big = "GET /big.bin HTTP/1.0\r\n\r\n";
  auto mb_per_s = [](std::pair<double, std::size_t> t) {
    return static_cast<double>(t.second) / 1e6 / (t.first / 1000);
  };
  std::vector<double> tunnel_mbs, direct_mbs;
  for (int i = 0; i < kBulkRuns; ++i) {
    tunnel_mbs.push_back(
        mb_per_s(timed([&] { return through_tunnel(dir / "files.sock", get_big); }, kBulkBytes, "through the tunnel")));
    direct_mbs.push_back(
        mb_per_s(timed([&] { return direct(files_client, files.port(), get_big); }, kBulkBytes, "directly")));
  }

  std::printf("TLS client authentication, korttid tunnel vs direct OpenSSL, same run\n");
  std::printf("%-44s %12s %12s %8s %6s\n", "measure", "tunnel", "direct", "ratio", "goal");
  std::printf("%-44s %10.2f ms %10.2f ms %7.2fx %6s\n", "full handshake + one page, p50 (RSA-2048)", median(tunnel_ms),
              median(direct_ms), median(tunnel_ms) / median(direct_ms), "<=1.3");
  std::printf("%-44s %9.0f MB/s %9.0f MB/s %7.2fx %6s\n", "64 MB download from s_server -WWW, median",
              median(tunnel_mbs), median(direct_mbs), median(tunnel_mbs) / median(direct_mbs), ">=0.8");
  return 0;
}
