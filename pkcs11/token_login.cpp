// Token: the user's login, who owns it and when it ends, and the PIN checks
// that keep a request from costing the card a retry.

#include "pkcs11/token.hpp"

#include "common/error.hpp"
#include "pkcs11/ckr.hpp"

namespace kortti::pkcs11 {

void Token::check_pin_shape(const Credentials& credentials, uid_t uid) const {
  if (!credentials.pin) return;
  const std::size_t n = credentials.pin->size();
  const PinStatus pin = info().user_pin;
  if (n == 0) throw Error(Errc::invalid_params, "the PIN is empty");
  // A PIN the card cannot accept is refused here, so it costs no retry.
  if (pin.max_length > 0 && pin.min_length <= pin.max_length && pin.max_length < 1024 &&
      (n < pin.min_length || n > pin.max_length))
    throw Error(Errc::invalid_params, "this card's PIN is " + std::to_string(pin.min_length) + " to " +
                                          std::to_string(pin.max_length) + " characters long");
  // Anyone allowed to sign could otherwise lock a clinician's card with three
  // wrong PINs. The last try is spent only when the request says it knows:
  // the client has told its user that a wrong PIN now locks the card.
  if (!credentials.final_try && pin.on_last_try())
    throw Error(Errc::permission_denied,
                "the PIN has one try left; korttid spends it only for a request with final_try: true, after the "
                "user was told a wrong PIN locks the card")
        .with_detail("final_try_not_confirmed")
        .with_tries_left(1);
  // Any client can say final_try: that word alone would not stop an account
  // that spent the other tries from spending the last one too.
  if (pin.on_last_try()) hooks_->pin_guard->check_last_try(pin_key(), uid);
}

void Token::check_typed_pin(const Credentials& credentials, uid_t uid) {
  const auto now = std::chrono::steady_clock::now();
  if (credentials.pin && now - last_pin_sent_ >= kRecountAfter) refresh_info();
  check_login(credentials, uid);
  if (credentials.pin) last_pin_sent_ = now;
}

void Token::throw_pin_failure(const Error& error, std::optional<uid_t> typist) {
  Error e = error;
  if (e.code() == Errc::pin_incorrect && typist) hooks_->pin_guard->wrong(pin_key(), *typist);
  if (e.code() == Errc::pin_incorrect || e.code() == Errc::pin_locked) {
    refresh_info();
    const PinStatus pin = info().user_pin;
    if (pin.locked)
      throw Error(Errc::pin_locked, "the PIN is now locked; unblock it with the card's PUK or activation code")
          .with_detail(e.detail);
    if (e.code() == Errc::pin_incorrect) e.tries_left = pin.tries_left;
  }
  throw e;
}

void Token::check_login(const Credentials& credentials, uid_t uid) const {
  if (credentials.pinpad && !info().pinpad)
    throw Error(Errc::unsupported, "this card's reader has no PIN pad (protected authentication path)");
  check_pin_shape(credentials, uid);
}

void Token::send_login(const Credentials& credentials, uid_t uid) {
  CK_FUNCTION_LIST* fn = module_->fn();
  CK_RV rv = CKR_OK;
  if (credentials.pinpad) {
    rv = fn->C_Login(anchor_->handle(), CKU_USER, nullptr, 0);
  } else if (credentials.pin) {
    rv = fn->C_Login(anchor_->handle(), CKU_USER,
                     reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(credentials.pin->data())),
                     credentials.pin->size());
  } else {
    throw Error(Errc::pin_required, "the card is not logged in; give the PIN or use the PIN pad");
  }
  if (rv == CKR_OK) {
    hooks_->pin_guard->right(pin_key(), typed_by(credentials.pinpad, uid));
    refresh_info();
    return;
  }
  // The module never looked at the PIN: no login, and no signature, on it.
  if (rv == CKR_USER_ALREADY_LOGGED_IN)
    throw Error(Errc::service_unavailable, "the card was logged in already, so the PIN could not be checked; try again")
        .with_detail("CKR_USER_ALREADY_LOGGED_IN from C_Login");
  throw_pin_failure(failure(rv, "C_Login"), typed_by(credentials.pinpad, uid));
}

void Token::set_session_state(std::optional<uid_t> owner) {
  owner_ = owner;
  keys_.clear();
  if (owner) {
    expires_at_ = std::chrono::system_clock::now() + lifetime_;
    last_used_ = std::chrono::steady_clock::now();
  }
  std::lock_guard lock(mutex_);
  info_.logged_in = owner.has_value();
  info_.session_owner = owner;
  info_.session_expires_at = owner ? std::optional(expires_at_) : std::nullopt;
  info_.session_idle_until = owner ? std::optional(last_used_ + idle_) : std::nullopt;
}

void Token::used_now() {
  last_used_ = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  info_.session_idle_until = last_used_ + idle_;
}

LoginResult Token::login(const Credentials& credentials, uid_t uid) {
  const bool again = work().user_logged_in();
  if (again) check_not_anothers(uid);
  // Before a session ends for the new login: a PIN the card cannot take, or
  // a last try the request may not spend, costs neither a try nor it.
  check_typed_pin(credentials, uid);
  if (again) {
    // The same user logging in again: check the PIN given now, do not just
    // extend the old session. A card that stays logged in would take any
    // PIN; the session then stays as it was.
    const CK_RV rv = module_->fn()->C_Logout(anchor_->handle());
    if (rv != CKR_OK && rv != CKR_USER_NOT_LOGGED_IN) throw failure(rv, "C_Logout");
    set_session_state(std::nullopt);
  }
  send_login(credentials, uid);
  set_session_state(uid);
  return {true, expires_at_};
}

bool Token::logout(uid_t uid) {
  if (!work().user_logged_in()) {
    set_session_state(std::nullopt);
    return false;
  }
  check_may_log_out(owner_, uid);
  const CK_RV rv = module_->fn()->C_Logout(anchor_->handle());
  if (rv != CKR_OK && rv != CKR_USER_NOT_LOGGED_IN) throw error_from_ckr(rv, "C_Logout");
  set_session_state(std::nullopt);
  return true;
}

bool Token::expire_if_due() {
  if (!owner_) return false;
  const bool past_lifetime = std::chrono::system_clock::now() >= expires_at_;
  const bool idle = std::chrono::steady_clock::now() - last_used_ >= idle_;
  if (!past_lifetime && !idle) return false;
  if (anchor_) module_->fn()->C_Logout(anchor_->handle());
  set_session_state(std::nullopt);
  return true;
}

void check_may_log_out(std::optional<uid_t> session_owner, uid_t uid) {
  if (session_owner && *session_owner != uid && uid != 0)
    throw Error(Errc::permission_denied, "only the user who logged in, or root, can log this card out");
}

Error signature_pin_required() {
  return Error(Errc::pin_required,
               "a signature key (nonRepudiation) needs its PIN at every signature, a PIN1 session notwithstanding");
}

void check_may_use(std::optional<uid_t> session_owner, bool login_required, uid_t uid, bool pin_given) {
  if (session_owner && *session_owner != uid)
    throw Error(Errc::permission_denied, "the card is logged in by another user");
  if (!session_owner && login_required && !pin_given)
    throw Error(Errc::pin_required, "the card is not logged in; give the PIN or use the PIN pad");
}

void Token::authorize(uid_t uid, const Credentials& credentials, const std::string& cert_id, bool& transient_login) {
  transient_login = false;
  const bool logged_in = work().user_logged_in();
  if (logged_in && !owner_) {
    // Logged in without an owner can only be a leftover; start clean.
    module_->fn()->C_Logout(anchor_->handle());
    keys_.clear();
  }
  const std::optional<uid_t> session_owner = logged_in ? owner_ : std::nullopt;
  const bool login_required = info().login_required;
  check_may_use(session_owner, login_required, uid, credentials.pin || credentials.pinpad);
  if (session_owner) {
    // A key that asks for its PIN at every signature has it checked by its
    // own login (sign_initialised); the rest are the session's.
    const bool session_key = !private_key(cert_id).always_authenticate;
    const bool pin_given = credentials.pin || credentials.pinpad;
    // A signature key (nonRepudiation) the token leaves to the session, as
    // a single-PIN token does, still needs its PIN at every signature: the
    // session never stands in for PIN2 (docs/pins.md).
    const bool signature_key = session_key && has_purpose(find_certificate(cert_id), Purpose::signature);
    if (signature_key && !pin_given) throw signature_pin_required();
    if ((credentials.check_in_session || signature_key) && pin_given && session_key) {
      // As a second kortti login: the PIN is checked anew. One the card
      // cannot take costs neither a try nor the session (login()), and the
      // session keeps the end it had.
      const SystemTime expires = expires_at_;
      (void)login(credentials, uid);
      expires_at_ = expires;
      std::lock_guard lock(mutex_);
      info_.session_expires_at = expires_at_;
      return;
    }
    used_now();
    return;
  }
  if (!login_required) return;
  check_typed_pin(credentials, uid);
  send_login(credentials, uid);
  keys_.clear();
  transient_login = true;
}

}  // namespace kortti::pkcs11
