#include <PCSC/reader.h>

#include <spdlog/spdlog.h>

#include "pcsc/pcsc.hpp"

namespace kortti::pcsc {

PinPadFeatures parse_features(ByteView tlv) {
  PinPadFeatures f;
  for (std::size_t i = 0; i + 2 <= tlv.size();) {
    const std::uint8_t tag = tlv[i];
    const std::uint8_t length = tlv[i + 1];
    if (i + 2 + length > tlv.size()) break;  // truncated entry: ignore the rest
    if (length == 4) {
      switch (tag) {
        case FEATURE_VERIFY_PIN_DIRECT:
          f.verify_pin_direct = true;
          break;
        case FEATURE_VERIFY_PIN_START:
          f.verify_pin_start = true;
          break;
        case FEATURE_VERIFY_PIN_FINISH:
          f.verify_pin_finish = true;
          break;
        case FEATURE_MODIFY_PIN_DIRECT:
          f.modify_pin_direct = true;
          break;
        default:
          break;
      }
    }
    i += 2 + length;
  }
  return f;
}

PinPadFeatures probe_pinpad(const std::string& reader) noexcept {
  try {
    const Card card(reader, /*direct=*/true);
    return parse_features(card.control(CM_IOCTL_GET_FEATURE_REQUEST, {}));
  } catch (const std::exception& e) {
    // Readers without the ioctl (vpcd among them) answer with an error:
    // that is "no PIN pad", not a failure; the reason still goes to the log.
    spdlog::debug("reader '{}': no PIN-pad features ({})", reader, e.what());
    return {};
  }
}

}  // namespace kortti::pcsc
