#include <algorithm>
#include <mutex>

#include "pcsc/pcsc.hpp"

namespace kortti::pcsc {

Context::Context() {
  check(SCardEstablishContext(SCARD_SCOPE_SYSTEM, nullptr, nullptr, &handle_), "SCardEstablishContext");
}

Context::~Context() { SCardReleaseContext(handle_); }

std::vector<std::string> Context::readers() const {
  // A reader plugged in between the size query and the fill makes the
  // buffer too small; ask again.
  for (int attempt = 0;; ++attempt) {
    DWORD size = 0;
    LONG rv = SCardListReaders(handle_, nullptr, nullptr, &size);
    if (rv == static_cast<LONG>(SCARD_E_NO_READERS_AVAILABLE)) return {};
    check(rv, "SCardListReaders");
    std::string buffer(size, '\0');
    rv = SCardListReaders(handle_, nullptr, buffer.data(), &size);
    if (rv == static_cast<LONG>(SCARD_E_NO_READERS_AVAILABLE)) return {};
    if (rv == static_cast<LONG>(SCARD_E_INSUFFICIENT_BUFFER) && attempt < 8) continue;
    check(rv, "SCardListReaders");
    std::vector<std::string> names;
    for (std::size_t pos = 0; pos < buffer.size() && buffer[pos] != '\0';) {
      const std::size_t end = buffer.find('\0', pos);
      names.push_back(buffer.substr(pos, end - pos));
      pos = end + 1;
    }
    return names;
  }
}

void Context::cancel() const noexcept { SCardCancel(handle_); }

namespace {

// korttid's own connections, one at a time (pcsc.hpp, Card). Never
// destroyed: a connection still waiting aside when korttid exits ends with
// it.
std::mutex& connections() {
  static auto* m = new std::mutex;
  return *m;
}

}  // namespace

Card::Card(const std::string& reader, bool direct) : turn_(connections()) {
  check(SCardConnect(context_.handle(), reader.c_str(), direct ? SCARD_SHARE_DIRECT : SCARD_SHARE_SHARED,
                     direct ? 0 : SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &handle_, &protocol_),
        "SCardConnect");
}

Card::~Card() { SCardDisconnect(handle_, SCARD_LEAVE_CARD); }

Bytes Card::transmit(ByteView apdu) const {
  const SCARD_IO_REQUEST* pci = protocol_ == SCARD_PROTOCOL_T0 ? SCARD_PCI_T0 : SCARD_PCI_T1;
  Bytes command(apdu.begin(), apdu.end());
  Bytes collected;
  for (int round = 0; round < 64; ++round) {
    Bytes response(65538);
    DWORD length = static_cast<DWORD>(response.size());
    check(SCardTransmit(handle_, pci, command.data(), static_cast<DWORD>(command.size()), nullptr, response.data(),
                        &length),
          "SCardTransmit");
    response.resize(length);
    if (response.size() < 2) return response;
    const std::uint8_t sw1 = response[response.size() - 2];
    const std::uint8_t sw2 = response.back();
    if (sw1 == 0x61) {  // more data: GET RESPONSE
      collected.insert(collected.end(), response.begin(), response.end() - 2);
      command = {0x00, 0xC0, 0x00, 0x00, sw2};
      continue;
    }
    if (sw1 == 0x6C && command.size() >= 5) {  // wrong Le: send again with the right one
      command.back() = sw2;
      continue;
    }
    collected.insert(collected.end(), response.begin(), response.end());
    return collected;
  }
  return collected;
}

Bytes Card::control(DWORD code, ByteView input) const {
  Bytes out(1024);
  DWORD length = 0;
  check(SCardControl(handle_, code, input.data(), static_cast<DWORD>(input.size()), out.data(),
                     static_cast<DWORD>(out.size()), &length),
        "SCardControl");
  out.resize(length);
  return out;
}

Transaction::Transaction(const Card& card) : card_(card.handle()) {
  check(SCardBeginTransaction(card_), "SCardBeginTransaction");
}

Transaction::~Transaction() { SCardEndTransaction(card_, SCARD_LEAVE_CARD); }

}  // namespace kortti::pcsc
