// `openssl s_server -www` demanding a client certificate: the TLS peer of the
// card-key tests. Its status page is the server's own account of the
// handshake.

#include <algorithm>
#include <csignal>
#include <thread>

#include "tests/support/process.hpp"
#include "tests/support/support.hpp"

namespace kortti::test {

TlsServer::TlsServer(const std::vector<std::string>& options, const fs::path& files,
                     const std::vector<std::string>& client_issuers)
    : port_(closed_port()) {
  const auto made = run({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                         (dir_ / "server.key").string(), "-out", certificate().string(), "-subj", "/CN=localhost",
                         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2"});
  if (made.status != 0) throw std::runtime_error("openssl req: " + made.err);
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

}  // namespace kortti::test
