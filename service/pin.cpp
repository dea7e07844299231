// Where a PIN comes from: the request (where [pin] allows it), the reader's
// PIN pad, or korttid's own dialog (pin_prompt), so a client system need
// never see the card holder's PIN. And what that dialog says: who asks,
// with which key of whose card, for what.

#include <systemd/sd-login.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>

#include "common/digest.hpp"
#include "common/encoding.hpp"
#include "common/subject.hpp"
#include "service/prepared.hpp"

namespace kortti::service {

namespace {

// The caller as the user can judge it: first what the kernel vouches for,
// its uid and its process (SO_PEERCRED, /proc/PID/comm; a browser's
// connection has no process), then the name it gave itself, marked as its
// claim, so that no name can pass for those facts.
std::string who_asks(const Caller& caller) {
  std::string out = "A program";
  if (caller.pid > 0) {
    std::string process;
    std::ifstream comm("/proc/" + std::to_string(caller.pid) + "/comm");
    std::getline(comm, process);
    out = "Process " + std::to_string(caller.pid) + (process.empty() ? "" : " " + printable(process, 16));
  }
  out += " of uid " + std::to_string(caller.uid);
  if (!caller.client.empty()) out += ", calling itself \"" + printable(caller.client, 64) + "\",";
  return out;
}

// A card's or a certificate's words in a dialog: one line of a bounded
// length, so that the dialog's own words after them (which key, the tries
// left) always fit its line and cannot be imitated by a line break.
std::string named(std::string_view words) { return printable(words, 64); }

// The person a certificate names.
std::string holder_name(const std::string& subject) { return named(common_name(subject)); }

std::string kind_of(std::string_view method) {
  if (method == "sign.prescription") return "a Kanta e-prescription";
  if (method == "sign.xml") return "an XML document";
  if (method == "sign.cms") return "a CMS signature";
  if (method == "sign.data") return "data";
  return "a digest";
}

// Enough of the digest to compare with what the client shows: 16 bytes.
std::string short_digest(const pkcs11::SignRequest& request) {
  const std::string hex = hex_encode(request.digest);
  std::string out;
  for (std::size_t i = 0; i < std::min<std::size_t>(hex.size(), 32); i += 4) {
    if (!out.empty()) out += ' ';
    out += hex.substr(i, 4);
  }
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::toupper(c); });
  return out + " (" + std::string(name_of(request.digest_algorithm)) + ")";
}

std::string tries_note(const pkcs11::PinStatus& pin) {
  if (pin.on_last_try()) return "\n\nThis is the LAST try: a wrong PIN locks it.";
  if (pin.tries_left) return "\n\n" + std::to_string(*pin.tries_left) + " tries left.";
  if (pin.count_low) return "\n\nFew tries are left.";
  return "";
}

}  // namespace

std::string wrong(const char* what, const Error& e) {
  std::string text = std::string("Wrong ") + what;
  if (e.tries_left) text += ": " + std::to_string(*e.tries_left) + " tries left";
  return text;
}

bool is_signature_key(const pkcs11::CertificateInfo& cert) {
  return std::find(cert.purposes.begin(), cert.purposes.end(), pkcs11::Purpose::signature) != cert.purposes.end();
}

pinentry::Dialog signature_dialog(const Caller& caller, const pkcs11::CertificateInfo& cert, std::string_view method,
                                  const pkcs11::SignRequest& request, std::size_t items) {
  const bool pin2 = is_signature_key(cert);
  pinentry::Dialog d("kortti: " + std::string(pin2 ? "PIN2" : "PIN1") + " for a signature", "",
                     pin2 ? "PIN2:" : "PIN1:");
  d.description =
      who_asks(caller) + (caller.origin ? " asks, for the page " + *caller.origin + ", to sign " : " asks to sign ");
  if (items > 0)
    d.description += std::to_string(items) + (items == 1 ? " item" : " items") + " in one batch";
  else
    d.description += kind_of(method) + "\nwhose digest begins " + short_digest(request);
  d.description += "\nwith the " + std::string(pin2 ? "signature key (PIN2)" : "authentication key (PIN1)") + " of " +
                   holder_name(cert.subject) + ".";
  d.ok = "Sign";
  return d;
}

pinentry::Dialog sharing_dialog(const Caller& caller, const pkcs11::CertificateInfo& cert) {
  const bool signature = is_signature_key(cert);
  pinentry::Dialog d("kortti: a page asks for your certificate", "", "");
  d.description = who_asks(caller) + " asks, for the page " + caller.origin.value_or("(none)") + ", for the " +
                  (signature ? "signature" : "authentication") + " certificate of " + holder_name(cert.subject) +
                  ".\nIt names you and your identifiers. Nothing is signed.";
  d.ok = "Allow";
  d.cancel = "Deny";
  return d;
}

pinentry::Dialog login_dialog(const Caller& caller, const std::string& subject,
                              const std::optional<std::string>& origin) {
  pinentry::Dialog d("kortti: PIN1 to log in", "", "PIN1:");
  d.description = who_asks(caller) + " asks to log in" + (origin ? " to " + *origin : std::string()) +
                  "\nwith the authentication key (PIN1)" + (subject.empty() ? "" : " of " + holder_name(subject)) + ".";
  d.ok = "Log in";
  return d;
}

namespace {

std::string whose_card(const pkcs11::TokenInfo& token, const std::string& subject) {
  return subject.empty() ? "the card \"" + named(token.label) + "\"" : holder_name(subject) + "'s card";
}

}  // namespace

pinentry::Dialog proof_dialog(const Caller& caller, const pkcs11::TokenInfo& token, const std::string& subject,
                              bool unblock) {
  if (unblock) {
    pinentry::Dialog d("kortti: unblock the PIN", "", "PUK:");
    d.description = who_asks(caller) + " asks to unblock the PIN of " + whose_card(token, subject) +
                    ".\nType the activation code (PUK); the new PIN comes next.";
    d.ok = "Next";
    return d;
  }
  pinentry::Dialog d("kortti: change the PIN", "", "Current PIN:");
  d.description = who_asks(caller) + " asks to change the PIN of " + whose_card(token, subject) +
                  ".\nType the current PIN; the new PIN comes next." + tries_note(token.user_pin);
  d.ok = "Next";
  return d;
}

pinentry::Dialog new_pin_dialog(const pkcs11::TokenInfo& token, const std::string& subject) {
  const auto [min, max] = pkcs11::new_pin_lengths(token.user_pin);
  pinentry::Dialog d("kortti: the new PIN", "", "New PIN:");
  d.description = "Type the new PIN of " + whose_card(token, subject) + ": " + std::to_string(min) + " to " +
                  std::to_string(max) + " digits.";
  d.repeat = "Repeat:";
  d.ok = "Change";
  return d;
}

namespace {

// Whether `uid` has an active session at a seat of this machine (logind's
// own files; none without logind): the person at the keyboard and the
// reader.
bool at_a_seat(uid_t uid) { return sd_uid_get_seats(uid, 1, nullptr) > 0; }

}  // namespace

void Service::check_pinpad_user(const Caller& caller) const {
  // Root could take the reader for itself anyway.
  if (options_.pin.pinpad_for == PinpadFor::anyone || caller.uid == 0 || at_a_seat(caller.uid)) return;
  throw Error(Errc::permission_denied,
              "the PIN pad asks whoever is at the reader, and uid " + std::to_string(caller.uid) +
                  " has no active session at this machine's seat (logind); [pin] pinpad_for = \"anyone\" lets "
                  "every permitted uid use it");
}

void Service::check_pin_source(const Caller& caller, const pkcs11::Credentials& credentials, bool signature_key) const {
  if (credentials.pinpad) check_pinpad_user(caller);
  if (credentials.pin) {
    if (signature_key && !options_.pin.client_may_send)
      throw Error(Errc::permission_denied,
                  "korttid takes no signature PIN (PIN2) from a client ([pin] client_may_send = false): ask with "
                  "\"pin_prompt\": true or \"pinpad\": true");
    if (!signature_key && !options_.pin.client_may_send_authentication)
      throw Error(Errc::permission_denied,
                  "korttid takes no PIN1 from a client ([pin] client_may_send_authentication = false): ask with "
                  "\"pin_prompt\": true or \"pinpad\": true");
  }
  if (!credentials.prompt) return;
  if (services_.pinentry == nullptr) throw Error(Errc::unsupported, "this korttid has no PIN dialog");
  if (auto why = services_.pinentry->unavailable()) throw Error(Errc::unsupported, *why);
  check_dialog_user(caller);
}

void Service::check_dialog_user(const Caller& caller) const {
  // The dialog appears in korttid's user's session: nobody else's request
  // may make it ask that user for a PIN.
  if (caller.uid != ::getuid())
    throw Error(Errc::permission_denied, "korttid shows PIN dialogs only for its own user (uid " +
                                             std::to_string(::getuid()) + "); uid " + std::to_string(caller.uid) +
                                             " has its own korttid (korttid-user.service)");
}

Task<Unit> Service::with_pin(const Caller& caller, const std::string& token_id, pinentry::Dialog dialog,
                             pkcs11::Credentials credentials, int rounds, CardStep card) {
  if (!credentials.prompt) co_return co_await card(std::move(credentials));
  std::optional<pkcs11::TokenInfo> token = services_.tokens->token(token_id);
  if (token && token->pinpad) {
    // A PIN pad is preferred where the reader has one: what the user types
    // there never reaches the computer at all. But the pad cannot say who
    // asks: for a web page, the screen first names the page and what is
    // signed, and the pad is asked only once the user has confirmed.
    if (caller.origin) {
      if (services_.pinentry == nullptr || services_.pinentry->unavailable())
        throw Error(Errc::unsupported, "korttid cannot show the confirmation that names the page before the PIN pad");
      pinentry::Dialog confirmation = dialog;
      confirmation.prompt.clear();
      confirmation.description += "\nConfirm, then type the PIN on the reader's PIN pad.";
      co_await services_.pinentry->confirm(std::move(confirmation), caller.stop);
    }
    credentials.prompt = false;
    credentials.pinpad = true;
    credentials.check_in_session = true;
    co_return co_await card(std::move(credentials));
  }
  const std::string intro = dialog.description;
  for (int round = 1;; ++round) {
    // (A locked PIN was refused before: TokenService::check_may_sign, check_may_login.)
    const pkcs11::PinStatus pin = token ? token->user_pin : pkcs11::PinStatus{};
    // Not a dialog whose answer the card would then be spared.
    if (pin.on_last_try()) services_.tokens->check_last_try(token_id, caller.uid);
    dialog.description = intro + tries_note(pin);
    pkcs11::Credentials typed;
    // The dialog said so when this is the last try: typing the PIN is the
    // user's consent to spend it.
    typed.final_try = pin.on_last_try();
    typed.check_in_session = true;
    typed.pin = co_await services_.pinentry->ask(dialog, caller.stop);
    Result<Unit> done = co_await attempt(card(std::move(typed)));
    if (done.ok()) co_return Unit{};
    const Error& e = done.error();
    if (e.code() != Errc::pin_incorrect || round >= rounds) throw e;
    dialog.error = wrong("PIN", e);
    token = services_.tokens->token(token_id);
    if (token && e.tries_left) {
      token->user_pin.tries_left = e.tries_left;
      token->user_pin.final_try = *e.tries_left == 1;
    }
  }
}

}  // namespace kortti::service
