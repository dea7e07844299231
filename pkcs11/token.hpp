#pragma once

// Internal to pkcs11/ (docs/architecture.md, Layering); include pkcs11/pkcs11.hpp.
#if !defined(KORTTI_COMPONENT_PKCS11) && !defined(KORTTI_WHITE_BOX)
#error "pkcs11/token.hpp is internal to pkcs11/; include pkcs11/pkcs11.hpp"
#endif

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/worker.hpp"
#include "pkcs11/module.hpp"
#include "pkcs11/pin_guard.hpp"
#include "pkcs11/pkcs11.hpp"
#include "pkcs11/session.hpp"

namespace kortti::pkcs11 {

// Something queued on a token that can be failed from outside (card pulled).
class PendingOperation {
 public:
  virtual ~PendingOperation() = default;
  virtual void fail(Error error) = 0;
};

struct TokenHooks {
  TokenService::ReaderResolver reader_resolver;
  TokenService::PinCounter pin_counter;
  std::shared_ptr<PinGuard> pin_guard = std::make_shared<PinGuard>();
};

// Who may use a card's keys. Another uid's PIN1 session refuses everyone
// else, PIN or not (1040); a card that asks for a login and has no session
// needs a PIN or the PIN pad with the request (1010). `session_owner`: the
// uid whose session is open, if one is. The one rule for both checks: the
// io thread's, before a request is queued or audited (from info()), and
// the card thread's, against the card's own state.
void check_may_use(std::optional<uid_t> session_owner, bool login_required, uid_t uid, bool pin_given);
// 1010 for a signature with a signature key (nonRepudiation) that carries
// no PIN: a PIN1 session does not stand in for it.
[[nodiscard]] Error signature_pin_required();
// pin.unblock of a PIN with tries left, in the unblock style that would
// spend a PUK try on it (docs/pins.md).
inline constexpr const char* kPinNotLocked = "the PIN is not locked: change it with pin.change (the old PIN) instead";
// Who may end a card's session: its owner, or root (1040).
void check_may_log_out(std::optional<uid_t> session_owner, uid_t uid);

// 1003: the card has no certificate `cert_id`.
[[nodiscard]] Error certificate_not_found(std::string_view cert_id);

// One token in one slot of one module. Everything that touches the card runs on
// worker(); info() and the pending list may be used from any thread.
class Token {
 public:
  Token(std::shared_ptr<Module> module, const SlotSnapshot& slot, std::string token_id,
        std::shared_ptr<const TokenHooks> hooks, const Options& options);
  ~Token();
  Token(const Token&) = delete;
  Token& operator=(const Token&) = delete;

  // Card operations that may wait for a token at once (its worker's queue),
  // and one uid's share of them.
  static constexpr std::size_t kMaxQueuedJobs = 4096;
  static constexpr std::size_t kMaxQueuedJobsPerUid = kMaxQueuedJobs / 4;

  // --- any thread ---
  [[nodiscard]] TokenInfo info() const;
  // This token's PIN and card to the PinGuard.
  [[nodiscard]] PinKey pin_key() const;
  [[nodiscard]] const std::string& id() const noexcept { return id_; }
  [[nodiscard]] const Module& module() const noexcept { return *module_; }
  [[nodiscard]] Worker& worker() noexcept { return worker_; }
  [[nodiscard]] bool is_same_token(const SlotSnapshot& slot) const;
  void update_from(const SlotSnapshot& slot);

  // The certificate list read when the token opened, or null if it could
  // not be read then. Lets listing answer while the card is busy.
  [[nodiscard]] std::shared_ptr<const std::vector<CertificateInfo>> known_certificates() const;

  void track(const std::shared_ptr<PendingOperation>& op);
  void fail_pending(const Error& error);

  // What the card would be spared of a login with `credentials` by `uid`:
  // a PIN pad the reader lacks (1050), a PIN of a length it cannot take,
  // its last try (1040). Checked on the io thread before a request is
  // queued or audited, and on the worker before C_Login.
  void check_login(const Credentials& credentials, uid_t uid) const;

  // --- worker thread only ---
  void open();
  void close() noexcept;
  std::vector<CertificateInfo> certificates();
  CertificateInfo certificate(std::string_view cert_id);
  LoginResult login(const Credentials& credentials, uid_t uid);
  bool logout(uid_t uid);  // true if the token was logged in
  SignResult sign(const SignRequest& request, const Credentials& credentials);
  // Signs each request in order with one credential (sign.batch); stops at
  // the first card removal and reports the rest as removed too.
  void sign_each(const std::vector<SignRequest>& requests, const Credentials& credentials,
                 const std::function<bool()>& stopped,
                 const std::function<void(std::size_t, Result<SignResult>)>& each);
  // pin.change and pin.unblock (token_pin.cpp).
  void change_pin(const PinChange& change, uid_t uid);
  void unblock_pin(const PinChange& change, UnblockStyle style, uid_t uid);
  // Logs out a session past its lifetime or idle time; true if it did.
  bool expire_if_due();
  // Whether the card says its PIN is locked now (its flags read again: a
  // PIN unblocked by another program is seen).
  bool pin_locked_now();

 private:
  struct Login;  // undoes a login made only for one request
  [[nodiscard]] Session& work();
  void reset_work_session();
  void refresh_info();
  // Before a typed PIN reaches the card: its length, and the last try
  // (final_try, and PinGuard for `uid`).
  void check_pin_shape(const Credentials& credentials, uid_t uid) const;
  // check_login() on the worker, with the card's counter read first: another
  // program (a browser's PKCS#11 module, the vendor's client) may have
  // spent tries since korttid last looked, and the guards of the last try
  // must not go by an old count. Not again within kRecountAfter of the
  // last PIN korttid sent: a burst of requests, each with the PIN, reads
  // it once (and korttid's own tries are counted as they are answered).
  static constexpr std::chrono::seconds kRecountAfter{1};
  void check_typed_pin(const Credentials& credentials, uid_t uid);
  void check_new_pin(const SecretString& pin) const;
  void check_pinpad(const PinChange& change) const;
  // 1040 when another uid holds the card's session.
  void check_not_anothers(uid_t uid) const;
  // `typist`: the uid whose typed PIN the card refused (typed_by()).
  [[noreturn]] void throw_pin_failure(const Error& error, std::optional<uid_t> typist);
  // error_from_ckr, but a device failure on a card that has just left is
  // card_removed: modules report a broken transmit before anyone has seen
  // the removal.
  [[nodiscard]] Error failure(CK_RV rv, const char* call) const;
  // C_Login with the PIN or the pad, which check_typed_pin() has passed.
  void send_login(const Credentials& credentials, uid_t uid);
  // `cert_id`: the key about to sign. One that asks for its PIN at every
  // signature (CKA_ALWAYS_AUTHENTICATE) has that PIN checked there, not by
  // a second login into the session (its PIN may not be the session's).
  void authorize(uid_t uid, const Credentials& credentials, const std::string& cert_id, bool& transient_login);
  SignResult sign_one(const SignRequest& request, const Credentials& credentials);
  void set_session_state(std::optional<uid_t> owner);
  // The session was used: its idle time starts again.
  void used_now();
  const CertificateInfo& find_certificate(std::string_view cert_id);
  struct Key {
    CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
    bool always_authenticate = false;
  };
  Key private_key(const std::string& cert_id);
  // The signature of a C_SignInit made on the work session, after the
  // key's own PIN where it asks for one.
  Bytes sign_initialised(const Key& key, const Credentials& credentials, uid_t uid, const Bytes& input);

  std::shared_ptr<Module> module_;
  CK_SLOT_ID slot_;
  std::string id_;
  std::shared_ptr<const TokenHooks> hooks_;
  std::chrono::seconds lifetime_;
  std::chrono::seconds idle_;

  mutable std::mutex mutex_;  // guards info_, exact_tries_ and pending_
  TokenInfo info_;
  bool exact_tries_ = false;  // info_.user_pin.tries_left came from the card (PinCounter)
  std::shared_ptr<const std::vector<CertificateInfo>> published_certificates_;
  std::vector<std::weak_ptr<PendingOperation>> pending_;

  // Worker-thread state. The anchor session holds the login and is never used
  // for operations; the work session is replaced when an operation is left
  // half done (a failed context-specific login leaves C_SignInit active).
  std::optional<Session> anchor_;
  std::optional<Session> work_;
  std::vector<CK_MECHANISM_TYPE> mechanisms_;
  std::optional<std::vector<CertificateInfo>> certificates_;
  std::map<std::string, Bytes> key_ids_;  // cert_id -> CKA_ID of its key
  // Private key handles found so far. Private objects can change handle or
  // vanish with the login state, so any login or logout clears this.
  std::map<std::string, Key> keys_;
  std::optional<uid_t> owner_;
  SystemTime expires_at_{};
  std::chrono::steady_clock::time_point last_used_{};
  // When korttid last sent a typed PIN to the card (check_typed_pin).
  std::chrono::steady_clock::time_point last_pin_sent_{};

  Worker worker_;
};

}  // namespace kortti::pkcs11
