// kortti-vcard: a virtual smart card for vpcd (vsmartcard's virtual reader
// driver for pcscd). Connecting to vpcd is inserting the card; closing the
// connection (or ending this process) is pulling it.
//
// Wire protocol, both ways: 2-byte big-endian length, then the payload. vpcd
// speaks first. One byte is a control command: 00 power off, 01 power on,
// 02 reset (no answer), 04 get ATR (answer: the ATR). Longer is an APDU.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/pem.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "common/openssl.hpp"
#include "tests/vcard/piv.hpp"

namespace {

using namespace kortti::vcard;

// The 2020 DVV healthcare professional card (finland.md). OpenSC 0.23 knows
// no driver for it and finds the PIV application by SELECT instead.
constexpr const char* kHealthcareAtr = "3BDF96008031FE450031B8640429ECC173940180829000DA";

Bytes from_hex(const std::string& hex) {
  Bytes out;
  std::string clean;
  for (char c : hex)
    if (std::isxdigit(static_cast<unsigned char>(c))) clean.push_back(c);
  for (std::size_t i = 0; i + 1 < clean.size(); i += 2)
    out.push_back(static_cast<std::uint8_t>(std::stoi(clean.substr(i, 2), nullptr, 16)));
  return out;
}

KeySlot load_slot(const std::string& cert_path, const std::string& key_path) {
  FILE* f = std::fopen(cert_path.c_str(), "r");
  if (f == nullptr) throw std::runtime_error("cannot read " + cert_path);
  const kortti::X509Ptr cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (!cert) throw std::runtime_error("no certificate in " + cert_path);
  f = std::fopen(key_path.c_str(), "r");
  if (f == nullptr) throw std::runtime_error("cannot read " + key_path);
  kortti::EvpPkeyPtr key(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (!key) throw std::runtime_error("no private key in " + key_path);
  KeySlot slot;
  slot.certificate.resize(static_cast<std::size_t>(i2d_X509(cert.get(), nullptr)));
  unsigned char* p = slot.certificate.data();
  i2d_X509(cert.get(), &p);
  slot.key = std::move(key);  // shared: every copy of the card's config signs with it
  return slot;
}

bool read_exact(int fd, std::uint8_t* buf, std::size_t n) {
  while (n > 0) {
    // vpcd writes a frame's length and its payload separately; with Nagle on
    // its side the payload waits for our ACK, which Linux would delay by up
    // to 40 ms. Quick ACKs (re-armed before every read) keep an APDU round
    // trip at a fraction of a millisecond.
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    const ssize_t r = ::recv(fd, buf, n, 0);
    if (r <= 0) return false;
    buf += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool write_message(int fd, const Bytes& payload) {
  Bytes frame = {static_cast<std::uint8_t>(payload.size() >> 8), static_cast<std::uint8_t>(payload.size() & 0xFF)};
  frame.insert(frame.end(), payload.begin(), payload.end());
  return ::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(frame.size());
}

int connect_vpcd(const std::string& host, int port, std::chrono::milliseconds patience) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  for (;;) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return fd;
    }
    ::close(fd);
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// What the card saw, one line per event, for tests to wait on instead of
// guessing with sleeps: "begin 87" when a command APDU arrives (before any
// --delay), "end 87" once its answer is sent, "vanish 87" when it is dropped
// unanswered; " chained" marks a link of a command chain that more links
// follow. "insert" and "reset" (power off, on or reset) end any chain. Each
// line is one write(2) to a file opened O_APPEND, so a reader never waits on
// a buffer and sees whole lines, in order.
class EventLog {
 public:
  EventLog() = default;
  bool open(const std::string& path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd_ >= 0;
  }
  ~EventLog() {
    if (fd_ >= 0) ::close(fd_);
  }
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  void note(const char* what) const { write_line(std::string(what) + "\n"); }
  void note(const char* what, const Bytes& apdu) const {
    if (fd_ < 0 || apdu.size() < 4) return;
    char line[40];
    std::snprintf(line, sizeof line, "%s %02X%s\n", what, apdu[1], (apdu[0] & 0x10) != 0 ? " chained" : "");
    write_line(line);
  }

 private:
  void write_line(const std::string& line) const {
    // A test that misses an event fails on its own deadline; the card goes on.
    if (fd_ >= 0 && ::write(fd_, line.data(), line.size()) < 0) std::perror("kortti-vcard: events");
  }
  int fd_ = -1;
};

// Serves one insertion. Returns false if the card vanished on purpose.
bool serve(int fd, PivApplet& card, const Bytes& atr, const EventLog& events) {
  for (;;) {
    std::uint8_t header[2];
    if (!read_exact(fd, header, 2)) return true;
    Bytes message((header[0] << 8) | header[1]);
    if (!read_exact(fd, message.data(), message.size())) return true;
    if (message.size() == 1) {
      switch (message[0]) {
        case 0x00:
        case 0x01:
        case 0x02:
          card.reset();
          events.note("reset");
          break;
        case 0x04:
          if (!write_message(fd, atr)) return true;
          break;
        default:
          break;
      }
      continue;
    }
    events.note("begin", message);
    auto answer = card.process(message);
    if (!answer) {
      events.note("vanish", message);
      return false;
    }
    if (!write_message(fd, *answer)) return true;
    events.note("end", message);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kortti-vcard - a virtual PIV smart card for vpcd (test bed only)", "kortti-vcard"};
  app.footer(
      "\nThe PIN comes from $VCARD_PIN (default 123456) and the PUK from $VCARD_PUK (default\n"
      "12345678), never from the command line.\n"
      "Certificates and keys are PEM files from the test PKI (tests/fixtures/make-pki.sh).\n"
      "Ending the process pulls the card; --reconnect re-inserts it whenever vpcd drops the\n"
      "connection (a restarted pcscd).");
  std::string host = "127.0.0.1", atr_hex = kHealthcareAtr, guid_hex = "00112233445566778899aabbccddeeff";
  int port = 35963, patience_ms = 10000, tries = 3, puk_tries = 3;
  std::string auth_cert, auth_key, sign_cert, sign_key, state_file, fail_ins, vanish_ins, events_file;
  std::vector<std::string> delays;
  bool reconnect = false;
  app.add_option("--host", host, "vpcd host");
  app.add_option("--port", port, "vpcd port (reader 0: base port, reader 1: base + 1)");
  app.add_option("--atr", atr_hex, "ATR in hex (default: the DVV healthcare card's)");
  app.add_option("--guid", guid_hex, "CHUID GUID, 16 bytes hex: the token serial number");
  app.add_option("--auth-cert", auth_cert, "certificate for key 9A (PEM)");
  app.add_option("--auth-key", auth_key, "private key for key 9A (PEM)");
  app.add_option("--sign-cert", sign_cert, "certificate for key 9C, PIN always (PEM)");
  app.add_option("--sign-key", sign_key, "private key for key 9C (PEM)");
  app.add_option("--tries", tries, "PIN retry counter");
  app.add_option("--puk-tries", puk_tries, "PUK retry counter");
  app.add_option("--state", state_file, "file that keeps the retry counter between insertions");
  app.add_option("--delay", delays, "INS:MS, wait MS before answering INS (e.g. 87:2000 slows signing)");
  app.add_option("--fail-ins", fail_ins, "answer 6F00 to this INS (hex)");
  app.add_option("--vanish-ins", vanish_ins, "pull the card when this INS (hex) arrives, without answering");
  app.add_option("--connect-timeout-ms", patience_ms, "how long to wait for vpcd");
  app.add_option("--events", events_file,
                 "append a line per APDU to FILE: \"begin 87\", \"end 87\" (tests wait on it)");
  app.add_flag("--reconnect", reconnect, "insert again whenever vpcd closes the connection");
  CLI11_PARSE(app, argc, argv);

  CardConfig config;
  const char* pin = std::getenv("VCARD_PIN");
  config.pin = pin != nullptr ? pin : "123456";
  config.max_tries = tries;
  const char* puk = std::getenv("VCARD_PUK");
  config.puk = puk != nullptr ? puk : "12345678";
  config.max_puk_tries = puk_tries;
  config.guid = from_hex(guid_hex);
  config.guid.resize(16);
  config.state_file = state_file;
  try {
    if (!auth_cert.empty()) config.authentication = load_slot(auth_cert, auth_key);
    if (!sign_cert.empty()) config.signature = load_slot(sign_cert, sign_key);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kortti-vcard: %s\n", e.what());
    return 2;
  }
  for (const auto& d : delays) {
    const auto colon = d.find(':');
    config.faults.delay_ms[static_cast<std::uint8_t>(std::stoi(d.substr(0, colon), nullptr, 16))] =
        std::stoi(d.substr(colon + 1));
  }
  if (!fail_ins.empty()) config.faults.fail_ins = static_cast<std::uint8_t>(std::stoi(fail_ins, nullptr, 16));
  if (!vanish_ins.empty()) config.faults.vanish_ins = static_cast<std::uint8_t>(std::stoi(vanish_ins, nullptr, 16));
  const Bytes atr = from_hex(atr_hex);

  EventLog events;
  if (!events_file.empty() && !events.open(events_file)) {
    std::perror(("kortti-vcard: " + events_file).c_str());
    return 2;
  }
  PivApplet card(config);
  do {
    const int fd = connect_vpcd(host, port, std::chrono::milliseconds(patience_ms));
    if (fd < 0) {
      std::fprintf(stderr, "kortti-vcard: no vpcd at %s:%d\n", host.c_str(), port);
      return 1;
    }
    card.reset();
    events.note("insert");
    const bool keep = serve(fd, card, atr, events);
    ::close(fd);
    if (!keep) return 0;  // vanished mid-command on purpose
  } while (reconnect);
  return 0;
}
