#include <cctype>

#include "pcsc/pcsc.hpp"

namespace kortti::pcsc {

std::optional<Bytes> parse_hex(std::string_view text) {
  Bytes out;
  int high = -1;
  for (char c : text) {
    if (c == ' ' || c == ':') continue;
    int v = -1;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    if (v < 0) return std::nullopt;
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(high << 4 | v));
      high = -1;
    }
  }
  if (high >= 0) return std::nullopt;
  return out;
}

namespace {

AtrPattern exact(std::string_view atr, std::string type, std::string description) {
  Bytes bytes = *parse_hex(atr);
  Bytes mask(bytes.size(), 0xFF);
  return {std::move(bytes), std::move(mask), std::move(type), std::move(description)};
}

}  // namespace

// The ATRs finland.md lists as seen. Exact matches: other card generations
// get their own entries (or [[pcsc.card_type]] in the config).
AtrTable::AtrTable()
    : patterns_{
          exact("3B DF 96 00 80 31 FE 45 00 31 B8 64 04 29 EC C1 73 94 01 80 82 90 00 DA", "dvv_healthcare",
                "DVV healthcare professional card (2020)"),
          exact("3B 7F 96 00 00 80 31 B8 65 B0 85 05 00 11 12 24 60 82 90 00", "fineid_2022", "FinEID (2022)"),
          exact("3B 7F 96 00 00 80 31 B8 65 B0 85 03 00 EF 12 00 F6 82 90 00", "fineid_v3", "FinEID v3"),
      } {}

void AtrTable::add(AtrPattern pattern) { patterns_.insert(patterns_.begin(), std::move(pattern)); }

std::optional<AtrPattern> AtrTable::match(ByteView atr) const {
  for (const auto& p : patterns_) {
    if (p.atr.size() != atr.size() || p.mask.size() != atr.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < atr.size() && same; ++i) same = (atr[i] & p.mask[i]) == (p.atr[i] & p.mask[i]);
    if (same) return p;
  }
  return std::nullopt;
}

}  // namespace kortti::pcsc
