#include "ipc/convert.hpp"
#include "ipc/core.hpp"
#include "ipc/params.hpp"
#include "ipc/shared.hpp"

namespace kortti::ipc {

namespace {

// Written before the answer is sent (see methods_sign.cpp). False when the
// line could not be written.
bool audit_session(Core& core, const std::shared_ptr<Call>& call, const std::string& token_id, const Error* error) {
  if (core.services.audit == nullptr) return true;
  AuditRecord record;
  record.action = call->method();
  record.peer = call->peer();
  record.token_id = token_id;
  record.outcome = error != nullptr ? std::string(reason_of(error->code())) : "ok";
  if (error != nullptr) {
    record.detail = error->what();
    if (!error->detail.empty()) record.detail += " (" + error->detail + ")";
  }
  record.delivered = call->deliverable();
  return core.services.audit->record(record);
}

// Runs `then` after a fresh slot scan, or after `patience` with what is
// known: a module can be stuck behind a busy card (OpenSC runs one call at a
// time for all its cards), and listing must not wait for that.
void after_scan(Core& core, std::function<void()> then) {
  constexpr auto kPatience = std::chrono::milliseconds(300);
  auto pending = std::make_shared<std::function<void()>>(std::move(then));
  auto timer = std::make_shared<boost::asio::steady_timer>(core.io, kPatience);
  auto once = [pending] {
    if (!*pending) return;
    auto f = std::move(*pending);
    *pending = nullptr;
    f();
  };
  core.services.tokens->rescan([timer, once](Result<Unit>) {
    timer->cancel();
    once();
  });
  timer->async_wait([once](const boost::system::error_code& ec) {
    if (!ec) once();
  });
}

}  // namespace

void register_token_methods(Core& core) {
  core.add("tokens.list", MethodGroup::read, [&core](const std::shared_ptr<Call>& call) {
    auto* tokens = core.services.tokens;
    after_scan(core, [&core, call, tokens] {
      Json list = Json::array();
      for (const auto& t : tokens->tokens()) {
        Json token = to_json(t);
        if (t.session_owner && !core.may_see_session_owner(call->peer(), *t.session_owner)) token.erase("session_uid");
        list.push_back(std::move(token));
      }
      call->respond(std::move(list));
    });
  });

  core.add("certificates.list", MethodGroup::read, [&core](const std::shared_ptr<Call>& call) {
    Params params(call->params());
    auto token_id = params.optional_string("token_id");
    std::optional<pkcs11::Purpose> purpose;
    if (auto name = params.optional_string("purpose")) {
      purpose = pkcs11::parse_purpose(*name);
      if (!purpose) invalid_param("purpose", "must be \"authentication\" or \"signature\"");
    }
    auto* tokens = core.services.tokens;
    after_scan(core, [call, tokens, token_id, purpose] {
      tokens->certificates(token_id, [call, purpose](Result<std::vector<pkcs11::CertificateInfo>> r) {
        if (!r.ok()) return (void)call->fail(r.error());
        Json list = Json::array();
        for (const auto& c : r.value()) {
          if (purpose && std::find(c.purposes.begin(), c.purposes.end(), *purpose) == c.purposes.end()) continue;
          list.push_back(to_json(c));
        }
        call->respond(std::move(list));
      });
    });
  });

  core.add("session.login", MethodGroup::session, [&core](const std::shared_ptr<Call>& call) {
    Params params(call->params());
    const std::string token_id = params.string("token_id");
    pkcs11::Credentials credentials = params.credentials();
    if (!credentials.pin && !credentials.pinpad)
      throw Error(Errc::pin_required, "session.login needs 'pin' or 'pinpad': true");
    core.services.tokens->login(token_id, std::move(credentials), call->peer().uid, call->stop_token(),
                                [&core, call, token_id](Result<pkcs11::LoginResult> r) {
                                  if (!r.ok()) {
                                    (void)audit_session(core, call, token_id, &r.error());
                                    return (void)call->fail(r.error());
                                  }
                                  if (!audit_session(core, call, token_id, nullptr)) {
                                    // A session nobody can account for is closed again.
                                    core.services.tokens->logout(token_id, call->peer().uid, [](Result<Unit>) {});
                                    return (void)call->fail(audit_unavailable());
                                  }
                                  Json result = {{"logged_in", r.value().logged_in}};
                                  if (r.value().expires_at)
                                    result["expires_at"] = wstr(to_rfc3339(*r.value().expires_at));
                                  call->respond(std::move(result));
                                });
  });

  core.add("session.logout", MethodGroup::session, [&core](const std::shared_ptr<Call>& call) {
    Params params(call->params());
    const std::string token_id = params.string("token_id");
    core.services.tokens->logout(token_id, call->peer().uid, [&core, call, token_id](Result<Unit> r) {
      if (!r.ok()) {
        (void)audit_session(core, call, token_id, &r.error());
        return (void)call->fail(r.error());
      }
      // The session is over either way; the line is what may be missing.
      (void)audit_session(core, call, token_id, nullptr);
      call->respond({{"logged_in", false}});
    });
  });
}

}  // namespace kortti::ipc
