#pragma once

// service/: what korttid does, below every transport. Each operation is one
// coroutine that reads top to bottom — the facts, the policy, the card, the
// audit line, the result — taking a typed request and the caller, returning a
// typed result or throwing a kortti::Error. The Unix socket (ipc/) turns JSON
// into these requests and these results into JSON; the TLS, HTTPS and Web eID
// front ends call the same functions. Nothing here knows about JSON.
//
// Every operation runs on the io thread and co_awaits the token, policy and
// documents workers (common/task.hpp); none of them blocks.

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <variant>
#include <vector>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "common/log_budget.hpp"
#include "common/result.hpp"
#include "common/task.hpp"
#include "pinentry/pinentry.hpp"
#include "pkcs11/pkcs11.hpp"
#include "policy/policy.hpp"
#include "signature/signature.hpp"

namespace kortti::service {

// Who asks, as the transport vouches for it.
struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  std::uint64_t connection = 0;
  std::string client;                 // as the client named itself
  std::optional<std::string> origin;  // a browser front end's web origin
  std::stop_token stop;               // the request is over: deadline passed, or the client left
  // Whether an answer sent now would still reach the caller (for the audit).
  std::function<bool()> listening = [] { return true; };

  // A worker's ticket for this request: its stop token, the bytes it holds,
  // and the uid whose share of the worker's queue it takes.
  [[nodiscard]] Ticket ticket(std::size_t bytes = 0) const { return Ticket{stop, bytes, uid}; }
};

// One line of the audit trail: who did what with which key, the digest of
// what was signed, and the outcome. Never a document, never a PIN.
struct AuditRecord {
  std::string action;  // the operation, e.g. "sign.xml" or "sign.batch sign.xml"
  Caller caller;
  std::string token_id;
  std::string cert_id;
  std::string subject;
  std::string digest_algorithm;
  std::string digest_hex;             // of what was signed
  std::optional<std::string> origin;  // the web origin served: a browser's, or an auth token's
  std::string outcome;                // "ok", the error reason, or "begun" (below)
  std::string detail;
  bool delivered = true;  // false when the caller had gone before the answer
  // One try at the card writes two lines with the same attempt id: "begun"
  // before the card is asked, and its outcome. A begun line without an
  // outcome line is a try whose signature may exist (korttid stopped before
  // it could say how it ended). Empty: a line that stands alone.
  std::string attempt;
};

inline constexpr const char* kAuditBegun = "begun";

class AuditSink {
 public:
  virtual ~AuditSink() = default;
  // Writes the line and reports once, from any thread: true when it is on
  // stable storage, false when it could not be made durable — what it
  // records is then refused (no audit, no signature). Lines are written in
  // the order record() was called.
  virtual void record(AuditRecord record, std::function<void(bool)> done) = 0;
  // Writes the line with nobody waiting for it (a signature's outcome, once
  // its begun line is durable): it is made durable with the next line that
  // is recorded, or soon after on its own; a failure is logged.
  virtual void note(AuditRecord record) = 0;
};

// --- what may be signed ---

// sign.digest, and sign.data once hashed.
struct DigestToSign {
  DigestAlgorithm algorithm = DigestAlgorithm::sha256;
  Bytes digest;
  std::optional<pkcs11::Scheme> scheme;  // none: the key's default
  bool session_key = false;              // pkcs11::SignRequest::session_key
};

struct XmlToSign {
  std::string document;
  signature::Profile profile = signature::Profile::enveloped;
};

struct CmsToSign {
  signature::CmsInput input;                        // content or content digest, detached or not
  std::optional<pkcs11::Scheme> scheme;             // none: the key's default
  std::optional<DigestAlgorithm> digest_algorithm;  // none: [signature] rsa_digest / ec_digest
};

struct PrescriptionToSign {
  std::string document;     // a Kanta e-prescription CDA
  policy::Context context;  // the client's; what the document says replaces it
};

struct SignItem {
  std::string method;  // how the audit names it: sign.digest, sign.data, sign.xml, sign.cms, sign.prescription
  std::string detail;  // the audit line's note on the occasion (a TLS handshake's name, version and algorithm)
  // The certificate passes the policy for this action before the card is
  // asked (a browser front end: validity and revocation for every
  // signature); a denial is audited and thrown. Prescriptions have their own.
  std::optional<policy::Action> validate_for;
  std::variant<DigestToSign, XmlToSign, CmsToSign, PrescriptionToSign> what;
};

struct Signed {
  pkcs11::SignResult card;                   // the card's signature and certificate
  std::optional<std::string> document;       // XML and prescriptions: the signed document
  std::optional<Bytes> cms;                  // CMS: the SignedData (DER)
  std::optional<policy::Decision> decision;  // prescriptions: why the policy allowed it
};

// --- what a verification found ---

struct SignerCheck {
  Bytes certificate;                         // empty: no certificate in the signature carries the signer's key
  std::optional<policy::Decision> decision;  // the certificate through the policy (sign_document)
};

struct XmlReport {
  std::vector<signature::XmlVerification> signatures;
  std::vector<SignerCheck> signers;  // one per signature
};

struct CmsReport {
  signature::CmsVerification cms;
  std::vector<SignerCheck> signers;  // one per signer
};

struct IdentityReport {
  std::string cert_id;
  policy::Action action;
  policy::Decision decision;
};

// --- logging in with the authentication key ---

// A Web eID login challenge, as the relying party issued it.
struct Challenge {
  std::string origin;  // https://host[:port]
  std::string nonce;   // base64 text, at least 44 characters
};

// What a relying party would decide of a token: the token itself, then its
// certificate through the policy for `authenticate`.
struct TokenReport {
  signature::WebEidCheck token;
  std::optional<policy::Decision> decision;  // absent when the token itself did not hold
  [[nodiscard]] bool valid() const noexcept { return token.valid() && decision && decision->allowed; }
};

// pin.change and pin.unblock: the PINs sent with the request, or pin_prompt
// (korttid asks for both in its own dialog, the new one typed twice).
struct NewPin {
  std::optional<SecretString> proof;  // the old PIN (change) or the PUK / activation code (unblock)
  std::optional<SecretString> new_pin;
  bool prompt = false;
  bool pinpad = false;     // both typed on the reader's PIN pad
  bool final_try = false;  // change: the old PIN's last try may be spent
};

// policy.check names a card's certificate or a registration number alone.
struct CheckSubject {
  std::optional<std::string> cert_id;
  std::optional<std::string> registration_number;
};

// [pin] pinpad_for: whose requests may make a reader's PIN pad ask.
enum class PinpadFor {
  seat,    // a uid with an active session at a seat of this machine (logind), or root
  anyone,  // every uid [access] lets in
};

// [pin]: where a PIN may come from.
struct PinOptions {
  int prompt_attempts = 3;                     // dialogs per request before a wrong PIN is the answer
  bool client_may_send = true;                 // a PIN for the signature key (PIN2) inside a request
  bool client_may_send_authentication = true;  // one for the authentication key (PIN1)
  PinpadFor pinpad_for = PinpadFor::seat;
};

struct Options {
  std::size_t batch_max_items = 50;
  std::chrono::seconds batch_max_time{std::chrono::minutes(5)};
  PinOptions pin;
  // Documents held from their preparation until their answer (waiting for
  // the card among others), in all and for one uid; past either, 1060.
  std::size_t max_held_bytes = 128 * 1024 * 1024;
  std::size_t max_held_bytes_per_uid = 32 * 1024 * 1024;
  // The audit lines of one uid's policy denials a second, over 10 s (0: no
  // budget): any uid may ask for what the policy refuses, and an audit
  // disk it filled would stop every signature. Past it a denial is
  // answered all the same, and one line says how many were left out.
  std::size_t denial_lines_per_second_per_uid = 1;
};

class HeldDocuments;

// Non-owning; each must outlive the Service. `documents` and `policy` may be
// null (korttid without document signing); `pinentry` null: no PIN dialog.
struct Services {
  pkcs11::TokenService* tokens = nullptr;
  AuditSink* audit = nullptr;
  policy::PolicyService* policy = nullptr;
  signature::DocumentService* documents = nullptr;
  pinentry::PinEntry* pinentry = nullptr;
};

class Service {
 public:
  Service(Services services, Options options);
  // The denial budget's report holds the service.
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // korttid stops: what was left out of the audit trail is counted in it
  // (audit.left_out lines) before the trail closes. On the io thread.
  void stop();

  // One signature: for a prescription, the document's facts and the policy
  // come first, so a denial never reaches the PIN. Before anything, the
  // caller must be one who may use the card (TokenService::check_may_sign):
  // a request no card would take is answered before it is audited.
  Task<Signed> sign(Caller caller, std::string cert_id, SignItem item, pkcs11::Credentials credentials);
  // Items refused while parsing come in as their Error and go out as it.
  // One credential for all; a card pulled midway keeps what was signed.
  Task<std::vector<Result<Signed>>> sign_batch(Caller caller, std::string cert_id, std::vector<Result<SignItem>> items,
                                               pkcs11::Credentials credentials);

  // A signature that does not hold is a report with valid = false, not an error.
  Task<XmlReport> verify_xml(Caller caller, std::string document);
  Task<CmsReport> verify_cms(Caller caller, Bytes cms, std::optional<Bytes> content,
                             std::optional<Bytes> content_digest);

  // `action` none: what the key is for (signature key: sign_prescription).
  Task<IdentityReport> identity(Caller caller, std::string cert_id, std::optional<policy::Action> action);
  Task<policy::Decision> check(Caller caller, CheckSubject subject, policy::Action action, policy::Context context);
  // A page's request for the card holder's certificate of `purpose` (a Web
  // eID get-signing-certificate): the first one that does that job only
  // (a signature certificate that also logs in is never given out for
  // signing), once the user allowed it in korttid's dialog naming the page.
  // not_found when there is none; pin_entry_cancelled when the user denies.
  Task<pkcs11::CertificateInfo> share_certificate(Caller caller, pkcs11::Purpose purpose);
  // The professional, or not_found.
  Task<policy::Registry::Lookup> lookup(Caller caller, std::string registration_number);

  // A Web eID token for `challenge` from an authentication key. The
  // certificate passes the policy for `authenticate` before the card is asked.
  Task<signature::WebEidToken> authenticate(Caller caller, std::string cert_id, Challenge challenge,
                                            pkcs11::Credentials credentials);
  // A token that does not hold is a report, not an error.
  Task<TokenReport> verify_token(Caller caller, signature::WebEidToken token, Challenge challenge);

  Task<pkcs11::LoginResult> login(Caller caller, std::string token_id, pkcs11::Credentials credentials);
  // A new user PIN, proven by the old one or by the PUK. Each try at the card
  // is audited (never a PIN); pin_prompt asks again after a wrong PIN or PUK.
  Task<Unit> change_pin(Caller caller, std::string token_id, NewPin request);
  Task<Unit> unblock_pin(Caller caller, std::string token_id, NewPin request);
  Task<Unit> logout(Caller caller, std::string token_id);

  // A line for what a front end did around these operations (a TLS
  // handshake's outcome, after its card signature's own line); false when
  // it could not be made durable. One the card had no part in (a handshake
  // that failed before the card, or a server that asked for no certificate)
  // is within its uid's budget of such lines ([audit]
  // denial_lines_per_second_per_uid), past which it is counted, not
  // written: a session holder can open tunnels at network speed.
  Task<bool> record(AuditRecord record, bool card_free = false) const;
  // The line is written; its failure is logged, nobody waits for it. Any
  // thread: a front end's own thread may write its line while the io thread
  // is busy stopping.
  void post_audit(AuditRecord record) const;

  // Error(document_invalid, "too_large") when `size` bytes of `what` pass
  // [signature] max_document_bytes: transports check before they copy.
  void check_document_size(std::size_t size, const char* what) const;
  [[nodiscard]] const Options& options() const noexcept { return options_; }
  [[nodiscard]] const Services& services() const noexcept { return services_; }

  // A signature made ready for the card (service/prepared.hpp, which only the
  // operations' own files see): public so that their helpers can name it.
  struct Prepared;

 private:
  Task<Prepared> prepare(const Caller& caller, const pkcs11::CertificateInfo& cert, SignItem item);
  Task<Prepared> prepare_prescription(const Caller& caller, const pkcs11::CertificateInfo& cert, std::string action,
                                      PrescriptionToSign request);
  Task<Signed> finish(Prepared prepared, pkcs11::SignResult card);
  Task<std::vector<std::optional<Prepared>>> prepare_items(const Caller& caller, const pkcs11::CertificateInfo& cert,
                                                           std::vector<Result<SignItem>> items,
                                                           std::vector<Result<Signed>>& results);
  // The card's signature, its begun line durable before anyone sees it and
  // its outcome line after.
  Task<pkcs11::SignResult> sign_audited(AuditRecord record, pkcs11::SignRequest request,
                                        pkcs11::Credentials credentials, std::stop_token stop);
  // The line of a request the policy refused before the card was asked.
  Task<bool> audit_denial(AuditRecord record, const policy::Decision& decision) const;
  Task<std::vector<SignerCheck>> check_signers(const Caller& caller, std::vector<SignerCheck> signers,
                                               const std::vector<std::vector<Bytes>>& chains);
  [[nodiscard]] policy::PolicyService& policy() const;
  [[nodiscard]] signature::DocumentService& documents() const;
  // Each is false when the line could not be made durable.
  Task<bool> audit_session(const Caller& caller, const char* action, const std::string& token_id,
                           const Error* error) const;
  Task<bool> write_audit(AuditRecord record) const;
  // The line is written and made durable while the caller goes on; it is
  // handed to the audit writer after the io thread's current turn.
  Started<bool> begin_audit(AuditRecord record, boost::asio::any_io_executor io) const;

  // [pin]: refuses a PIN the client may not send (1040), a PIN pad the
  // caller may not make ask (1040, check_pinpad_user) and a dialog this
  // korttid cannot show (1050), before any work is done.
  void check_pin_source(const Caller& caller, const pkcs11::Credentials& credentials, bool signature_key) const;
  // The reader's PIN pad asks whoever stands at the reader, and it cannot
  // say who asks: a request with "pinpad": true must come from that person
  // ([pin] pinpad_for), or another local user could have the card holder
  // type the PIN for them.
  void check_pinpad_user(const Caller& caller) const;
  // pin_prompt asks korttid's own user, in its session: 1040 for another
  // uid, where the PIN pad asks in the dialog's stead too.
  void check_dialog_user(const Caller& caller) const;
  // Runs `card` with the caller's credentials; or, for pin_prompt, with the
  // PIN the card holder types in korttid's own dialog, asked again after a
  // wrong PIN (with the tries left) for up to `rounds` dialogs. A reader
  // with a PIN pad is used instead of the dialog.
  using CardStep = std::function<Task<Unit>(pkcs11::Credentials)>;
  // The subject of a token's authentication certificate, or empty: whose
  // card a login dialog names.
  Task<std::string> holder(const std::string& token_id);
  // Throws 1050 for a token whose certificates all serve signatures (the
  // card's PIN2 slot): a session there would hold the signature PIN.
  Task<Unit> check_not_signature_pin(const std::string& token_id);
  Task<Unit> set_pin(Caller caller, std::string token_id, NewPin request, bool unblock);
  void check_pin_sources(const Caller& caller, const pkcs11::TokenInfo& token, NewPin& request, bool unblock) const;
  // The PINs of a pin.change or pin.unblock from korttid's dialogs.
  Task<pkcs11::PinChange> ask_new_pin(const Caller& caller, const pkcs11::TokenInfo& token, const std::string& holder,
                                      bool unblock, const std::string& error);
  Task<Unit> with_pin(const Caller& caller, const std::string& token_id, pinentry::Dialog dialog,
                      pkcs11::Credentials credentials, int rounds, CardStep card);

  Services services_;
  Options options_;
  std::shared_ptr<HeldDocuments> held_;
  // Budgets of audit lines a uid causes without the card (io thread).
  std::unique_ptr<LogBudget> audit_budget(std::string what, std::string outcome) const;
  Task<bool> write_within(LogBudget& budget, AuditRecord record) const;
  std::unique_ptr<LogBudget> denials_;    // audit_denial's
  std::unique_ptr<LogBudget> card_free_;  // record()'s card-free lines
};

// The error that replaces an answer whose audit line could not be written.
Error audit_unavailable();

}  // namespace kortti::service
