#pragma once

// ISO 7816-4 command and response APDUs, short and extended.

#include <cstdint>
#include <optional>
#include <vector>

namespace kortti::vcard {

using Bytes = std::vector<std::uint8_t>;

struct Command {
  std::uint8_t cla = 0;
  std::uint8_t ins = 0;
  std::uint8_t p1 = 0;
  std::uint8_t p2 = 0;
  Bytes data;
  std::size_t le = 0;  // 0: none; 256/65536 for "all"
  [[nodiscard]] bool chained() const noexcept { return (cla & 0x10) != 0; }
};

std::optional<Command> parse_command(const Bytes& raw);

// Data followed by SW1 SW2.
Bytes response(const Bytes& data, std::uint16_t sw);
inline Bytes status(std::uint16_t sw) { return response({}, sw); }

// BER-TLV helpers (definite lengths up to 65535).
void append_length(Bytes& out, std::size_t length);
Bytes tlv(std::uint32_t tag, const Bytes& value);
// Finds tag inside a TLV sequence (one level); nullopt if absent.
std::optional<Bytes> find_tlv(const Bytes& data, std::uint32_t tag);

}  // namespace kortti::vcard
