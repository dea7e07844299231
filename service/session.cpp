// session.login and session.logout: a PIN1 session on a card, owned by the
// caller's uid, and its audit line.

#include "service/service.hpp"

namespace kortti::service {

Task<bool> Service::audit_session(const Caller& caller, const char* action, const std::string& token_id,
                                  const Error* error) const {
  AuditRecord record;
  record.action = action;
  record.caller = caller;
  record.token_id = token_id;
  record.outcome = error != nullptr ? std::string(reason_of(error->code())) : "ok";
  if (error != nullptr) {
    record.detail = error->what();
    if (!error->detail.empty()) record.detail += " (" + error->detail + ")";
  }
  record.delivered = caller.listening();
  return write_audit(std::move(record));
}

Task<pkcs11::LoginResult> Service::login(Caller caller, std::string token_id, pkcs11::Credentials credentials) {
  if (!credentials.pin && !credentials.pinpad)
    throw Error(Errc::pin_required, "session.login needs 'pin' or 'pinpad': true");
  Result<pkcs11::LoginResult> result =
      co_await attempt(services_.tokens->login(token_id, std::move(credentials), caller.uid, caller.stop));
  if (!result.ok()) {
    (void)co_await audit_session(caller, "session.login", token_id, &result.error());
    throw result.error();
  }
  if (!co_await audit_session(caller, "session.login", token_id, nullptr)) {
    // A session nobody can account for is closed again.
    (void)co_await attempt(services_.tokens->logout(token_id, caller.uid));
    throw audit_unavailable();
  }
  co_return std::move(result).value();
}

Task<Unit> Service::logout(Caller caller, std::string token_id) {
  Result<Unit> result = co_await attempt(services_.tokens->logout(token_id, caller.uid));
  if (!result.ok()) {
    (void)co_await audit_session(caller, "session.logout", token_id, &result.error());
    throw result.error();
  }
  // The session is over either way; the line is what may be missing.
  (void)co_await audit_session(caller, "session.logout", token_id, nullptr);
  co_return Unit{};
}

}  // namespace kortti::service
