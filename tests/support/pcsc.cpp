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

constexpr const char* kVpcdDriver = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";

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

Pcscd::Pcscd(int readers) : readers_(readers) {
  if (readers < 2 || readers > 16 || readers % 2 != 0) throw std::invalid_argument("Pcscd: 2, 4, ... 16 readers");
  ::setenv("PCSCLITE_CSOCK_NAME", socket().c_str(), 1);
  fs::create_directories(dir_ / "conf");
  auto ports_free = [&] {
    for (int i = 0; i < readers; ++i)
      if (!tcp_port_free(base_port_ + i)) return false;
    return true;
  };
  for (int attempt = 0; attempt < 8; ++attempt) {
    // An even base port in a range of our own; each vpcd takes a port and
    // the next, so reader n listens on base + n.
    base_port_ = 20000 + 2 * static_cast<int>((::getpid() * 7919 + attempt * 104729) % 15000);
    if (!ports_free()) continue;
    for (int pair = 0; pair < readers / 2; ++pair) {
      // pcscd names readers of one name alike ("Virtual PCD 00 00"), and
      // vpcd keeps one pair's state per loaded library: each further pair
      // has a name and a copy of the driver of its own.
      std::string name = "Virtual PCD";
      fs::path driver = kVpcdDriver;
      if (pair > 0) {
        name += " " + std::string(1, static_cast<char>('A' + pair));
        driver = dir_ / ("libifdvpcd-" + std::to_string(pair) + ".so");
        fs::copy_file(kVpcdDriver, driver, fs::copy_options::overwrite_existing);
      }
      char conf[512];
      std::snprintf(conf, sizeof conf,
                    "FRIENDLYNAME \"%s\"\nDEVICENAME   /dev/null:0x%X\nLIBPATH      %s\nCHANNELID    0x%X\n",
                    name.c_str(), base_port_ + 2 * pair, driver.c_str(), base_port_ + 2 * pair);
      write_file(dir_ / "conf" / ("vpcd" + (pair == 0 ? std::string() : "-" + std::to_string(pair))), conf);
    }
    if (launch()) return;
    kill();
  }
  throw std::runtime_error("cannot start a private pcscd; its log:\n" + log());
}

Pcscd::Pcscd(NoReaders) : readers_(0) {
  ::setenv("PCSCLITE_CSOCK_NAME", socket().c_str(), 1);
  fs::create_directories(dir_ / "conf");
  if (!launch()) throw std::runtime_error("cannot start a private pcscd; its log:\n" + log());
}

Pcscd::~Pcscd() { kill(); }

bool Pcscd::launch() {
  pid_ = spawn_logged({"systemd-socket-activate", "-l", socket(), "pcscd", "-f", "-c", (dir_ / "conf").string()}, {},
                      dir_ / "pcscd.log");
  // Ready when every reader is listed and listening, or none when it has
  // none (opensc-tool asks through the socket, which also starts pcscd).
  for (int i = 0; i < 100; ++i) {
    auto r = run({"opensc-tool", "-l"}, env());
    if (readers_ == 0 && r.out.find("No smart card readers found") != std::string::npos) return true;
    if (readers_ > 0 && occurrences(r.out, "Virtual PCD") == static_cast<std::size_t>(readers_) &&
        !tcp_port_free(base_port_ + readers_ - 1))
      return true;
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
