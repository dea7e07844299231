// The TLS peers of the card-key tests: `openssl s_server -www` demanding a
// client certificate (its status page is the server's own account of the
// handshake), a server that holds off reading, and a page server.

#include <algorithm>
#include <csignal>
#include <sstream>
#include <thread>

#include "tests/support/process.hpp"
#include "tests/support/support.hpp"

namespace kortti::test {

namespace {

// A self-signed certificate for localhost and 127.0.0.1, dir/server.pem,
// and its key, dir/server.key: what the tunnels' tests trust as their
// upstream's (ca_file).
void make_localhost_certificate(const fs::path& dir) {
  const auto made = run({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                         (dir / "server.key").string(), "-out", (dir / "server.pem").string(), "-subj", "/CN=localhost",
                         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2"});
  if (made.status != 0) throw std::runtime_error("openssl req: " + made.err);
}

}  // namespace

TlsServer::TlsServer(const std::vector<std::string>& options, const fs::path& files,
                     const std::vector<std::string>& client_issuers)
    : port_(closed_port()) {
  make_localhost_certificate(dir_.path());
  // The client certificates' issuers and their roots.
  std::string issuers;
  for (const auto& name : client_issuers)
    issuers +=
        read_file(name.find('/') != std::string::npos ? pki_dir() / name : pki_dir() / "ca" / (name + "-chain.pem"));
  write_file(dir_ / "clients.pem", issuers);
  std::vector<std::string> argv = {"openssl", "s_server",
                                   "-accept", "127.0.0.1:" + std::to_string(port_),
                                   "-cert",   certificate().string(),
                                   "-key",    (dir_ / "server.key").string()};
  if (!client_issuers.empty())
    argv.insert(argv.end(), {"-CAfile", (dir_ / "clients.pem").string(), "-Verify", "2", "-verify_return_error"});
  argv.insert(argv.end(), options.begin(), options.end());
  // The status page, unless the test asked for the echo server (-rev) or
  // for files (-WWW serves them from its working directory).
  if (!files.empty()) {
    argv.push_back("-WWW");
    argv.insert(argv.begin(), {"sh", "-c", "cd \"$0\" && exec \"$@\"", files.string()});
  } else if (std::find(options.begin(), options.end(), "-rev") == options.end()) {
    argv.push_back("-www");
  }
  pid_ = spawn_listening(argv, dir_ / "s_server.log", port_);
}

TlsServer::~TlsServer() { stop(); }
void TlsServer::stop() { reap(pid_, SIGTERM); }
std::string TlsServer::log() const { return read_file(dir_ / "s_server.log"); }

HoldingServer::HoldingServer() : port_(closed_port()) {
  make_localhost_certificate(dir_.path());
  write_file(dir_ / "server.py", R"(import os, socket, ssl, sys, time
port, cert, key, clients, go, out = sys.argv[1:7]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_cert_chain(cert, key)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(clients)
conn, _ = socket.create_server(("127.0.0.1", int(port))).accept()
tls = ctx.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
tls.sendall(b"hei\n")  # which the client never reads
while not os.path.exists(go):
    time.sleep(0.05)
total, clean = 0, 0
try:
    while True:
        data = tls.recv(65536)
        if not data:
            clean = 1
            break
        total += len(data)
except (ssl.SSLError, OSError) as e:
    print("ended:", e, flush=True)
with open(out + ".part", "w") as f:
    f.write(f"{total} {clean}\n")
os.rename(out + ".part", out)
)");
  pid_ = spawn_listening({"python3", (dir_ / "server.py").string(), std::to_string(port_), certificate().string(),
                          (dir_ / "server.key").string(), (pki_dir() / "ca" / "hc-rsa-chain.pem").string(),
                          (dir_ / "go").string(), (dir_ / "result").string()},
                         dir_ / "server.log", port_);
}

HoldingServer::~HoldingServer() { reap(pid_, SIGTERM); }
void HoldingServer::release() const { write_file(dir_ / "go", ""); }
std::string HoldingServer::log() const { return read_file(dir_ / "server.log"); }

std::optional<std::pair<std::uint64_t, bool>> HoldingServer::result() const {
  const fs::path result = dir_ / "result";
  if (!eventually([&] { return fs::exists(result); }, std::chrono::seconds(20))) return std::nullopt;
  std::istringstream in(read_file(result));
  std::uint64_t bytes = 0;
  int clean = 0;
  in >> bytes >> clean;
  return std::pair{bytes, clean == 1};
}

PageServer::PageServer(const fs::path& files) : port_(closed_port()) {
  write_file(dir_ / "x509.cnf",
             "[req]\ndistinguished_name=dn\n[dn]\n"
             "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n"
             "[leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
             "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n");
  const std::string cnf = (dir_ / "x509.cnf").string();
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {"openssl",
            "req",
            "-x509",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            (dir_ / "ca.key").string(),
            "-out",
            ca().string(),
            "-days",
            "2",
            "-subj",
            "/CN=kortti test web site CA",
            "-config",
            cnf,
            "-extensions",
            "ca"},
           {"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            (dir_ / "server.key").string(), "-out", (dir_ / "server.csr").string(), "-subj", "/CN=localhost", "-config",
            cnf},
           {"openssl", "x509", "-req", "-in", (dir_ / "server.csr").string(), "-CA", ca().string(), "-CAkey",
            (dir_ / "ca.key").string(), "-CAcreateserial", "-days", "2", "-extfile", cnf, "-extensions", "leaf", "-out",
            (dir_ / "server.pem").string()}}) {
    const CommandResult r = run(argv);
    if (r.status != 0) throw std::runtime_error(argv[1] + ": " + r.err);
  }
  pid_ = spawn_listening({"sh", "-c", "cd \"$0\" && exec \"$@\"", files.string(), "openssl", "s_server", "-accept",
                          "127.0.0.1:" + std::to_string(port_), "-cert", (dir_ / "server.pem").string(), "-key",
                          (dir_ / "server.key").string(), "-WWW"},
                         dir_ / "s_server.log", port_);
}

PageServer::~PageServer() { reap(pid_, SIGTERM); }

Browser::Browser(fs::path home) : home_(std::move(home)) {
  fs::create_directories(nssdb());
  if (run({"certutil", "-N", "--empty-password", "-d", "sql:" + nssdb().string()}).status != 0)
    throw std::runtime_error("certutil cannot make " + nssdb().string());
}

void Browser::trust(const fs::path& ca, const std::string& nickname) {
  if (run({"certutil", "-A", "-d", "sql:" + nssdb().string(), "-n", nickname, "-t", "C,,", "-i", ca.string()}).status !=
      0)
    throw std::runtime_error("certutil cannot add " + ca.string());
}

std::optional<std::string> Browser::page_output(const std::string& url, std::string& error) const {
  const CommandResult r =
      run({"timeout", "90", "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--user-data-dir=" + (home_ / "profile").string(), "--dump-dom", url},
          {{"HOME", home_.string()}});
  const std::string marker = "<pre id=\"out\">";
  const auto begin = r.out.find(marker);
  const auto end = r.out.find("</pre>");
  if (begin == std::string::npos || end == std::string::npos) {
    error = "no page from chromium (" + std::to_string(r.status) + "): " + r.out + r.err;
    return std::nullopt;
  }
  return r.out.substr(begin + marker.size(), end - begin - marker.size());
}

}  // namespace kortti::test
