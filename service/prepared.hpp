#pragma once

// Internal to service/ (docs/architecture.md, Layering); include service/service.hpp.
#if !defined(KORTTI_COMPONENT_SERVICE) && !defined(KORTTI_WHITE_BOX)
#error "service/prepared.hpp is internal to service/; include service/service.hpp"
#endif

// A signature made ready for the card (service/ only): the one digest the
// card signs, and what turns the card's value into the operation's result.

#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "pkcs11/pkcs11.hpp"
#include "policy/policy.hpp"
#include "service/held_documents.hpp"
#include "service/service.hpp"
#include "signature/signature.hpp"

namespace kortti::service {

struct Service::Prepared {
  std::string method;
  pkcs11::SignRequest request;
  // Nothing (a raw digest), the XML waiting for its SignatureValue, or the
  // CMS waiting for its signature.
  std::variant<std::monostate, std::shared_ptr<signature::PreparedXml>, signature::PreparedCms> document;
  HeldDocuments::Hold held;                  // the document's bytes, until the answer
  std::optional<policy::Decision> decision;  // a prescription's
};

// The policy's refusal as protocol.md has it: an unusable certificate is 1031
// with its detail, anything else 1030; both carry every reason. `what` is
// what was refused ("this prescription").
Error denial(const policy::Decision& decision, std::string_view what);

// The audit line of one signature before the card is asked.
AuditRecord audit_record(const Caller& caller, std::string action, const pkcs11::SignRequest& request);
// The same line once the card has answered: its outcome, and whether the
// caller is still there to receive it.
AuditRecord answered(AuditRecord record, const Result<pkcs11::SignResult>& result);

// What a PIN dialog says after a wrong PIN or PUK: "Wrong PIN: 2 tries left".
std::string wrong(const char* what, const Error& error);
// A certificate of the signature key (nonRepudiation): its PIN is PIN2.
bool is_signature_key(const pkcs11::CertificateInfo& cert);
// The words of korttid's PIN dialogs: who asks (the name the client gave
// itself, and its uid and process as the kernel tells them), with which key
// of whose card, for what — a signature's kind and digest, or a batch's
// size (`batch_items`, 0 for one signature); a login's origin.
pinentry::Dialog signature_dialog(const Caller& caller, const pkcs11::CertificateInfo& cert, std::string_view method,
                                  const pkcs11::SignRequest& request, std::size_t batch_items = 0);
// A page's request for a certificate (certificates.share).
pinentry::Dialog sharing_dialog(const Caller& caller, const pkcs11::CertificateInfo& cert);
pinentry::Dialog login_dialog(const Caller& caller, const std::string& subject,
                              const std::optional<std::string>& origin);
// pin.change's current PIN or pin.unblock's PUK, then the new PIN (typed twice).
pinentry::Dialog proof_dialog(const Caller& caller, const pkcs11::TokenInfo& token, const std::string& subject,
                              bool unblock);
pinentry::Dialog new_pin_dialog(const pkcs11::TokenInfo& token, const std::string& subject);

}  // namespace kortti::service
