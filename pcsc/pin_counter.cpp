#include <spdlog/spdlog.h>

#include "pcsc/pcsc.hpp"

namespace kortti::pcsc {

std::optional<int> read_fineid_pin_tries(const std::string& reader, std::uint8_t pin_reference) noexcept {
  try {
    const Context context;
    const Card card(context, reader);
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
    // The count is a courtesy (tokens.list shows it); the card still
    // answers C_Login. Unknown, and why, rather than a failed listing.
    spdlog::debug("reader '{}': cannot read the PIN counter ({})", reader, e.what());
    return std::nullopt;
  }
}

}  // namespace kortti::pcsc
