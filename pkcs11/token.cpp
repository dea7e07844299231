#include "pkcs11/token.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <thread>

#include "common/encoding.hpp"
#include "common/openssl.hpp"
#include "pkcs11/certificate.hpp"
#include "pkcs11/ckr.hpp"
#include "pkcs11/signing.hpp"

namespace kortti::pkcs11 {

namespace {

constexpr std::size_t kSignatureBuffer = 1024;  // RSA-8192 or any EC curve

PinStatus pin_status_from(const CK_TOKEN_INFO& t) {
  PinStatus p;
  p.count_low = (t.flags & CKF_USER_PIN_COUNT_LOW) != 0;
  p.final_try = (t.flags & CKF_USER_PIN_FINAL_TRY) != 0;
  p.locked = (t.flags & CKF_USER_PIN_LOCKED) != 0;
  if (p.locked) {
    p.tries_left = 0;
  } else if (p.final_try) {
    p.tries_left = 1;
  }
  p.min_length = t.ulMinPinLen;
  p.max_length = t.ulMaxPinLen;
  return p;
}

// Everything a slot snapshot says about the token. The PIN's tries_left is
// left alone here: flags only know "low", "final" and "locked", and the
// caller decides how they combine with an exact count from the card.
void fill_from(TokenInfo& info, const SlotSnapshot& s) {
  info.slot_id = s.id;
  info.slot_description = s.slot_description;
  info.label = padded_string(s.token.label, sizeof s.token.label);
  info.manufacturer = padded_string(s.token.manufacturerID, sizeof s.token.manufacturerID);
  info.model = padded_string(s.token.model, sizeof s.token.model);
  info.serial = padded_string(s.token.serialNumber, sizeof s.token.serialNumber);
  info.login_required = (s.token.flags & CKF_LOGIN_REQUIRED) != 0;
  info.pinpad = (s.token.flags & CKF_PROTECTED_AUTHENTICATION_PATH) != 0;
  const std::optional<int> tries = info.user_pin.tries_left;
  info.user_pin = pin_status_from(s.token);
  if (!info.user_pin.tries_left) info.user_pin.tries_left = tries;
}

// Issuers of `leaf` among `pool`, nearest first, stopping at a self-signed one.
std::vector<Bytes> chain_of(const Bytes& leaf, const std::vector<CertificateInfo>& pool) {
  std::vector<Bytes> chain;
  X509Ptr current = parse_certificate(leaf);
  for (int depth = 0; current && depth < 8; ++depth) {
    if (X509_check_issued(current.get(), current.get()) == X509_V_OK) break;
    X509Ptr next;
    for (const auto& candidate : pool) {
      if (candidate.der == leaf) continue;
      X509Ptr c = parse_certificate(candidate.der);
      if (c && X509_check_issued(c.get(), current.get()) == X509_V_OK) {
        next = std::move(c);
        chain.push_back(candidate.der);
        break;
      }
    }
    current = std::move(next);
  }
  return chain;
}

}  // namespace

struct Token::Login {
  Token& token;
  bool active;
  ~Login() {
    if (!active || !token.anchor_) return;
    token.module_->fn()->C_Logout(token.anchor_->handle());
    token.keys_.clear();
  }
};

Token::Token(std::shared_ptr<Module> module, const SlotSnapshot& slot, std::string token_id,
             std::shared_ptr<const TokenHooks> hooks, const Options& options)
    : module_(std::move(module)),
      slot_(slot.id),
      id_(std::move(token_id)),
      hooks_(std::move(hooks)),
      lifetime_(options.session_lifetime),
      idle_(options.session_idle),
      worker_("p11-token") {
  info_.token_id = id_;
  info_.module = module_->status().path;
  fill_from(info_, slot);
  if (!exact_tries_) info_.user_pin.tries_left = pin_status_from(slot.token).tries_left;
}

Token::~Token() = default;

TokenInfo Token::info() const {
  std::lock_guard lock(mutex_);
  return info_;
}

bool Token::is_same_token(const SlotSnapshot& slot) const {
  std::lock_guard lock(mutex_);
  return slot.id == slot_ && padded_string(slot.token.serialNumber, sizeof slot.token.serialNumber) == info_.serial &&
         padded_string(slot.token.label, sizeof slot.token.label) == info_.label;
}

void Token::update_from(const SlotSnapshot& slot) {
  std::lock_guard lock(mutex_);
  fill_from(info_, slot);
  // An exact count from the card stays until the card is asked again (at
  // every login attempt); without one, the flags are all there is.
  if (!exact_tries_) info_.user_pin.tries_left = pin_status_from(slot.token).tries_left;
}

std::shared_ptr<const std::vector<CertificateInfo>> Token::known_certificates() const {
  std::lock_guard lock(mutex_);
  return published_certificates_;
}

void Token::track(const std::shared_ptr<PendingOperation>& op) {
  std::lock_guard lock(mutex_);
  std::erase_if(pending_, [](const auto& w) { return w.expired(); });
  pending_.push_back(op);
}

void Token::fail_pending(const Error& error) {
  std::vector<std::shared_ptr<PendingOperation>> ops;
  {
    std::lock_guard lock(mutex_);
    for (auto& w : pending_)
      if (auto op = w.lock()) ops.push_back(std::move(op));
    pending_.clear();
  }
  for (auto& op : ops) op->fail(error);
}

// ---- worker thread ----

void Token::open() {
  anchor_.emplace(module_->fn(), slot_);
  work_.emplace(module_->fn(), slot_);
  CK_ULONG count = 0;
  if (module_->fn()->C_GetMechanismList(slot_, nullptr, &count) == CKR_OK) {
    mechanisms_.resize(count);
    if (module_->fn()->C_GetMechanismList(slot_, mechanisms_.data(), &count) != CKR_OK) count = 0;
    mechanisms_.resize(count);
  }
  if (hooks_ && hooks_->reader_resolver) {
    auto reader = hooks_->reader_resolver(info());
    std::lock_guard lock(mutex_);
    info_.reader = std::move(reader);
  }
  refresh_info();
  // Certificates are public objects and do not change while the card is in:
  // read them now, so listing never has to wait for a busy card.
  try {
    certificates();
  } catch (const Error& e) {
    spdlog::warn("token {}: cannot read its certificates yet: {}", id_, e.what());
  }
}

void Token::close() noexcept {
  work_.reset();
  anchor_.reset();
}

Session& Token::work() {
  if (!work_) throw Error(Errc::card_removed, "the card's session is closed");
  return *work_;
}

void Token::reset_work_session() {
  work_.reset();
  try {
    work_.emplace(module_->fn(), slot_);
  } catch (const Error& e) {
    spdlog::warn("token {}: cannot reopen session: {}", id_, e.detail);
  }
}

void Token::refresh_info() {
  CK_TOKEN_INFO t{};
  const CK_RV rv = module_->fn()->C_GetTokenInfo(slot_, &t);
  if (rv != CKR_OK) return;
  SlotSnapshot snap;
  snap.id = slot_;
  snap.token = t;
  std::optional<int> exact;
  if (hooks_ && hooks_->pin_counter) exact = hooks_->pin_counter(info());
  std::lock_guard lock(mutex_);
  snap.slot_description = info_.slot_description;
  fill_from(info_, snap);
  exact_tries_ = exact.has_value();
  info_.user_pin.tries_left = exact ? exact : pin_status_from(t).tries_left;
  if (info_.user_pin.tries_left == 0) info_.user_pin.locked = true;
}

std::vector<CertificateInfo> Token::certificates() {
  if (certificates_) return *certificates_;
  Session& s = work();
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  CK_CERTIFICATE_TYPE type = CKC_X_509;
  const auto handles = s.find({{CKA_CLASS, &cls, sizeof cls}, {CKA_CERTIFICATE_TYPE, &type, sizeof type}});
  std::vector<CertificateInfo> out;
  std::map<std::string, int> seen;
  for (CK_OBJECT_HANDLE h : handles) {
    CertificateInfo c;
    c.token_id = id_;
    c.der = s.bytes(h, CKA_VALUE);
    if (c.der.empty()) continue;
    const Bytes ck_id = s.bytes(h, CKA_ID);
    const Bytes label = s.bytes(h, CKA_LABEL);
    c.label.assign(label.begin(), label.end());
    std::string local = ck_id.empty() ? "noid" : hex_encode(ck_id);
    if (const int n = seen[local]++; n > 0) local += "-" + std::to_string(n + 1);
    c.cert_id = id_ + "/" + local;
    try {
      describe_certificate(c);
    } catch (const Error& e) {
      spdlog::warn("token {}: skipping certificate object '{}': {}", id_, c.label, e.what());
      continue;
    }
    key_ids_[c.cert_id] = ck_id;
    out.push_back(std::move(c));
  }
  for (auto& c : out) c.chain = chain_of(c.der, out);
  certificates_ = out;
  std::lock_guard lock(mutex_);
  published_certificates_ = std::make_shared<const std::vector<CertificateInfo>>(out);
  return out;
}

const CertificateInfo& Token::find_certificate(std::string_view cert_id) {
  if (!certificates_) certificates();
  for (const auto& c : *certificates_)
    if (c.cert_id == cert_id) return c;
  throw Error(Errc::not_found, "no certificate '" + std::string(cert_id) + "' on this card");
}

CertificateInfo Token::certificate(std::string_view cert_id) { return find_certificate(cert_id); }

Token::Key Token::private_key(const std::string& cert_id) {
  if (auto it = keys_.find(cert_id); it != keys_.end()) return it->second;
  Session& s = work();
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  Bytes ck_id = key_ids_.at(cert_id);
  const auto found = s.find({{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, ck_id.data(), ck_id.size()}}, 2);
  if (found.empty()) throw Error(Errc::not_found, "the card has no private key for certificate '" + cert_id + "'");
  Key key{found.front(), s.boolean(found.front(), CKA_ALWAYS_AUTHENTICATE).value_or(false)};
  keys_[cert_id] = key;
  return key;
}

void Token::check_pin_shape(const Credentials& credentials) const {
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
  if (!credentials.final_try && (pin.final_try || pin.tries_left == 1))
    throw Error(Errc::permission_denied,
                "the PIN has one try left; korttid spends it only for a request with final_try: true, after the "
                "user was told a wrong PIN locks the card")
        .with_detail("final_try_not_confirmed")
        .with_tries_left(1);
}

Error Token::failure(CK_RV rv, const char* call) const {
  Error e = error_from_ckr(rv, call);
  if (e.code() != Errc::service_unavailable) return e;
  // Presence comes from pcscd's reader state, which it refreshes a few times
  // a second: give a card that has just gone that long to show it.
  constexpr auto kSettle = std::chrono::milliseconds(600);
  const auto deadline = std::chrono::steady_clock::now() + kSettle;
  for (;;) {
    CK_SLOT_INFO slot{};
    const CK_RV present = module_->fn()->C_GetSlotInfo(slot_, &slot);
    if (present != CKR_OK || (slot.flags & CKF_TOKEN_PRESENT) == 0)
      return Error(Errc::card_removed, "the card was removed during the operation").with_detail(e.detail);
    if (std::chrono::steady_clock::now() >= deadline) return e;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void Token::throw_pin_failure(const Error& error) {
  Error e = error;
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

void Token::login_user(const Credentials& credentials) {
  check_pin_shape(credentials);
  CK_FUNCTION_LIST* fn = module_->fn();
  CK_RV rv = CKR_OK;
  if (credentials.pinpad) {
    if (!info().pinpad)
      throw Error(Errc::unsupported, "this card's reader has no PIN pad (protected authentication path)");
    rv = fn->C_Login(anchor_->handle(), CKU_USER, nullptr, 0);
  } else if (credentials.pin) {
    rv = fn->C_Login(anchor_->handle(), CKU_USER,
                     reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(credentials.pin->data())),
                     credentials.pin->size());
  } else {
    throw Error(Errc::pin_required, "the card is not logged in; give the PIN or use the PIN pad");
  }
  if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
    refresh_info();
    return;
  }
  throw_pin_failure(failure(rv, "C_Login"));
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
}

LoginResult Token::login(const Credentials& credentials, uid_t uid) {
  if (work().user_logged_in()) {
    if (owner_ && *owner_ != uid) throw Error(Errc::permission_denied, "the card is logged in by another user");
    // The same user logging in again: check the PIN given now, do not just
    // extend the old session.
    module_->fn()->C_Logout(anchor_->handle());
    set_session_state(std::nullopt);
  }
  login_user(credentials);
  set_session_state(uid);
  return {true, expires_at_};
}

bool Token::logout(uid_t uid) {
  if (!work().user_logged_in()) {
    set_session_state(std::nullopt);
    return false;
  }
  if (owner_ && *owner_ != uid && uid != 0)
    throw Error(Errc::permission_denied, "only the user who logged in, or root, can log this card out");
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

void Token::authorize(uid_t uid, const Credentials& credentials, bool& transient_login) {
  transient_login = false;
  if (work().user_logged_in()) {
    if (owner_) {
      if (*owner_ != uid) throw Error(Errc::permission_denied, "the card is logged in by another user");
      last_used_ = std::chrono::steady_clock::now();
      return;
    }
    // Logged in without an owner can only be a leftover; start clean.
    module_->fn()->C_Logout(anchor_->handle());
    keys_.clear();
  }
  if (!info().login_required) return;
  if (!credentials.pin && !credentials.pinpad)
    throw Error(Errc::pin_required, "the card is not logged in; give the PIN or use the PIN pad");
  login_user(credentials);
  keys_.clear();
  transient_login = true;
}

SignResult Token::sign_one(const SignRequest& request, const Credentials& credentials) {
  const CertificateInfo& cert = find_certificate(request.cert_id);
  const Scheme scheme = request.scheme.value_or(default_scheme(cert.key_type));
  check_scheme_fits(scheme, cert.key_type);
  if (!mechanisms_.empty() &&
      std::find(mechanisms_.begin(), mechanisms_.end(), mechanism_of(scheme)) == mechanisms_.end())
    throw Error(Errc::unsupported, "this card does not offer " + std::string(name_of(scheme)) + " signatures");
  if (request.digest.size() != digest_size(request.digest_algorithm))
    throw Error(Errc::invalid_params,
                "the digest is not a " + std::string(name_of(request.digest_algorithm)) + " digest");

  Key key = private_key(cert.cert_id);
  if (key.always_authenticate && !credentials.pin && !credentials.pinpad)
    throw Error(Errc::pin_required, "this key asks for the PIN at every signature");
  if (key.always_authenticate) check_pin_shape(credentials);

  const Bytes input = scheme == Scheme::pkcs1 ? digest_info(request.digest_algorithm, request.digest) : request.digest;
  CK_RSA_PKCS_PSS_PARAMS pss = pss_params(request.digest_algorithm);
  CK_MECHANISM mechanism{mechanism_of(scheme), nullptr, 0};
  if (scheme == Scheme::pss) {
    mechanism.pParameter = &pss;
    mechanism.ulParameterLen = sizeof pss;
  }

  CK_FUNCTION_LIST* fn = module_->fn();
  CK_RV rv = fn->C_SignInit(work().handle(), &mechanism, key.handle);
  if (rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID) {
    // The module renumbered its objects; look the key up once more.
    keys_.erase(cert.cert_id);
    key = private_key(cert.cert_id);
    rv = fn->C_SignInit(work().handle(), &mechanism, key.handle);
  }
  if (rv != CKR_OK) throw failure(rv, "C_SignInit");
  Session& s = work();
  if (key.always_authenticate) {
    rv = credentials.pinpad ? fn->C_Login(s.handle(), CKU_CONTEXT_SPECIFIC, nullptr, 0)
                            : fn->C_Login(s.handle(), CKU_CONTEXT_SPECIFIC,
                                          reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(credentials.pin->data())),
                                          credentials.pin->size());
    if (rv != CKR_OK) {
      reset_work_session();
      throw_pin_failure(failure(rv, "C_Login(CKU_CONTEXT_SPECIFIC)"));
    }
  }
  Bytes signature(kSignatureBuffer);
  CK_ULONG length = signature.size();
  rv = fn->C_Sign(s.handle(), const_cast<CK_BYTE_PTR>(input.data()), input.size(), signature.data(), &length);
  if (rv == CKR_BUFFER_TOO_SMALL) {
    signature.resize(length);
    rv = fn->C_Sign(s.handle(), const_cast<CK_BYTE_PTR>(input.data()), input.size(), signature.data(), &length);
  }
  if (rv != CKR_OK) {
    Error e = failure(rv, "C_Sign");
    if (e.code() != Errc::card_removed) reset_work_session();
    throw e;
  }
  signature.resize(length);
  if (scheme == Scheme::ecdsa) signature = ecdsa_raw_to_der(signature);
  if (owner_) last_used_ = std::chrono::steady_clock::now();

  SignResult result;
  result.signature = std::move(signature);
  result.signature_algorithm = signature_algorithm_name(scheme, request.digest_algorithm);
  result.scheme = scheme;
  result.certificate = cert;
  return result;
}

SignResult Token::sign(const SignRequest& request, const Credentials& credentials) {
  bool transient = false;
  authorize(request.uid, credentials, transient);
  Login undo{*this, transient};
  return sign_one(request, credentials);
}

void Token::sign_each(const std::vector<SignRequest>& requests, const Credentials& credentials,
                      const std::function<bool()>& stopped,
                      const std::function<void(std::size_t, Result<SignResult>)>& each) {
  if (requests.empty()) return;
  bool transient = false;
  try {
    authorize(requests.front().uid, credentials, transient);
  } catch (const Error& e) {
    for (std::size_t i = 0; i < requests.size(); ++i) each(i, e);
    return;
  }
  Login undo{*this, transient};
  std::optional<Error> stop_all;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (stop_all) {
      each(i, *stop_all);
      continue;
    }
    if (stopped()) {
      each(i, Error(Errc::token_busy, "the batch's deadline passed before this item was signed"));
      continue;
    }
    Result<SignResult> r = capture([&] { return sign_one(requests[i], credentials); });
    if (!r.ok()) {
      const Errc code = r.error().code();
      // A wrong PIN must not be tried again on the next item (it would burn
      // the card's retries); a pulled card cannot sign the rest.
      if (code == Errc::card_removed || code == Errc::pin_incorrect || code == Errc::pin_locked ||
          code == Errc::pin_entry_cancelled)
        stop_all = r.error();
    }
    each(i, std::move(r));
  }
}

}  // namespace kortti::pkcs11
