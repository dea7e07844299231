#include "pkcs11/pin_guard.hpp"

#include "common/error.hpp"

namespace kortti::pkcs11 {

namespace {

bool holds(const std::map<std::string, std::set<uid_t>>& uids, const std::string& key, uid_t uid) {
  const auto it = uids.find(key);
  return it != uids.end() && it->second.count(uid) != 0;
}

}  // namespace

void PinGuard::check_last_try(const PinKey& key, uid_t uid) const {
  std::lock_guard lock(mutex_);
  // The card's holder has given its right PIN before; an account that only
  // ever gave wrong ones is where an attack on the card would come from.
  if (!holds(wrong_, key.pin, uid) || holds(known_, key.card, uid)) return;
  throw Error(Errc::permission_denied,
              "the PIN has one try left and this account gave wrong PINs for this card: korttid does not let one "
              "account spend all of a card's tries. The card holder can use the last try from an account that has "
              "given this card's right PIN before, or on the reader's PIN pad; or unblock the PIN with the PUK")
      .with_detail("last_try_not_yours")
      .with_tries_left(1);
}

void PinGuard::wrong(const PinKey& key, uid_t uid) {
  std::lock_guard lock(mutex_);
  wrong_[key.pin].insert(uid);
}

void PinGuard::check_puk(const PinKey& key, uid_t uid) const {
  std::lock_guard lock(mutex_);
  if (holds(known_, key.card, uid)) return;
  const auto card = wrong_puks_.find(key.card);
  if (card == wrong_puks_.end()) return;
  const auto given = card->second.find(uid);
  if (given == card->second.end() || given->second < kWrongPuksPerAccount) return;
  throw Error(Errc::permission_denied,
              "this account gave " + std::to_string(given->second) +
                  " wrong PUKs for this card: korttid does not let one account spend a card's PUK tries (a locked "
                  "PUK means a new card). The card holder can unblock from an account that has given this card's "
                  "right PIN before, or on the reader's PIN pad")
      .with_detail("puk_not_yours");
}

void PinGuard::wrong_puk(const PinKey& key, uid_t uid) {
  std::lock_guard lock(mutex_);
  ++wrong_puks_[key.card][uid];
}

void PinGuard::right(const PinKey& key, std::optional<uid_t> uid) {
  std::lock_guard lock(mutex_);
  wrong_.erase(key.pin);
  puk_locked_.erase(key.card);
  if (uid) known_[key.card].insert(*uid);
}

void PinGuard::right_puk(const PinKey& key) {
  std::lock_guard lock(mutex_);
  wrong_.erase(key.pin);
  wrong_puks_.erase(key.card);
  puk_locked_.erase(key.card);
}

void PinGuard::puk_locked(const PinKey& key) {
  std::lock_guard lock(mutex_);
  puk_locked_.insert(key.card);
}

void PinGuard::forget_puk_locked(const PinKey& key) {
  std::lock_guard lock(mutex_);
  puk_locked_.erase(key.card);
}

bool PinGuard::puk_known_locked(const PinKey& key) const {
  std::lock_guard lock(mutex_);
  return puk_locked_.count(key.card) != 0;
}

}  // namespace kortti::pkcs11
