#include "tests/vcard/apdu.hpp"

namespace kortti::vcard {

std::optional<Command> parse_command(const Bytes& raw) {
  if (raw.size() < 4) return std::nullopt;
  Command c;
  c.cla = raw[0];
  c.ins = raw[1];
  c.p1 = raw[2];
  c.p2 = raw[3];
  const std::size_t n = raw.size();
  if (n == 4) return c;  // case 1
  if (n == 5) {          // case 2 short
    c.le = raw[4] == 0 ? 256 : raw[4];
    return c;
  }
  if (raw[4] != 0) {  // short Lc
    const std::size_t lc = raw[4];
    if (n == 5 + lc) {
      c.data.assign(raw.begin() + 5, raw.end());
      return c;
    }
    if (n == 6 + lc) {
      c.data.assign(raw.begin() + 5, raw.begin() + 5 + static_cast<long>(lc));
      c.le = raw[5 + lc] == 0 ? 256 : raw[5 + lc];
      return c;
    }
    return std::nullopt;
  }
  // Extended: 00 then two length bytes.
  if (n == 7) {
    const std::size_t le = (raw[5] << 8) | raw[6];
    c.le = le == 0 ? 65536 : le;
    return c;
  }
  if (n < 8) return std::nullopt;
  const std::size_t lc = (raw[5] << 8) | raw[6];
  if (n == 7 + lc) {
    c.data.assign(raw.begin() + 7, raw.end());
    return c;
  }
  if (n == 9 + lc) {
    c.data.assign(raw.begin() + 7, raw.begin() + 7 + static_cast<long>(lc));
    const std::size_t le = (raw[7 + lc] << 8) | raw[8 + lc];
    c.le = le == 0 ? 65536 : le;
    return c;
  }
  return std::nullopt;
}

Bytes response(const Bytes& data, std::uint16_t sw) {
  Bytes out = data;
  out.push_back(static_cast<std::uint8_t>(sw >> 8));
  out.push_back(static_cast<std::uint8_t>(sw & 0xFF));
  return out;
}

void append_length(Bytes& out, std::size_t length) {
  if (length < 0x80) {
    out.push_back(static_cast<std::uint8_t>(length));
  } else if (length < 0x100) {
    out.push_back(0x81);
    out.push_back(static_cast<std::uint8_t>(length));
  } else {
    out.push_back(0x82);
    out.push_back(static_cast<std::uint8_t>(length >> 8));
    out.push_back(static_cast<std::uint8_t>(length & 0xFF));
  }
}

Bytes tlv(std::uint32_t tag, const Bytes& value) {
  Bytes out;
  if (tag > 0xFFFF) out.push_back(static_cast<std::uint8_t>(tag >> 16));
  if (tag > 0xFF) out.push_back(static_cast<std::uint8_t>(tag >> 8));
  out.push_back(static_cast<std::uint8_t>(tag & 0xFF));
  append_length(out, value.size());
  out.insert(out.end(), value.begin(), value.end());
  return out;
}

std::optional<Bytes> find_tlv(const Bytes& data, std::uint32_t wanted) {
  std::size_t i = 0;
  while (i < data.size()) {
    std::uint32_t tag = data[i++];
    if ((tag & 0x1F) == 0x1F) {  // multi-byte tag
      do {
        if (i >= data.size()) return std::nullopt;
        tag = (tag << 8) | data[i];
      } while ((data[i++] & 0x80) != 0);
    }
    if (i >= data.size()) return std::nullopt;
    std::size_t len = data[i++];
    if (len == 0x81) {
      if (i >= data.size()) return std::nullopt;
      len = data[i++];
    } else if (len == 0x82) {
      if (i + 1 >= data.size()) return std::nullopt;
      len = (data[i] << 8) | data[i + 1];
      i += 2;
    } else if (len > 0x82) {
      return std::nullopt;
    }
    if (i + len > data.size()) return std::nullopt;
    if (tag == wanted) return Bytes(data.begin() + static_cast<long>(i), data.begin() + static_cast<long>(i + len));
    i += len;
  }
  return std::nullopt;
}

}  // namespace kortti::vcard
