// Token: changing the user PIN with the old one, and unblocking it with the
// PUK (activation code), each in a read-write session of its own.

#include <algorithm>

#include "common/error.hpp"
#include "pkcs11/ckr.hpp"
#include "pkcs11/session.hpp"
#include "pkcs11/token.hpp"

namespace kortti::pkcs11 {

namespace {

CK_UTF8CHAR_PTR bytes_of(const SecretString& s) {
  return reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(s.data()));
}

// A PIN for the module, or null: the reader's PIN pad asks for it.
CK_UTF8CHAR_PTR pad_or(const SecretString& s, bool pinpad) { return pinpad ? nullptr : bytes_of(s); }

}  // namespace

PinLengths new_pin_lengths(const PinStatus& status) {
  return {status.min_length > 0 ? status.min_length : 4,
          status.max_length > 0 && status.max_length < 1024 ? status.max_length : 8};
}

std::optional<std::string> new_pin_problem(const PinStatus& status, std::string_view pin) {
  const auto [min, max] = new_pin_lengths(status);
  if (pin.size() < min || pin.size() > max)
    return "the new PIN must be " + std::to_string(min) + " to " + std::to_string(max) + " digits long";
  if (!std::all_of(pin.begin(), pin.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return "the new PIN must be digits only";
  return std::nullopt;
}

void Token::check_new_pin(const SecretString& pin) const {
  if (auto problem = new_pin_problem(info().user_pin, pin.view())) throw Error(Errc::invalid_params, *problem);
}

void Token::check_not_anothers(uid_t uid) const { check_may_use(owner_, false, uid, true); }

void Token::check_pinpad(const PinChange& change) const {
  if (change.pinpad && !info().pinpad)
    throw Error(Errc::unsupported, "this card's reader has no PIN pad (protected authentication path)");
}

void Token::change_pin(const PinChange& change, uid_t uid) {
  check_not_anothers(uid);
  check_pinpad(change);
  if (!change.pinpad) {
    Credentials old;
    old.pin = SecretString(change.proof.view());
    old.final_try = change.final_try;
    check_typed_pin(old, uid);
    check_new_pin(change.new_pin);
  }
  CK_FUNCTION_LIST* fn = module_->fn();
  Session rw(fn, slot_, CKF_RW_SESSION);
  // Logged in first, with the old PIN: a module that unblocks with C_SetPIN
  // in a session not logged in (OpenSC, set_pin_in_unlogged_session) would
  // otherwise take the old PIN for a PUK. On a PIN pad the user types it
  // there (null PINs: the protected authentication path).
  const bool transient = !rw.user_logged_in();
  if (transient) {
    const CK_RV rv = fn->C_Login(rw.handle(), CKU_USER, pad_or(change.proof, change.pinpad),
                                 change.pinpad ? 0 : change.proof.size());
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
      throw_pin_failure(failure(rv, "C_Login"), typed_by(change.pinpad, uid));
  }
  const CK_RV rv =
      fn->C_SetPIN(rw.handle(), pad_or(change.proof, change.pinpad), change.pinpad ? 0 : change.proof.size(),
                   pad_or(change.new_pin, change.pinpad), change.pinpad ? 0 : change.new_pin.size());
  if (transient) fn->C_Logout(rw.handle());
  keys_.clear();
  if (rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_INVALID)
    throw Error(Errc::invalid_params, "the card refused the new PIN").with_detail(ckr_name(rv));
  if (rv != CKR_OK) throw_pin_failure(failure(rv, "C_SetPIN"), typed_by(change.pinpad, uid));
  hooks_->pin_guard->right(pin_key(), typed_by(change.pinpad, uid));
  refresh_info();
}

void Token::unblock_pin(const PinChange& change, UnblockStyle style, uid_t uid) {
  check_not_anothers(uid);
  check_pinpad(change);
  if (!change.pinpad) {
    // Again here: a dialog's next round, or requests that passed the check
    // before the trail side by side.
    hooks_->pin_guard->check_puk(pin_key(), uid);
    check_new_pin(change.new_pin);
    if (change.proof.empty()) throw Error(Errc::invalid_params, "the PUK is empty");
  }
  const CK_ULONG proof_size = change.pinpad ? 0 : change.proof.size();
  const CK_ULONG new_size = change.pinpad ? 0 : change.new_pin.size();
  // In this style a PUK sent while the PIN still has tries would be taken
  // by a module without the style configured as a wrong old PIN, costing a
  // try: unblocking is for a locked PIN only. Refused before a session ends.
  if (style == UnblockStyle::set_pin_unlogged && !info().user_pin.locked)
    throw Error(Errc::invalid_params, kPinNotLocked);
  CK_FUNCTION_LIST* fn = module_->fn();
  if (work().user_logged_in()) {
    fn->C_Logout(anchor_->handle());
    set_session_state(std::nullopt);
  }
  CK_RV rv = CKR_OK;
  if (style == UnblockStyle::set_pin_unlogged) {
    Session rw(fn, slot_, CKF_RW_SESSION);
    rv = fn->C_SetPIN(rw.handle(), pad_or(change.proof, change.pinpad), proof_size,
                      pad_or(change.new_pin, change.pinpad), new_size);
  } else {
    // An SO login needs every read-only session closed (CKR_SESSION_READ_ONLY_EXISTS).
    close();
    keys_.clear();
    {
      Session rw(fn, slot_, CKF_RW_SESSION);
      rv = fn->C_Login(rw.handle(), CKU_SO, pad_or(change.proof, change.pinpad), proof_size);
      if (rv == CKR_OK) {
        rv = fn->C_InitPIN(rw.handle(), pad_or(change.new_pin, change.pinpad), new_size);
        fn->C_Logout(rw.handle());
      }
    }
    anchor_.emplace(fn, slot_);
    work_.emplace(fn, slot_);
  }
  if (rv == CKR_PIN_INCORRECT) {
    if (!change.pinpad) hooks_->pin_guard->wrong_puk(pin_key(), uid);
    throw Error(Errc::pin_incorrect, "the PUK (activation code) is incorrect").with_detail(ckr_name(rv));
  }
  if (rv == CKR_FUNCTION_CANCELED) throw failure(rv, "C_SetPIN");
  if (rv == CKR_PIN_LOCKED) {
    // Unblocks already past TokenService::check_may_unblock still reach the
    // card, each with its audit line: at most a uid's PIN turns.
    hooks_->pin_guard->puk_locked(pin_key());
    throw Error(Errc::pin_locked,
                info().user_pin.locked
                    ? "the module did not unblock the PIN: the PUK is locked, or the module needs configuring "
                      "(OpenSC: user_pin_unblock_style = set_pin_in_unlogged_session; docs/pins.md)"
                    : "the PUK is locked")
        .with_detail(ckr_name(rv));
  }
  if (rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_INVALID)
    throw Error(Errc::invalid_params, "the card refused the new PIN").with_detail(ckr_name(rv));
  if (rv != CKR_OK) throw failure(rv, style == UnblockStyle::so_login ? "C_Login(CKU_SO)/C_InitPIN" : "C_SetPIN");
  // A new PIN with full tries, set by whoever knew the PUK.
  hooks_->pin_guard->right_puk(pin_key());
  refresh_info();
}

}  // namespace kortti::pkcs11
