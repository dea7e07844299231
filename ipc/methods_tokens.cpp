// Cards and their certificates as korttid sees them, PIN1 sessions, and the
// user PIN's state, change and unblock.

#include <algorithm>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/origin.hpp"
#include "ipc/convert.hpp"
#include "ipc/methods.hpp"
#include "ipc/params.hpp"

namespace kortti::ipc {

// The listings waiting for a slot scan. One scan is asked for however many
// wait: a scan stuck in a module (OpenSC behind a PIN pad, a wedged pcscd)
// used to gather one completion per tokens.list for as long as it hung.
// Those that come while a scan they did not ask for runs wait for the next.
struct ScanWaiters {
  using Timers = std::vector<std::weak_ptr<boost::asio::steady_timer>>;
  Timers asked;  // woken when the scan asked for ends; empty: none is asked for
  Timers next;   // then asked for again
};

namespace {

// The waiters are the Core's, whose services outlive it: a scan that ends
// after the Core is gone (a test's io_context that runs on) touches nothing.
void ask_for_scan(pkcs11::TokenService& tokens, const std::shared_ptr<ScanWaiters>& waiters) {
  tokens.rescan([&tokens, weak = std::weak_ptr<ScanWaiters>(waiters)](Result<Unit>) {
    const std::shared_ptr<ScanWaiters> w = weak.lock();
    if (!w) return;
    for (const auto& t : std::exchange(w->asked, std::move(w->next)))
      if (auto timer = t.lock()) timer->cancel();
    w->next.clear();
    if (!w->asked.empty()) ask_for_scan(tokens, w);
  });
}

// A fresh slot scan, or what is known after `patience`: a module can be
// stuck behind a busy card (OpenSC runs one call at a time for all its
// cards), and listing must not wait for that.
Task<Unit> after_scan(Core& core) {
  constexpr auto kPatience = std::chrono::milliseconds(300);
  auto timer = std::make_shared<boost::asio::steady_timer>(core.io, kPatience);
  if (!core.scan_waiters) core.scan_waiters = std::make_shared<ScanWaiters>();
  const std::shared_ptr<ScanWaiters>& w = core.scan_waiters;
  if (w->asked.empty()) {
    w->asked.push_back(timer);
    ask_for_scan(*core.services.tokens, w);
  } else {
    // Those whose patience ran out are gone: they go from the list first.
    if (w->next.size() >= 64) std::erase_if(w->next, [](const auto& t) { return t.expired(); });
    w->next.push_back(timer);
  }
  boost::system::error_code ignored;
  co_await timer->async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ignored));
  co_return Unit{};
}

}  // namespace

Task<Json> tokens_list(Core& core, std::shared_ptr<Call> call) {
  co_await after_scan(core);
  Json list = Json::array();
  for (const auto& t : core.services.tokens->tokens()) {
    Json token = to_json(t);
    if (t.session_owner && !core.may_see_session_owner(call->peer(), *t.session_owner)) token.erase("session_uid");
    list.push_back(std::move(token));
  }
  co_return list;
}

Task<Json> certificates_list(Core& core, std::shared_ptr<Call> call) {
  Params params(call->params());
  auto token_id = params.optional_identifier("token_id");
  std::optional<pkcs11::Purpose> purpose;
  if (auto name = params.optional_string("purpose")) {
    purpose = pkcs11::parse_purpose(*name);
    if (!purpose) invalid_param("purpose", "must be \"authentication\" or \"signature\"");
  }
  co_await after_scan(core);
  Json list = Json::array();
  for (const auto& c : co_await core.services.tokens->certificates(std::move(token_id))) {
    if (purpose && std::find(c.purposes.begin(), c.purposes.end(), *purpose) == c.purposes.end()) continue;
    list.push_back(to_json(c));
  }
  co_return list;
}

Task<Json> certificates_share(Core& core, std::shared_ptr<Call> call) {
  Params params(call->params());
  const auto purpose = pkcs11::parse_purpose(params.string("purpose"));
  if (!purpose) invalid_param("purpose", "must be \"authentication\" or \"signature\"");
  std::string origin = params.string("origin");
  check_web_origin(origin);
  service::Caller caller = call->caller();
  caller.origin = std::move(origin);
  co_await after_scan(core);
  co_return to_json(co_await core.service().share_certificate(std::move(caller), *purpose));
}

Task<Json> session_login(Core& core, std::shared_ptr<Call> call) {
  Params params(call->params());
  std::string token_id = params.identifier("token_id");
  const pkcs11::LoginResult r =
      co_await core.service().login(call->caller(), std::move(token_id), params.credentials());
  Json result = {{"logged_in", r.logged_in}};
  if (r.expires_at) result["expires_at"] = wstr(to_rfc3339(*r.expires_at));
  co_return result;
}

Task<Json> session_logout(Core& core, std::shared_ptr<Call> call) {
  Params params(call->params());
  co_await core.service().logout(call->caller(), params.identifier("token_id"));
  co_return Json{{"logged_in", false}};
}

Task<Json> pin_status(Core& core, std::shared_ptr<Call> call) {
  Params params(call->params());
  auto token_id = params.optional_identifier("token_id");
  co_await after_scan(core);
  Json list = Json::array();
  for (const auto& t : core.services.tokens->tokens()) {
    if (token_id && t.token_id != *token_id) continue;
    list.push_back({{"token_id", wstr(t.token_id)},
                    {"label", wstr(t.label)},
                    {"reader", t.reader ? Json(wstr(*t.reader)) : Json(nullptr)},
                    {"pinpad", t.pinpad},
                    {"pins", {{"user", to_json(t.user_pin)}}}});
  }
  if (token_id && list.empty())
    throw Error(Errc::token_not_found, "no card with token id '" + *token_id + "' is present");
  co_return list;
}

namespace {

service::NewPin new_pin_params(Params& params, const char* proof) {
  service::NewPin request;
  request.prompt = params.boolean("pin_prompt", false);
  request.final_try = params.boolean("final_try", false);
  request.pinpad = params.boolean("pinpad", false);
  request.proof = params.secret(proof);
  request.new_pin = params.secret("new_pin");
  return request;
}

}  // namespace

Task<Json> pin_change(Core& core, std::shared_ptr<Call> call) {
  Params params(call->params());
  std::string token_id = params.identifier("token_id");
  service::NewPin request = new_pin_params(params, "pin");
  co_await core.service().change_pin(call->caller(), std::move(token_id), std::move(request));
  co_return Json{{"changed", true}};
}

Task<Json> pin_unblock(Core& core, std::shared_ptr<Call> call) {
  Params params(call->params());
  std::string token_id = params.identifier("token_id");
  service::NewPin request = new_pin_params(params, "puk");
  co_await core.service().unblock_pin(call->caller(), std::move(token_id), std::move(request));
  co_return Json{{"unblocked", true}};
}

}  // namespace kortti::ipc
