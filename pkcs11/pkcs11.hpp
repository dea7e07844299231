#pragma once

// pkcs11/: PKCS#11 modules, tokens, certificates, login and signing.
//
// Modules are loaded through p11-kit in managed mode and driven through the
// PKCS#11 API; see docs/pkcs11.md for why not libp11 0.4.12. Each token owns
// its sessions and a Worker thread, so card operations are serialised per card
// and never run on the caller's thread. All TokenService methods must be called
// on the io_context's thread, and all completions run there.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "common/keys.hpp"
#include "common/result.hpp"
#include "common/secret.hpp"
#include "common/task.hpp"
#include "common/time.hpp"

namespace kortti::pkcs11 {

enum class Purpose { authentication, signature };
std::string_view name_of(Purpose p) noexcept;
std::optional<Purpose> parse_purpose(std::string_view name);

// The key vocabulary is common/keys.hpp, shared with signature/.
using kortti::default_scheme;
using kortti::KeyType;
using kortti::name_of;
using kortti::parse_scheme;
using kortti::Scheme;

struct ModuleStatus {
  std::string path;
  bool loaded = false;
  std::string error;  // why it did not load, for people
  std::string description;
  std::string manufacturer;
  std::string library_version;
};

struct PinStatus {
  std::optional<int> tries_left;  // only where the token or card tells
  bool count_low = false;
  bool final_try = false;
  bool locked = false;
  std::size_t min_length = 0;
  std::size_t max_length = 0;
  // The module's flag, or the card's own count: the next wrong PIN locks it.
  [[nodiscard]] bool on_last_try() const { return final_try || tries_left == 1; }
};

struct TokenInfo {
  std::string token_id;
  std::string module;
  unsigned long slot_id = 0;
  std::string slot_description;
  std::optional<std::string> reader;  // the PC/SC reader, where correlated
  std::string label;
  std::string manufacturer;
  std::string model;
  std::string serial;
  bool login_required = false;
  bool logged_in = false;
  std::optional<uid_t> session_owner;
  std::optional<SystemTime> session_expires_at;
  // Unused until then, the session ends ([session] idle_timeout_s).
  std::optional<std::chrono::steady_clock::time_point> session_idle_until;
  bool pinpad = false;  // CKF_PROTECTED_AUTHENTICATION_PATH
  // CKM_RSA_PKCS_PSS is in the token's mechanism list (or it gave none):
  // what TLS 1.3 and a PS256 token need of an RSA key.
  bool rsa_pss = true;
  PinStatus user_pin;

  // Whose session the card's next operation would find: its owner's, unless
  // the session is past its lifetime or idle time, which its worker ends
  // before that operation even if the sweep has not ended it yet.
  [[nodiscard]] std::optional<uid_t> live_session_owner() const {
    if (!logged_in) return std::nullopt;
    if (session_expires_at && std::chrono::system_clock::now() >= *session_expires_at) return std::nullopt;
    if (session_idle_until && std::chrono::steady_clock::now() >= *session_idle_until) return std::nullopt;
    return session_owner;
  }
};

struct CertificateInfo {
  std::string cert_id;  // <token_id>/<CKA_ID hex>
  std::string token_id;
  std::string label;
  Bytes der;
  std::string subject;  // RFC 2253
  std::string issuer;
  std::string serial;  // hex
  SystemTime not_before;
  SystemTime not_after;
  KeyType key_type = KeyType::rsa;
  int key_bits = 0;
  std::string curve;  // "P-256", "P-384", "P-521" for EC keys
  std::vector<Purpose> purposes;
  std::vector<Bytes> chain;  // issuers found on the same token, nearest first
};

// Whether the certificate's key is for `p` (its keyUsage).
[[nodiscard]] bool has_purpose(const CertificateInfo& cert, Purpose p) noexcept;
// For `p` and not the other purpose too: what a page may use. A key that
// both signs and logs in would let a page's signature stand for a login.
[[nodiscard]] bool serves_only(const CertificateInfo& cert, Purpose p) noexcept;

// How the card holder proves presence for one request: a PIN, or the reader's
// PIN pad (protected authentication path). Neither means "use the session".
struct Credentials {
  std::optional<SecretString> pin;
  bool pinpad = false;
  // The caller knows the PIN has one try left and means to spend it. Without
  // it a typed PIN is not tried on its last try (a PIN pad's user sees the
  // reader ask, so a PIN pad needs no such word).
  bool final_try = false;
  // The request asked korttid to ask the card holder itself (pin_prompt).
  // The service core turns it into a PIN before the card is asked; the
  // token service treats it as no credential.
  bool prompt = false;
  // The card holder just typed this PIN (or is asked on the PIN pad) in
  // korttid's own dialog: it is checked at the card even while the user's
  // PIN1 session is open, so the dialog is never a formality. A wrong PIN
  // then ends that session.
  bool check_in_session = false;
};

struct SignRequest {
  std::string cert_id;
  DigestAlgorithm digest_algorithm = DigestAlgorithm::sha256;
  Bytes digest;
  std::optional<Scheme> scheme;  // default: pkcs1 for RSA, ecdsa for EC
  uid_t uid = 0;
  // Only a key the session unlocks will do (TLS client authentication): a
  // key that asks for the PIN at every signature — the PIN2 key — is
  // refused with 1050, not asked for a PIN no one is there to give.
  bool session_key = false;
};

// A new PIN for the user PIN, proven by the old PIN (pin.change) or by the
// PUK / activation code (pin.unblock).
struct PinChange {
  SecretString proof;  // the old PIN, or the PUK
  SecretString new_pin;
  bool final_try = false;  // pin.change: the caller knows the old PIN has one try left
  // Both are typed on the reader's PIN pad instead (protected
  // authentication path): the module asks for them, korttid never sees them.
  bool pinpad = false;
};

// The lengths a new user PIN may have: the token's own range, or 4 to 8
// (finland.md) where it gives none or an absurd one.
struct PinLengths {
  std::size_t min;
  std::size_t max;
};
PinLengths new_pin_lengths(const PinStatus& status);

// Why `pin` cannot be a new user PIN of a token with `status`, or nothing:
// the token's length range (4 to 8 where it gives none) and digits only, as
// healthcare and PIV cards take (finland.md). Checked before any card I/O.
std::optional<std::string> new_pin_problem(const PinStatus& status, std::string_view pin);

// How a module unblocks the user PIN with the PUK. PKCS#11 itself has
// C_Login(CKU_SO, PUK) and C_InitPIN(new); OpenSC's PIV and most emulated
// cards take C_SetPIN(PUK, new) in a session not logged in, and only with
// `user_pin_unblock_style = set_pin_in_unlogged_session` (docs/pins.md).
enum class UnblockStyle { so_login, set_pin_unlogged };

struct SignResult {
  Bytes signature;  // ECDSA DER-encoded, as X.509 tools expect
  std::string signature_algorithm;
  Scheme scheme = Scheme::pkcs1;
  CertificateInfo certificate;
};

struct LoginResult {
  bool logged_in = false;
  std::optional<SystemTime> expires_at;
};

struct TokenEvent {
  enum class Type { present, absent, logged_in, logged_out, pin_changed, pin_unblocked };
  Type type;
  TokenInfo token;
};

struct Options {
  std::vector<std::string> modules;
  std::chrono::seconds session_lifetime{std::chrono::hours(8)};
  std::chrono::seconds session_idle{std::chrono::minutes(30)};
  UnblockStyle unblock_style = UnblockStyle::set_pin_unlogged;
};

class TokenService {
 public:
  TokenService(boost::asio::io_context& io, Options options);
  ~TokenService();
  TokenService(const TokenService&) = delete;
  TokenService& operator=(const TokenService&) = delete;

  // Loads every module (one failing does not stop the others) and scans slots.
  void start(Completion<Unit> done);
  // Closes sessions and finalises modules; waits at most `grace` for cards.
  // False if a card call was still running: its module is left as it is.
  [[nodiscard]] bool shutdown(std::chrono::milliseconds grace);

  [[nodiscard]] std::vector<ModuleStatus> modules() const;
  [[nodiscard]] std::vector<TokenInfo> tokens() const;
  [[nodiscard]] std::optional<TokenInfo> token(std::string_view token_id) const;

  // Asks every module for its slots again; tokens that came or went raise events.
  void rescan(Completion<Unit> done);

  Task<std::vector<CertificateInfo>> certificates(std::optional<std::string> token_id);
  // Every present token's certificates. A token whose list cannot be read is
  // left out (and logged); `unreadable` keeps why, so a caller that finds
  // nothing fit can say that a card could not be read rather than that no
  // card has what it looked for.
  struct Listing {
    std::vector<CertificateInfo> certificates;
    std::optional<Error> unreadable;
    // The error for finding none of `certificates` fit: not_found, "no card
    // present has `what`", or the unreadable token's own error.
    [[nodiscard]] Error none_fit(const std::string& what) const;
  };
  Task<Listing> all_certificates();
  // From what the token listed when it was opened, where it could.
  Task<CertificateInfo> certificate(std::string cert_id);

  Task<LoginResult> login(std::string token_id, Credentials credentials, uid_t uid, std::stop_token stop);
  // True if it ended a session (the card was logged in).
  Task<bool> logout(std::string token_id, uid_t uid);

  // One signature. A queued request whose stop token fires is never started.
  Task<SignResult> sign(SignRequest request, Credentials credentials, std::stop_token stop);

  // Several signatures with one credential, each a separate context-specific
  // login where the key demands it. Results keep their order; a card removed
  // midway fails the rest with card_removed and keeps what was signed.
  // `each` runs on the io thread as each signature (or its failure) arrives,
  // also after the card was pulled and the batch has already ended.
  Task<Unit> sign_many(std::vector<SignRequest> requests, Credentials credentials, std::stop_token stop,
                       std::function<void(std::size_t index, Result<SignResult>)> each);

  // The user PIN changed (the old PIN as proof) or unblocked (the PUK). A
  // new PIN outside the token's length range, or not digits, is refused
  // before the card is asked. A session of another uid refuses both (1040);
  // an unblock ends the caller's own session.
  Task<Unit> change_pin(std::string token_id, PinChange change, uid_t uid, std::stop_token stop);
  Task<Unit> unblock_pin(std::string token_id, PinChange change, uid_t uid, std::stop_token stop);
  // Throws what a typed PIN from `uid` on the last try of `token_id` would
  // get (1040 last_try_not_yours, docs/protocol.md): korttid's dialog asks
  // before it asks the user. Any thread.
  void check_last_try(const std::string& token_id, uid_t uid) const;
  // Throws what a signature with `cert_id` by `uid` with `credentials` would
  // get before the card is asked: its card is not present (1002), another
  // uid's session holds it (1040), or it needs a PIN the request does not
  // bring (1010; pin_prompt counts as bringing one), or a PIN the card
  // would not try (its length, its last try: -32602, 1040; a PIN pad it
  // lacks: 1050), or a PIN that is locked (1012). Checked before the
  // request is queued or audited, so that requests no card would take leave
  // no trace but the request log. On the io thread; only a PIN the last
  // look found locked is looked at again, on the card's worker (another
  // program may have unblocked it), so a locked card costs one look a
  // request and never an audit line. `credentials` must outlive the check.
  // `use`: a signature with a signature key (nonRepudiation) needs its PIN
  // even in a session (1010); a login token's key is checked by its caller.
  Task<Unit> check_may_sign(std::string cert_id, uid_t uid, const Credentials& credentials, std::stop_token stop,
                            Purpose use = Purpose::signature);
  // The same for session.login: the card is present (1002), no other uid's
  // session holds it (1040), and the PIN is one the card would try.
  Task<Unit> check_may_login(std::string token_id, uid_t uid, const Credentials& credentials, std::stop_token stop);
  // The same for pin.unblock: the card is present (1002), no other uid's
  // session holds it (1040), its PUK is not known to be locked (1012: an
  // earlier unblock found it so), and, with unblock_style
  // set_pin_unlogged, its PIN is locked (-32602: a PIN with tries left is
  // changed, not unblocked), as the card's worker reads it now; and a PUK
  // typed by `uid` (not on a PIN pad) is one it may still give (1040
  // puk_not_yours: PinGuard::check_puk).
  Task<Unit> check_may_unblock(std::string token_id, uid_t uid, bool pinpad, std::stop_token stop);
  // For session.logout: the card is present (1002), and a session on it is
  // one `uid` may end (its owner, or root; else 1040). On the io thread.
  void check_may_log_out(const std::string& token_id, uid_t uid) const;

  using EventHandler = std::function<void(const TokenEvent&)>;
  void on_event(EventHandler handler);

  // PC/SC integration: which reader a slot belongs to, and the exact number of
  // PIN tries left where the card can be asked directly. Both run on token
  // worker threads and must be thread-safe.
  using ReaderResolver = std::function<std::optional<std::string>(const TokenInfo&)>;
  using PinCounter = std::function<std::optional<int>(const TokenInfo&)>;
  void set_reader_resolver(ReaderResolver resolver);
  void set_pin_counter(PinCounter counter);

  // A card left `reader`: its tokens go at once (operations in flight fail
  // with card_removed, a session ends, events logged_out and absent), and
  // slots are scanned again.
  void card_removed(const std::string& reader);

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace kortti::pkcs11
