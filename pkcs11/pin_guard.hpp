// Who spent a card's PIN tries: what keeps one local account from locking a
// clinician's card with wrong PINs (docs/protocol.md, "The last try").
#pragma once

// Internal to pkcs11/ (docs/architecture.md, Layering).
#if !defined(KORTTI_COMPONENT_PKCS11) && !defined(KORTTI_WHITE_BOX)
#error "pkcs11/pin_guard.hpp is internal to pkcs11/; include pkcs11/pkcs11.hpp"
#endif

#include <sys/types.h>

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

namespace kortti::pkcs11 {

// The account whose typed PIN the card took or refused; none for a PIN pad,
// whose user is at the reader whoever asked.
[[nodiscard]] inline std::optional<uid_t> typed_by(bool pinpad, uid_t uid) {
  return pinpad ? std::nullopt : std::optional(uid);
}

// Which PIN of which card. The same card reached through two modules (two
// token ids) or with a slot per PIN (PIN1, PIN2) is one card: `card` is its
// serial number, `pin` its serial and the slot's label (a label names the
// PIN; two modules that label one PIN differently count it twice). A module
// that gives no serial is keyed by token id.
struct PinKey {
  std::string pin;
  std::string card;
};

// Keyed by the card, not held by a Token: a card taken out and put back is
// the same card with the same tries left, and an account that spent the
// others must not get the last one by waiting for that. An account that
// gave any right PIN of a card (PIN1 at login, say) is its holder's for
// every PIN of it. Forgotten when korttid stops. Thread-safe.
class PinGuard {
 public:
  // Throws 1040 last_try_not_yours when `uid` may not spend the last try of
  // `key`: it gave wrong PINs since the card last took a right one, and
  // has never given this card's right PIN itself. A PIN pad's user is at the
  // reader and is not asked.
  void check_last_try(const PinKey& key, uid_t uid) const;
  // The card refused a PIN that `uid` gave.
  void wrong(const PinKey& key, uid_t uid);
  // The card took a PIN (`uid`'s, or none for a PIN pad): its counter is
  // full again.
  void right(const PinKey& key, std::optional<uid_t> uid);

  // The PUK (or the security officer's PIN) of a card, guarded as the PIN
  // is, though a card seldom says how many tries its PUK has left: an
  // account that has not given this card's right PIN may give it at most
  // kWrongPuksPerAccount wrong PUKs until the card takes a right PUK (a
  // right PIN leaves the card's PUK counter as it was, so the holder's
  // daily login does not give an account its PUK tries again). Locked for
  // good, a PUK means a new card: with three tries or more it takes two
  // accounts. Throws 1040 puk_not_yours past that.
  static constexpr int kWrongPuksPerAccount = 2;
  void check_puk(const PinKey& key, uid_t uid) const;
  void wrong_puk(const PinKey& key, uid_t uid);
  // The card took the PUK: its PUK counter is full again, and so is the
  // PIN's (set anew); no account has given a right PIN by it.
  void right_puk(const PinKey& key);

  // The card refused an unblock as locked: its PUK (or the security
  // officer's PIN) has no tries left, or the module is not configured to
  // unblock (docs/pins.md). Either holds while the card stays in (a
  // module's configuration is read at start), so later unblocks are
  // refused before the card and the audit trail see them. Forgotten when
  // the card is taken out, and when it takes a right PIN (right()).
  void puk_locked(const PinKey& key);
  [[nodiscard]] bool puk_known_locked(const PinKey& key) const;
  void forget_puk_locked(const PinKey& key);

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::set<uid_t>> wrong_;            // by PIN: since it last took a right PIN
  std::map<std::string, std::set<uid_t>> known_;            // by card: gave a right PIN at least once
  std::map<std::string, std::map<uid_t, int>> wrong_puks_;  // by card: since it last took a right PUK
  std::set<std::string> puk_locked_;                        // by card
};

}  // namespace kortti::pkcs11
