#include "tests/vcard/piv.hpp"

#include <openssl/rsa.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "common/openssl.hpp"

namespace kortti::vcard {

namespace {

constexpr std::uint16_t kOk = 0x9000;
constexpr std::uint16_t kWrongLength = 0x6700;
constexpr std::uint16_t kSecurityNotSatisfied = 0x6982;
constexpr std::uint16_t kBlocked = 0x6983;
constexpr std::uint16_t kWrongData = 0x6A80;
constexpr std::uint16_t kNotFound = 0x6A82;
constexpr std::uint16_t kWrongP1P2 = 0x6A86;
constexpr std::uint16_t kInsNotSupported = 0x6D00;
constexpr std::uint16_t kClaNotSupported = 0x6E00;
constexpr std::uint16_t kNoPreciseDiagnosis = 0x6F00;

const Bytes kPivAid = {0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00};

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes certificate_object(const Bytes& der) {
  return tlv(0x53, concat({tlv(0x70, der), tlv(0x71, {0x00}), tlv(0xFE, {})}));
}

// PIV algorithm identifier of a key, as GENERAL AUTHENTICATE names it.
int piv_algorithm(EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) return EVP_PKEY_get_bits(key) == 2048 ? 0x07 : 0x06;
  return EVP_PKEY_get_bits(key) == 384 ? 0x14 : 0x11;
}

std::optional<Bytes> sign(EVP_PKEY* key, const Bytes& input) {
  const EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(key, nullptr));
  if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1) return std::nullopt;
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA && EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_NO_PADDING) != 1)
    return std::nullopt;
  std::size_t len = 0;
  Bytes out;
  bool ok = EVP_PKEY_sign(ctx.get(), nullptr, &len, input.data(), input.size()) == 1;
  if (ok) {
    out.resize(len);
    ok = EVP_PKEY_sign(ctx.get(), out.data(), &len, input.data(), input.size()) == 1;
    out.resize(len);
  }
  if (!ok) return std::nullopt;
  return out;
}

}  // namespace

PivApplet::PivApplet(CardConfig config)
    : config_(std::move(config)), tries_left_(config_.max_tries), puk_tries_left_(config_.max_puk_tries) {
  if (config_.state_file.empty()) return;
  std::ifstream in(config_.state_file);
  int saved = 0;
  if (in >> saved) tries_left_ = std::clamp(saved, 0, config_.max_tries);
  std::ifstream more(config_.state_file + ".pin");
  std::string pin;
  if (more >> pin >> saved) {
    config_.pin = pin;
    puk_tries_left_ = std::clamp(saved, 0, config_.max_puk_tries);
  }
}

void PivApplet::save_state() const {
  if (config_.state_file.empty()) return;
  std::ofstream(config_.state_file, std::ios::trunc) << tries_left_ << "\n";
  std::ofstream(config_.state_file + ".pin", std::ios::trunc) << config_.pin << "\n" << puk_tries_left_ << "\n";
}

void PivApplet::reset() {
  pin_verified_ = false;
  signature_allowed_ = false;
  chained_.clear();
  pending_.clear();
}

Bytes PivApplet::answer(const Bytes& data, std::size_t le) {
  // Short APDUs get at most 256 bytes; the rest waits for GET RESPONSE.
  const std::size_t room = le == 0 || le > 256 ? (le > 256 ? le : 256) : le;
  if (data.size() <= room) return response(data, kOk);
  pending_.assign(data.begin() + static_cast<long>(room), data.end());
  const std::size_t more = std::min<std::size_t>(pending_.size(), 256);
  return response(Bytes(data.begin(), data.begin() + static_cast<long>(room)),
                  static_cast<std::uint16_t>(0x6100 | (more == 256 ? 0 : more)));
}

std::optional<Bytes> PivApplet::process(const Bytes& raw) {
  auto parsed = parse_command(raw);
  if (!parsed) return status(kWrongLength);
  Command c = std::move(*parsed);
  if (auto it = config_.faults.delay_ms.find(c.ins); it != config_.faults.delay_ms.end())
    std::this_thread::sleep_for(std::chrono::milliseconds(it->second));
  if (config_.faults.vanish_ins == c.ins) return std::nullopt;
  if (config_.faults.fail_ins == c.ins) return status(kNoPreciseDiagnosis);
  if ((c.cla & ~0x10) != 0x00) return status(kClaNotSupported);
  if (c.ins != 0xC0) pending_.clear();
  if (c.chained()) {
    chained_.insert(chained_.end(), c.data.begin(), c.data.end());
    return status(kOk);
  }
  if (!chained_.empty()) {
    c.data.insert(c.data.begin(), chained_.begin(), chained_.end());
    chained_.clear();
  }
  switch (c.ins) {
    case 0xA4:
      return select(c);
    case 0xCB:
      return get_data(c);
    case 0x20:
      return verify(c);
    case 0x24:
      return change_reference_data(c);
    case 0x2C:
      return reset_retry_counter(c);
    case 0x87:
      return general_authenticate(c);
    case 0xC0:
      return get_response(c);
    default:
      return status(kInsNotSupported);
  }
}

Bytes PivApplet::select(const Command& c) {
  if (c.p1 != 0x04) return status(kWrongP1P2);
  // Partial AIDs select too (SP 800-73-4 allows the truncated PIV AID).
  if (c.data.empty() || c.data.size() > kPivAid.size() || !std::equal(c.data.begin(), c.data.end(), kPivAid.begin()))
    return status(kNotFound);
  reset();
  const Bytes property_template =
      tlv(0x61,
          concat({tlv(0x4F, {0x00, 0x00, 0x10, 0x00, 0x01, 0x00}), tlv(0x79, tlv(0x4F, {0xA0, 0x00, 0x00, 0x03, 0x08})),
                  tlv(0x50, {'k', 'o', 'r', 't', 't', 'i', ' ', 'v', 'c', 'a', 'r', 'd'})}));
  return answer(property_template, c.le);
}

Bytes PivApplet::get_data(const Command& c) {
  if (c.p1 == 0x00 && c.p2 == 0xFF) {
    // FINEID S1 3.15 PIN information, as the healthcare card whose ATR this
    // card wears is assumed to answer it: DF21 starts with the tries left.
    // The card has one PIN; it answers for PIN1 (11) and PIN2 (82) alike.
    auto container = find_tlv(c.data, 0xA0);
    auto reference = container ? find_tlv(*container, 0x83) : std::nullopt;
    if (!reference || reference->size() != 1 || ((*reference)[0] != 0x11 && (*reference)[0] != 0x82))
      return status(kNotFound);
    const Bytes attributes = {static_cast<std::uint8_t>(tries_left_), 0xFF, 0xA5, 0x00};
    return answer(tlv(0xA0, concat({tlv(0x83, *reference), tlv(0xDF21, attributes)})), c.le);
  }
  if (c.p1 != 0x3F || c.p2 != 0xFF) return status(kWrongP1P2);
  auto tag = find_tlv(c.data, 0x5C);
  if (!tag) return status(kWrongData);
  const Bytes& t = *tag;
  if (t == Bytes{0x7E}) {
    // Discovery object: the PIV AID and "PIV PIN only".
    return answer(tlv(0x7E, concat({tlv(0x4F, kPivAid), tlv(0x5F2F, {0x40, 0x00})})), c.le);
  }
  if (t == Bytes{0x5F, 0xC1, 0x02}) {
    // No FASC-N: OpenSC then takes the GUID as the token's serial number.
    const Bytes chuid = concat(
        {tlv(0x34, config_.guid), tlv(0x35, {'2', '0', '9', '9', '1', '2', '3', '1'}), tlv(0x3E, {}), tlv(0xFE, {})});
    return answer(tlv(0x53, chuid), c.le);
  }
  if (t == Bytes{0x5F, 0xC1, 0x05} && config_.authentication)
    return answer(certificate_object(config_.authentication->certificate), c.le);
  if (t == Bytes{0x5F, 0xC1, 0x0A} && config_.signature)
    return answer(certificate_object(config_.signature->certificate), c.le);
  return status(kNotFound);
}

Bytes PivApplet::verify(const Command& c) {
  if (c.p2 != 0x80) return status(kNotFound);
  if (c.p1 == 0xFF) {  // reset the security status
    pin_verified_ = false;
    signature_allowed_ = false;
    return status(kOk);
  }
  if (c.p1 != 0x00) return status(kWrongP1P2);
  if (tries_left_ == 0) return status(kBlocked);
  if (c.data.empty()) {
    if (pin_verified_) return status(kOk);
    return status(static_cast<std::uint16_t>(0x63C0 | tries_left_));
  }
  if (c.data.size() != 8) return status(kWrongLength);
  std::string given;
  for (auto b : c.data)
    if (b != 0xFF) given.push_back(static_cast<char>(b));
  if (given == config_.pin) {
    tries_left_ = config_.max_tries;
    pin_verified_ = true;
    signature_allowed_ = true;
    save_state();
    return status(kOk);
  }
  --tries_left_;
  pin_verified_ = false;
  signature_allowed_ = false;
  save_state();
  return status(static_cast<std::uint16_t>(0x63C0 | tries_left_));
}

namespace {

// A PIN field of SP 800-73-4: 8 bytes, the digits padded with FF.
std::string pin_field(const Bytes& data, std::size_t at) {
  std::string out;
  for (std::size_t i = at; i < at + 8; ++i)
    if (data[i] != 0xFF) out.push_back(static_cast<char>(data[i]));
  return out;
}

// The new PIN's rule: 4 to 8 digits, as on the healthcare card this card wears.
bool acceptable_pin(const std::string& pin) {
  return pin.size() >= 4 && pin.size() <= 8 &&
         std::all_of(pin.begin(), pin.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

}  // namespace

// SP 800-73-4 3.2.2: the old PIN and the new one, 8 bytes each. A wrong old
// PIN counts as a wrong VERIFY.
Bytes PivApplet::change_reference_data(const Command& c) {
  if (c.p1 != 0x00 || c.p2 != 0x80) return status(kWrongP1P2);
  if (c.data.size() != 16) return status(kWrongLength);
  if (tries_left_ == 0) return status(kBlocked);
  const auto old_pin = pin_field(c.data, 0);
  const auto new_pin = pin_field(c.data, 8);
  if (old_pin != config_.pin) {
    --tries_left_;
    pin_verified_ = false;
    signature_allowed_ = false;
    save_state();
    return status(static_cast<std::uint16_t>(0x63C0 | tries_left_));
  }
  if (!acceptable_pin(new_pin)) return status(kWrongData);
  config_.pin = new_pin;
  tries_left_ = config_.max_tries;
  pin_verified_ = true;
  save_state();
  return status(kOk);
}

// SP 800-73-4 3.2.3: the PUK and a new PIN, 8 bytes each; the PIN's counter
// starts again. A wrong PUK counts down the PUK's own counter.
Bytes PivApplet::reset_retry_counter(const Command& c) {
  if (c.p1 != 0x00 || c.p2 != 0x80) return status(kWrongP1P2);
  if (c.data.size() != 16) return status(kWrongLength);
  if (puk_tries_left_ == 0) return status(kBlocked);
  const auto puk = pin_field(c.data, 0);
  const auto new_pin = pin_field(c.data, 8);
  if (puk != config_.puk) {
    --puk_tries_left_;
    save_state();
    return status(static_cast<std::uint16_t>(0x63C0 | puk_tries_left_));
  }
  if (!acceptable_pin(new_pin)) return status(kWrongData);
  puk_tries_left_ = config_.max_puk_tries;
  config_.pin = new_pin;
  tries_left_ = config_.max_tries;
  pin_verified_ = false;
  signature_allowed_ = false;
  save_state();
  return status(kOk);
}

Bytes PivApplet::general_authenticate(const Command& c) {
  const KeySlot* slot = nullptr;
  if (c.p2 == 0x9A && config_.authentication) slot = &*config_.authentication;
  if (c.p2 == 0x9C && config_.signature) slot = &*config_.signature;
  if (slot == nullptr) return status(kNotFound);
  if (piv_algorithm(slot->key.get()) != c.p1) return status(kWrongP1P2);
  const bool allowed = c.p2 == 0x9C ? signature_allowed_ : pin_verified_;
  if (!allowed) return status(kSecurityNotSatisfied);
  auto dynamic = find_tlv(c.data, 0x7C);
  if (!dynamic) return status(kWrongData);
  auto challenge = find_tlv(*dynamic, 0x81);
  if (!challenge || !find_tlv(*dynamic, 0x82)) return status(kWrongData);
  auto signature = sign(slot->key.get(), *challenge);
  if (!signature) return status(kWrongData);
  if (c.p2 == 0x9C) signature_allowed_ = false;  // PIN always: once per VERIFY
  return answer(tlv(0x7C, tlv(0x82, *signature)), c.le);
}

Bytes PivApplet::get_response(const Command& c) {
  if (pending_.empty()) return status(0x6A88);
  Bytes data = std::move(pending_);
  pending_.clear();
  return answer(data, c.le == 0 ? 256 : c.le);
}

}  // namespace kortti::vcard
