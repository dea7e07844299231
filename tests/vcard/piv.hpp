#pragma once

// A PIV card application (NIST SP 800-73-4), as much of it as Debian's OpenSC
// 0.23 uses: SELECT, GET DATA (CHUID, discovery object, certificates 9A and
// 9C), VERIFY with a retry counter, GENERAL AUTHENTICATE (RSA-2048, ECDSA
// P-256/P-384), CHANGE REFERENCE DATA and RESET RETRY COUNTER for the PIN
// (with the PUK), command chaining and GET RESPONSE. Key 9C is "PIN always":
// a VERIFY must come before each use.

#include <openssl/evp.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "tests/vcard/apdu.hpp"

namespace kortti::vcard {

struct KeySlot {
  Bytes certificate;  // DER
  std::shared_ptr<EVP_PKEY> key;
};

struct Faults {
  std::map<std::uint8_t, int> delay_ms;    // INS -> delay before answering
  std::optional<std::uint8_t> fail_ins;    // answer 6F00
  std::optional<std::uint8_t> vanish_ins;  // drop the connection instead of answering
};

struct CardConfig {
  std::string pin;
  int max_tries = 3;
  std::string puk;  // resets the PIN's retry counter (RESET RETRY COUNTER)
  int max_puk_tries = 3;
  Bytes guid;                             // 16 bytes, the CHUID's GUID (OpenSC's token serial)
  std::optional<KeySlot> authentication;  // 9A
  std::optional<KeySlot> signature;       // 9C
  Faults faults;
  // Persists the retry counter across "insertions" (process runs); a PIN
  // changed or unblocked, and the PUK's counter, go to `state_file`.pin.
  std::string state_file;
};

class PivApplet {
 public:
  explicit PivApplet(CardConfig config);

  // The response APDU, or nullopt when the card must vanish now.
  std::optional<Bytes> process(const Bytes& apdu);
  // Power off, power on or reset: nothing selected, no PIN verified.
  void reset();

 private:
  Bytes answer(const Bytes& data, std::size_t le);
  Bytes select(const Command& c);
  Bytes get_data(const Command& c);
  Bytes verify(const Command& c);
  Bytes change_reference_data(const Command& c);
  Bytes reset_retry_counter(const Command& c);
  Bytes general_authenticate(const Command& c);
  Bytes get_response(const Command& c);
  void save_state() const;

  CardConfig config_;
  int tries_left_;
  int puk_tries_left_;
  bool pin_verified_ = false;
  bool signature_allowed_ = false;  // one 9C operation after each VERIFY
  Bytes chained_;
  Bytes pending_;  // the rest of a long answer, for GET RESPONSE
};

}  // namespace kortti::vcard
