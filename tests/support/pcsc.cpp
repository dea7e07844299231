#include "tests/support/support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/support/process.hpp"

namespace kortti::test {

namespace {

bool tcp_port_free(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

Pcscd::Pcscd() {
  ::setenv("PCSCLITE_CSOCK_NAME", socket().c_str(), 1);
  fs::create_directories(dir_ / "conf");
  for (int attempt = 0; attempt < 8; ++attempt) {
    // An even base port in a range of our own; vpcd takes it and the next.
    base_port_ = 20000 + 2 * static_cast<int>((::getpid() * 7919 + attempt * 104729) % 15000);
    if (!tcp_port_free(base_port_) || !tcp_port_free(base_port_ + 1)) continue;
    char conf[256];
    std::snprintf(conf, sizeof conf,
                  "FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME   /dev/null:0x%X\n"
                  "LIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID    0x%X\n",
                  base_port_, base_port_);
    write_file(dir_ / "conf" / "vpcd", conf);
    if (launch()) return;
    kill();
  }
  throw std::runtime_error("cannot start a private pcscd; its log:\n" + log());
}

Pcscd::Pcscd(NoReaders) : readers_(false) {
  ::setenv("PCSCLITE_CSOCK_NAME", socket().c_str(), 1);
  fs::create_directories(dir_ / "conf");
  if (!launch()) throw std::runtime_error("cannot start a private pcscd; its log:\n" + log());
}

Pcscd::~Pcscd() { kill(); }

bool Pcscd::launch() {
  pid_ = spawn_logged({"systemd-socket-activate", "-l", socket(), "pcscd", "-f", "-c", (dir_ / "conf").string()}, {},
                      dir_ / "pcscd.log");
  // Ready when both readers are listed, or none when it has none
  // (opensc-tool asks through the socket, which also starts pcscd).
  for (int i = 0; i < 100; ++i) {
    auto r = run({"opensc-tool", "-l"}, env());
    if (!readers_ && r.out.find("No smart card readers found") != std::string::npos) return true;
    if (readers_ && r.out.find("Virtual PCD 00 01") != std::string::npos && !tcp_port_free(base_port_ + 1)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

void Pcscd::kill() { reap(pid_, SIGKILL); }

void Pcscd::start() {
  if (!launch()) throw std::runtime_error("pcscd did not come back; its log:\n" + log());
}

std::string Pcscd::log() const { return read_file(dir_ / "pcscd.log"); }

VirtualCard::VirtualCard(const Pcscd& pcscd, CardOptions options) {
  guid_ = options.guid;
  if (guid_.empty()) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%024x%08x", 0x6b6f72u,
                  static_cast<unsigned>(std::hash<std::string>{}(options.person) % 0xFFFFFF) * 16 +
                      static_cast<unsigned>(options.reader));
    guid_ = buf;
  }
  const fs::path person = pki_dir() / "people" / options.person;
  std::vector<std::string> argv = {(programs_dir() / "tests/vcard/kortti-vcard").string(),
                                   "--port",
                                   std::to_string(pcscd.port(options.reader)),
                                   "--guid",
                                   guid_,
                                   "--auth-cert",
                                   (person / "auth.pem").string(),
                                   "--auth-key",
                                   (person / "auth.key").string(),
                                   "--sign-cert",
                                   (person / "sign.pem").string(),
                                   "--sign-key",
                                   (person / "sign.key").string(),
                                   "--events",
                                   (dir_ / "events").string()};
  argv.insert(argv.end(), options.args.begin(), options.args.end());
  pid_ = spawn_logged(argv, {{"VCARD_PIN", options.pin}}, dir_ / "vcard.log");
}

VirtualCard::~VirtualCard() { pull(); }

void VirtualCard::pull() { reap(pid_, SIGKILL); }

std::string VirtualCard::token_id() const { return "piv_II-" + guid_.substr(16); }

std::string VirtualCard::log() const { return read_file(dir_ / "vcard.log"); }

// Empty until the card has seen something: read_file of a missing file.
std::string VirtualCard::events() const { return read_file(dir_ / "events"); }

int VirtualCard::apdus(std::uint8_t ins, Apdu phase) const {
  std::string text = events();
  // A line the card is still writing is not an event yet.
  text.erase(text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1);
  char wanted[4];
  std::snprintf(wanted, sizeof wanted, "%02X", ins);
  int count = 0;
  bool in_chain = false;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string what, code, flag;
    fields >> what >> code >> flag;
    if (what == "insert" || what == "reset") in_chain = false;
    if (code != wanted) continue;
    const bool chained = flag == "chained";
    if (what == "begin") {
      if (phase == Apdu::begun && !in_chain) ++count;
      in_chain = chained;
    } else if (what == "end" && phase == Apdu::answered && !chained) {
      ++count;
    }
  }
  return count;
}

bool VirtualCard::wait_for_apdu(std::uint8_t ins, int nth, Apdu phase, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (apdus(ins, phase) >= nth) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace kortti::test
