// One signature, start to end: the certificate, the document made ready (for
// a prescription: its facts and the policy first), the card, the audit line,
// the result.

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>

#include "common/encoding.hpp"
#include "service/prepared.hpp"

namespace kortti::service {

namespace {

// sign.digest and sign.data need nothing of the certificate unless it is to
// be validated: they skip fetching it.
bool needs_certificate(const SignItem& item) {
  return !std::holds_alternative<DigestToSign>(item.what) || item.validate_for.has_value();
}

}  // namespace

Error denial(const policy::Decision& d, std::string_view what) {
  std::string message = "policy denies " + std::string(what) + ":";
  for (const auto& r : d.reasons) message += " " + r.code;
  if (d.certificate && !d.certificate->valid())
    return Error(Errc::certificate_invalid, "the certificate is not valid: " + d.certificate->message)
        .with_detail(d.certificate->status)
        .with_reasons(d.reasons);
  return Error(Errc::policy_denied, message).with_reasons(d.reasons);
}

Error audit_unavailable() {
  return Error(Errc::service_unavailable,
               "the audit trail cannot be written (see the korttid log); korttid signs nothing it cannot audit");
}

AuditRecord audit_record(const Caller& caller, std::string action, const pkcs11::SignRequest& request) {
  AuditRecord record;
  record.action = std::move(action);
  record.caller = caller;
  record.cert_id = request.cert_id;
  record.digest_algorithm = name_of(request.digest_algorithm);
  record.digest_hex = hex_encode(request.digest);  // what the card signed: names the document without holding it
  record.origin = caller.origin;
  return record;
}

namespace {

// Hands `record` to `sink` (none: korttid runs without an audit trail, and
// every line counts as written).
void send(AuditSink* sink, AuditRecord record, Completion<bool> done) {
  if (sink == nullptr) return done(true);
  sink->record(std::move(record), [done = std::move(done)](bool ok) { done(ok); });
}

}  // namespace

Task<bool> Service::write_audit(AuditRecord record) const {
  // Not a coroutine: the operation starts when awaited and owns the record.
  return completion<bool>([sink = services_.audit, record = std::move(record)](Completion<bool> done) mutable {
    send(sink, std::move(record), std::move(done));
  });
}

// The record reaches the audit writer once the io thread's current turn is
// over, by which time the card's job is queued: the writer, woken first,
// would take the free core of two and the card would wait for it (RSA-2048
// at one client, p50, five runs each: 1.30x direct before, 1.21x after).
Started<bool> Service::begin_audit(AuditRecord record, boost::asio::any_io_executor io) const {
  return Started<bool>([sink = services_.audit, record = std::move(record), io](Completion<bool> done) mutable {
    boost::asio::post(io, [sink, record = std::move(record), done = std::move(done)]() mutable {
      // Whoever awaits the line must hear of a failure, or it waits forever.
      try {
        send(sink, std::move(record), done);
      } catch (const std::exception& e) {
        (void)internal_error("the audit trail", e.what());
        done(false);
      }
    });
  });
}

void Service::post_audit(AuditRecord record) const {
  if (services_.audit != nullptr) services_.audit->note(std::move(record));
}

AuditRecord answered(AuditRecord record, const Result<pkcs11::SignResult>& result) {
  record.delivered = record.caller.listening();
  if (result.ok()) {
    record.outcome = "ok";
    record.subject = result.value().certificate.subject;
  } else {
    record.outcome = reason_of(result.error().code());
    record.detail += (record.detail.empty() ? "" : ": ") + std::string(result.error().what());
    if (!result.error().detail.empty()) record.detail += " (" + result.error().detail + ")";
  }
  return record;
}

void Service::stop() {
  denials_->flush();
  card_free_->flush();
}

// Past its uid's budget a line is counted, not written (audit_budget()
// writes the count); what it stood for stands all the same.
Task<bool> Service::write_within(LogBudget& budget, AuditRecord record) const {
  if (!budget.allow(record.caller.uid)) return completion<bool>([](Completion<bool> done) { done(true); });
  return write_audit(std::move(record));
}

Task<bool> Service::record(AuditRecord record, bool card_free) const {
  if (card_free) return write_within(*card_free_, std::move(record));
  return write_audit(std::move(record));
}

Task<bool> Service::audit_denial(AuditRecord record, const policy::Decision& decision) const {
  record.outcome = "policy_denied";
  for (const auto& r : decision.reasons) record.detail += (record.detail.empty() ? "" : " ") + r.code;
  record.delivered = record.caller.listening();
  return write_within(*denials_, std::move(record));
}

// The begun line is made durable while the card signs, and the signature
// leaves only once it is: no client ever holds a signature the audit trail
// lacks, and the disk's flush costs the caller nothing the card does not
// take anyway. The outcome's line follows without being waited for; if
// korttid stops before it is written, the begun line stands for the try.
Task<pkcs11::SignResult> Service::sign_audited(AuditRecord record, pkcs11::SignRequest request,
                                               pkcs11::Credentials credentials, std::stop_token stop) {
  record.attempt = random_hex(8);
  AuditRecord begun = record;
  begun.outcome = kAuditBegun;
  const auto io = co_await boost::asio::this_coro::executor;
  Started<bool> durable = begin_audit(std::move(begun), io);
  Result<pkcs11::SignResult> card = Error(Errc::internal_error, "the card was not asked");
  try {
    card = co_await attempt(services_.tokens->sign(std::move(request), std::move(credentials), std::move(stop)));
  } catch (...) {
    // A bug, not a card's answer: the try still gets its outcome line, after
    // its begun line, which may still be on its way through the io thread.
    // (The service outlives the io thread's handlers, as this operation's
    // own resumptions assume.)
    AuditRecord line = answered(std::move(record), Error(Errc::internal_error, "failed inside korttid (see its log)"));
    boost::asio::post(io, [this, line = std::move(line)]() mutable { post_audit(std::move(line)); });
    throw;
  }
  // A signature whose begun line is not on disk is withheld, and its
  // outcome line says so.
  const bool audited = co_await durable.result();
  if (!audited && card.ok()) card = audit_unavailable();
  post_audit(answered(std::move(record), card));
  if (!card.ok()) throw card.error();
  co_return std::move(card).value();
}

void Service::check_document_size(std::size_t size, const char* what) const {
  const std::size_t limit = documents().options().limits.max_bytes;
  if (size > limit)
    throw Error(Errc::document_invalid, std::string("the ") + what + " is " + std::to_string(size) +
                                            " bytes, more than the limit of " + std::to_string(limit))
        .with_detail("too_large");
}

policy::PolicyService& Service::policy() const {
  if (services_.policy == nullptr) throw Error(Errc::unsupported, "korttid runs without the policy");
  return *services_.policy;
}

signature::DocumentService& Service::documents() const {
  if (services_.documents == nullptr) throw Error(Errc::unsupported, "korttid runs without document signing");
  return *services_.documents;
}

Task<Signed> Service::sign(Caller caller, std::string cert_id, SignItem item, pkcs11::Credentials credentials) {
  co_await services_.tokens->check_may_sign(cert_id, caller.uid, credentials, caller.stop);
  pkcs11::CertificateInfo cert;
  const bool pin_given = credentials.pin || credentials.prompt || credentials.pinpad;
  if (needs_certificate(item) || pin_given) cert = co_await services_.tokens->certificate(cert_id);
  if (pin_given) check_pin_source(caller, credentials, is_signature_key(cert));
  std::string detail = std::move(item.detail);
  if (item.validate_for) {
    const policy::Decision decision =
        co_await policy().identity(cert.der, cert.chain, *item.validate_for, caller.ticket());
    if (!decision.allowed) {
      AuditRecord record;
      record.action = item.method;
      record.caller = caller;
      record.origin = caller.origin;
      record.cert_id = cert_id;
      record.subject = cert.subject;
      (void)co_await audit_denial(std::move(record), decision);
      throw denial(decision, "a signature with this certificate");
    }
  }
  Prepared prepared = co_await prepare(caller, cert, std::move(item));
  prepared.request.cert_id = cert_id;
  prepared.request.uid = caller.uid;
  AuditRecord record = audit_record(caller, prepared.method, prepared.request);
  record.detail = std::move(detail);
  pkcs11::SignResult card;
  // Each try at the card has its own audit line.
  CardStep sign_once = [&](pkcs11::Credentials c) -> Task<Unit> {
    card = co_await sign_audited(record, prepared.request, std::move(c), caller.stop);
    co_return Unit{};
  };
  pinentry::Dialog dialog;
  if (credentials.prompt) dialog = signature_dialog(caller, cert, prepared.method, prepared.request);
  co_await with_pin(caller, cert.token_id, std::move(dialog), std::move(credentials), options_.pin.prompt_attempts,
                    sign_once);
  co_return co_await finish(std::move(prepared), std::move(card));
}

Service::Service(Services services, Options options)
    : services_(services),
      options_(options),
      held_(std::make_shared<HeldDocuments>(options.max_held_bytes, options.max_held_bytes_per_uid)),
      denials_(audit_budget("policy denials", "policy_denied")),
      card_free_(audit_budget("TLS handshakes without the card", "handshake_without_card")) {}

// Past the budget a line is counted; the count is a line of its own, made
// when the uid's next such line comes (or another uid's after the window,
// or at stop).
std::unique_ptr<LogBudget> Service::audit_budget(std::string what, std::string outcome) const {
  return std::make_unique<LogBudget>(
      options_.denial_lines_per_second_per_uid, [this, what = std::move(what), outcome = std::move(outcome)](
                                                    uid_t uid, std::size_t left_out, LogBudget::Clock::duration over) {
        AuditRecord line;
        line.action = "audit.left_out";
        line.caller.uid = uid;
        line.outcome = outcome;
        line.detail = std::to_string(left_out) + " " + what + " of this uid left out in " +
                      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(over).count()) +
                      " s ([audit] denial_lines_per_second_per_uid)";
        spdlog::warn("uid={}: {}", uid, line.detail);
        post_audit(std::move(line));
      });
}

Task<Service::Prepared> Service::prepare(const Caller& caller, const pkcs11::CertificateInfo& cert, SignItem item) {
  if (auto* p = std::get_if<PrescriptionToSign>(&item.what))
    co_return co_await prepare_prescription(caller, cert, std::move(item.method), std::move(*p));
  Prepared out;
  out.method = std::move(item.method);
  if (auto* d = std::get_if<DigestToSign>(&item.what)) {
    out.request.digest_algorithm = d->algorithm;
    out.request.digest = std::move(d->digest);
    out.request.scheme = d->scheme;
    out.request.session_key = d->session_key;
  } else if (auto* x = std::get_if<XmlToSign>(&item.what)) {
    const std::size_t bytes = x->document.size();
    out.held = held_->hold(caller.uid, bytes);
    auto xml = co_await documents().prepare(std::move(x->document), x->profile, cert.der, caller.ticket(bytes));
    out.request.digest_algorithm = xml->digest_algorithm();
    out.request.digest = xml->digest();
    out.request.scheme = pkcs11::default_scheme(cert.key_type);
    out.document = std::move(xml);
  } else if (auto* c = std::get_if<CmsToSign>(&item.what)) {
    const pkcs11::Scheme scheme = c->scheme.value_or(pkcs11::default_scheme(cert.key_type));
    const auto& options = documents().options();
    c->input.scheme = scheme;
    c->input.digest_algorithm =
        c->digest_algorithm.value_or(cert.key_type == pkcs11::KeyType::ec ? options.ec_digest : options.rsa_digest);
    const std::size_t bytes = c->input.content ? c->input.content->size() : 0;
    out.held = held_->hold(caller.uid, bytes);
    signature::PreparedCms cms =
        co_await documents().prepare_cms(std::move(c->input), cert.der, cert.chain, caller.ticket(bytes));
    out.request.digest_algorithm = cms.digest_algorithm;
    out.request.digest = cms.digest;
    out.request.scheme = scheme;
    out.document = std::move(cms);
  }
  co_return out;
}

// 1. what the document says, 2. the policy, and only then 3. the card: a
// denial never reaches the PIN. The document is parsed once, for its facts
// and for the signature together.
Task<Service::Prepared> Service::prepare_prescription(const Caller& caller, const pkcs11::CertificateInfo& cert,
                                                      std::string action, PrescriptionToSign request) {
  const std::size_t bytes = request.document.size();
  HeldDocuments::Hold held = held_->hold(caller.uid, bytes);
  signature::PreparedPrescription document =
      co_await documents().prepare_prescription(std::move(request.document), cert.der, caller.ticket(bytes));
  // The document's facts replace the client's: it is what is signed.
  policy::Context context = std::move(request.context);
  context.atc_codes = document.facts.atc_codes;
  context.patient_id = document.facts.patient_id;
  context.author_registration_number = document.facts.author_registration_number;
  context.author_prescriber_id = document.facts.author_prescriber_id;
  policy::Decision decision = co_await policy().check(
      cert.der, cert.chain, std::nullopt, policy::Action::sign_prescription, std::move(context), caller.ticket());
  if (!decision.allowed) {
    AuditRecord record;
    record.action = std::move(action);
    record.caller = caller;
    record.cert_id = cert.cert_id;
    record.subject = cert.subject;
    // The denial stands whether or not its line could be written.
    (void)co_await audit_denial(std::move(record), decision);
    throw denial(decision, "this prescription");
  }
  Prepared out;
  out.method = std::move(action);
  out.request.digest_algorithm = document.xml->digest_algorithm();
  out.request.digest = document.xml->digest();
  out.request.scheme = pkcs11::default_scheme(cert.key_type);
  out.document = std::move(document.xml);
  out.held = std::move(held);
  out.decision = std::move(decision);
  co_return out;
}

Task<Signed> Service::finish(Prepared prepared, pkcs11::SignResult card) {
  Signed out;
  if (auto* xml = std::get_if<std::shared_ptr<signature::PreparedXml>>(&prepared.document))
    out.document = co_await documents().finish(*xml, card.signature);
  else if (auto* cms = std::get_if<signature::PreparedCms>(&prepared.document))
    out.cms = co_await documents().finish_cms(std::move(*cms), card.signature);
  out.card = std::move(card);
  out.decision = std::move(prepared.decision);
  co_return out;
}

}  // namespace kortti::service
