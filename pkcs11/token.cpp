// Token: its lifetime on the worker (open, close, the work session), what it
// publishes to other threads (info, pending operations) and how a failed call
// is told apart from a pulled card. Certificates, login and signing are in
// token_certificates.cpp, token_login.cpp and token_signing.cpp.

#include "pkcs11/token.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "pkcs11/ckr.hpp"

namespace kortti::pkcs11 {

namespace {

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

// The card's own counter outranks the module's flags, which OpenSC leaves
// at "final try" after a right PIN has reset the counter.
void trust_exact_count(PinStatus& pin) {
  if (!pin.tries_left) return;
  pin.final_try = *pin.tries_left == 1;
  pin.locked = *pin.tries_left == 0;
}

}  // namespace

Token::Token(std::shared_ptr<Module> module, const SlotSnapshot& slot, std::string token_id,
             std::shared_ptr<const TokenHooks> hooks, const Options& options)
    : module_(std::move(module)),
      slot_(slot.id),
      id_(std::move(token_id)),
      hooks_(std::move(hooks)),
      lifetime_(options.session_lifetime),
      idle_(options.session_idle),
      // Jobs a request left (its deadline passed, its client went) stay
      // queued until their turn, where they are dropped unrun; without a
      // bound, a client that kept connecting, sending and closing while the
      // card was busy could queue them without end.
      worker_("p11-token", Worker::Limits{kMaxQueuedJobs, 0, kMaxQueuedJobsPerUid, 0}) {
  info_.token_id = id_;
  info_.module = module_->status().path;
  fill_from(info_, slot);
  if (!exact_tries_) info_.user_pin.tries_left = pin_status_from(slot.token).tries_left;
}

Token::~Token() = default;

PinKey Token::pin_key() const {
  std::lock_guard lock(mutex_);
  if (info_.serial.empty()) return {id_, id_};
  return {info_.serial + "\n" + info_.label, info_.serial};
}

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
  // A reader not known at the opening (pcscd was restarting, and the
  // monitor had not listed its readers again yet) is looked for at each
  // scan: without it the card's removal is seen only at the next scan, and
  // a FINEID card's counter is not read.
  if (hooks_ && hooks_->reader_resolver) {
    if (const TokenInfo now = info(); !now.reader) {
      auto reader = hooks_->reader_resolver(now);
      std::lock_guard lock(mutex_);
      if (!info_.reader) info_.reader = std::move(reader);
    }
  }
  std::lock_guard lock(mutex_);
  // An exact count from the card stays until the card is asked again (at
  // every login attempt); without one, the flags are all there is.
  const std::optional<int> exact = exact_tries_ ? info_.user_pin.tries_left : std::nullopt;
  fill_from(info_, slot);
  info_.user_pin.tries_left = exact ? exact : pin_status_from(slot.token).tries_left;
  if (exact) trust_exact_count(info_.user_pin);
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
  {
    std::lock_guard lock(mutex_);
    info_.rsa_pss =
        mechanisms_.empty() || std::find(mechanisms_.begin(), mechanisms_.end(), CKM_RSA_PKCS_PSS) != mechanisms_.end();
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
  if (exact) trust_exact_count(info_.user_pin);
  if (info_.user_pin.tries_left == 0) info_.user_pin.locked = true;
}

bool Token::pin_locked_now() {
  refresh_info();
  return info().user_pin.locked;
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

}  // namespace kortti::pkcs11
