#include "tests/support/support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/support/process.hpp"

namespace kortti::test {

OcspResponder::OcspResponder(const std::string& ca, int port, std::optional<fs::path> index, std::string signer)
    : port_(port != 0       ? port
            : ca == "hc-ec" ? kEcPort
                            : kRsaPort) {
  const fs::path pki = pki_dir();
  if (signer.empty()) signer = ca;
  if (listening(port_)) throw std::runtime_error("something already listens on port " + std::to_string(port_));
  // OpenSSL 3.0's responder takes a port, not an address: it listens on all
  // interfaces, and the tests ask it on 127.0.0.1 only.
  pid_ = spawn_listening({"openssl", "ocsp", "-index", index.value_or(pki / "ca" / ca / "index.txt").string(), "-port",
                          std::to_string(port_), "-rsigner", (pki / "ocsp" / (signer + ".pem")).string(), "-rkey",
                          (pki / "ocsp" / (signer + ".key")).string(), "-CA", (pki / "ca" / (ca + ".pem")).string(),
                          "-nmin", "10", "-ignore_err"},
                         dir_ / "ocsp.log", port_);
}

OcspResponder::~OcspResponder() { stop(); }

void OcspResponder::stop() { reap(pid_, SIGTERM); }

std::string OcspResponder::log() const { return read_file(dir_ / "ocsp.log"); }

int OcspResponder::requests() const {
  const std::string text = log();
  int n = 0;
  for (auto at = text.find("Received request"); at != std::string::npos; at = text.find("Received request", at + 1))
    ++n;
  return n;
}

int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace kortti::test
