#include <spdlog/spdlog.h>

#include <mutex>
#include <set>

#include "pcsc/aside.hpp"
#include "pcsc/pcsc.hpp"

namespace kortti::pcsc {

namespace {

// How long a token's worker waits for the count. pcscd's SCardConnect
// waits for as long as another program holds a transaction on the card (a
// PIN typed on a pad; a module that keeps one across its login, OpenSC's
// lock_login, would even be korttid's own worker), and the count is a
// courtesy: the card still answers C_Login.
constexpr std::chrono::milliseconds kPatience{1000};

std::optional<int> read_now(const std::string& reader, std::uint8_t pin_reference) noexcept {
  try {
    const Card card(reader);
    const Transaction transaction(card);
    // FINEID S1 v4.2 3.15: GET DATA, PIN container of the given reference.
    // Counter-safe: no try is used.
    const Bytes apdu = {0x00, 0xCB, 0x00, 0xFF, 0x05, 0xA0, 0x03, 0x83, 0x01, pin_reference, 0x00};
    const Bytes response = card.transmit(apdu);
    if (response.size() < 2 || response[response.size() - 2] != 0x90 || response.back() != 0x00) return std::nullopt;
    // DF21, length 4: the first byte's low nibble is the tries left.
    for (std::size_t i = 0; i + 6 < response.size() - 2; ++i)
      if (response[i] == 0xDF && response[i + 1] == 0x21 && response[i + 2] == 0x04) return response[i + 3] & 0x0F;
    return std::nullopt;
  } catch (const std::exception& e) {
    // Unknown, and why, rather than a failed listing.
    spdlog::debug("reader '{}': cannot read the PIN counter ({})", reader, e.what());
    return std::nullopt;
  }
}

// The readers whose count is being read: one read each at a time, so that
// a card held for long does not gather a waiting thread per request. Never
// destroyed: a read still waiting when korttid exits ends with it.
struct Reading {
  std::mutex mutex;
  std::set<std::string> readers;
};
Reading& reading() {
  static auto* r = new Reading;
  return *r;
}

}  // namespace

std::optional<int> read_fineid_pin_tries(const std::string& reader, std::uint8_t pin_reference) noexcept {
  try {
    {
      std::lock_guard lock(reading().mutex);
      if (!reading().readers.insert(reader).second) return std::nullopt;
    }
    std::optional<Aside<std::optional<int>>> read;
    try {
      read.emplace("pcsc-count", [reader, pin_reference] {
        const std::optional<int> tries = read_now(reader, pin_reference);
        std::lock_guard lock(reading().mutex);
        reading().readers.erase(reader);
        return tries;
      });
    } catch (...) {
      std::lock_guard lock(reading().mutex);
      reading().readers.erase(reader);
      throw;
    }
    if (auto tries = read->wait_until(std::chrono::steady_clock::now() + kPatience)) return *tries;
    spdlog::debug("reader '{}': another program holds the card; its PIN counter is not known now", reader);
    return std::nullopt;
  } catch (const std::exception& e) {
    spdlog::debug("reader '{}': cannot read the PIN counter ({})", reader, e.what());
    return std::nullopt;
  }
}

}  // namespace kortti::pcsc
