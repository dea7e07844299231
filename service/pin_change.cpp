// pin.change and pin.unblock: a new user PIN, proven by the old PIN or by the
// PUK (activation code); sent by the client where [pin] allows it, or typed
// in korttid's own dialogs. The new PIN's rules are checked before the card
// is touched; each try at the card has its audit line, never a PIN.

#include "service/prepared.hpp"

namespace kortti::service {

Task<Unit> Service::change_pin(Caller caller, std::string token_id, NewPin request) {
  return set_pin(std::move(caller), std::move(token_id), std::move(request), false);
}

Task<Unit> Service::unblock_pin(Caller caller, std::string token_id, NewPin request) {
  return set_pin(std::move(caller), std::move(token_id), std::move(request), true);
}

Task<pkcs11::PinChange> Service::ask_new_pin(const Caller& caller, const pkcs11::TokenInfo& token,
                                             const std::string& holder_subject, bool unblock,
                                             const std::string& error) {
  pkcs11::PinChange change;
  pinentry::Dialog proof = proof_dialog(caller, token, holder_subject, unblock);
  proof.error = error;
  change.final_try = !unblock && token.user_pin.on_last_try();
  change.proof = co_await services_.pinentry->ask(proof, caller.stop);
  pinentry::Dialog fresh = new_pin_dialog(token, holder_subject);
  for (int round = 1;; ++round) {
    SecretString typed = co_await services_.pinentry->ask(fresh, caller.stop);
    const auto problem = pkcs11::new_pin_problem(token.user_pin, typed.view());
    if (!problem) {
      change.new_pin = std::move(typed);
      co_return change;
    }
    if (round >= options_.pin.prompt_attempts) throw Error(Errc::invalid_params, *problem);
    fresh.error = *problem;
  }
}

// Where the PINs of a change or unblock come from: the request, the PIN pad
// (preferred to the dialog when the reader has one), or korttid's dialog;
// exactly one, and a source [pin] allows.
void Service::check_pin_sources(const Caller& caller, const pkcs11::TokenInfo& token, NewPin& request,
                                bool unblock) const {
  if (request.pinpad) check_pinpad_user(caller);
  // korttid's dialog, or the pad in its stead: for korttid's own user only.
  if (request.prompt) {
    if (request.proof || request.new_pin)
      throw Error(Errc::invalid_params, "give either the PINs or 'pin_prompt', not both");
    if (token.pinpad) {
      check_dialog_user(caller);
    } else {
      pkcs11::Credentials asked;
      asked.prompt = true;
      check_pin_source(caller, asked, false);
    }
  }
  if (request.prompt && token.pinpad) {
    // A PIN pad is preferred to the dialog, as for signatures.
    request.prompt = false;
    request.pinpad = true;
  }
  if (request.pinpad) {
    if (request.proof || request.new_pin)
      throw Error(Errc::invalid_params, "give one of the PINs, 'pinpad' or 'pin_prompt'");
  } else if (!request.prompt) {
    if (!request.proof || !request.new_pin)
      throw Error(Errc::invalid_params, std::string(unblock ? "'puk'" : "'pin'") +
                                            " and 'new_pin' are required, or 'pin_prompt' or 'pinpad': true");
    if (!options_.pin.client_may_send || !options_.pin.client_may_send_authentication)
      throw Error(Errc::permission_denied,
                  "korttid takes no PINs from clients ([pin] client_may_send): ask with \"pin_prompt\": true");
    if (auto problem = pkcs11::new_pin_problem(token.user_pin, request.new_pin->view()))
      throw Error(Errc::invalid_params, *problem);
  }
}

Task<Unit> Service::set_pin(Caller caller, std::string token_id, NewPin request, bool unblock) {
  const char* action = unblock ? "pin.unblock" : "pin.change";
  const std::optional<pkcs11::TokenInfo> token = services_.tokens->token(token_id);
  if (!token) throw Error(Errc::token_not_found, "no card with token id '" + token_id + "' is present");
  check_pin_sources(caller, *token, request, unblock);
  if (unblock) {
    // What the card would refuse, or korttid would not send it, is refused
    // before the audit trail: any uid may ask, and ask again.
    co_await services_.tokens->check_may_unblock(token_id, caller.uid, request.pinpad, caller.stop);
  } else {
    // The old PIN proves the change as a login would: what the card would
    // refuse untried is refused before the audit trail.
    pkcs11::Credentials old;
    if (request.proof) old.pin = SecretString(request.proof->view());
    old.pinpad = request.pinpad;
    old.prompt = request.prompt;
    old.final_try = request.final_try;
    co_await services_.tokens->check_may_login(token_id, caller.uid, old, caller.stop);
  }
  // (Not a conditional expression: GCC 12 destroys the temporary of a
  // ?: with a co_await in one arm twice.)
  std::string holder_subject;
  if (request.prompt) holder_subject = co_await holder(token_id);
  std::string error;
  for (int round = 1;; ++round) {
    pkcs11::PinChange change;
    change.pinpad = request.pinpad;  // then the reader asks for both
    if (request.prompt) {
      const pkcs11::TokenInfo now = services_.tokens->token(token_id).value_or(*token);
      // Not three dialogs whose answers the card would then be spared.
      if (!unblock && now.user_pin.on_last_try()) services_.tokens->check_last_try(token_id, caller.uid);
      change = co_await ask_new_pin(caller, now, holder_subject, unblock, error);
    } else if (!request.pinpad) {
      change.proof = std::move(*request.proof);
      change.new_pin = std::move(*request.new_pin);
      change.final_try = request.final_try;
    }
    Result<Unit> done = Unit{};
    if (unblock) {
      Task<Unit> card = services_.tokens->unblock_pin(token_id, std::move(change), caller.uid, caller.stop);
      done = co_await attempt(std::move(card));
    } else {
      Task<Unit> card = services_.tokens->change_pin(token_id, std::move(change), caller.uid, caller.stop);
      done = co_await attempt(std::move(card));
    }
    // The PIN has changed (or not) whether or not its line could be written;
    // the audit writer logs a line it could not make durable.
    (void)co_await audit_session(caller, action, token_id, done.ok() ? nullptr : &done.error());
    if (done.ok()) co_return Unit{};
    const Error& e = done.error();
    if (!request.prompt || e.code() != Errc::pin_incorrect || round >= options_.pin.prompt_attempts) throw e;
    error = wrong(unblock ? "PUK" : "PIN", e);
  }
}

}  // namespace kortti::service
