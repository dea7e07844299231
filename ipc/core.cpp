#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>

#include "ipc/connection.hpp"
#include "ipc/core.hpp"

namespace kortti::ipc {

namespace {

// The parameters that hold a secret (docs/protocol.md): pin.change's and
// pin.unblock's new PIN and activation code as well as every method's PIN.
constexpr std::array kSecretParams = {"pin", "puk", "new_pin"};

}  // namespace

Core::Core(boost::asio::io_context& context, ServerOptions server_options, Services server_services)
    : io(context),
      options(std::move(server_options)),
      services(server_services),
      pin_gate(std::make_shared<PinGate>(io, options.max_pin_requests_per_uid, 2 * options.max_message_bytes,
                                         [this](const std::shared_ptr<Call>& call) { run(call); })),
      log_budget(options.log_lines_per_second_per_uid) {
  for (const Method& m : protocol()) {
    if (m.needs == Needs::policy && services.policy == nullptr) continue;
    if (m.needs == Needs::documents && !services.documents) continue;
    if (m.needs == Needs::tunnels && services.tunnels == nullptr) continue;
    methods.emplace(m.name, &m);
  }
}

void Core::dispatch(const std::shared_ptr<Connection>& connection, Request request) {
  auto it = methods.find(request.method);
  if (it == methods.end()) {
    connection->send(
        make_error(request.id, Error(Errc::method_not_found, "unknown method '" + echo(request.method) + "'")));
    return;
  }
  const Peer& peer = connection->peer();
  if (!options.access.allows(peer, it->second->group)) {
    if (log_budget.allow(peer.uid))
      spdlog::warn("conn={} uid={} pid={}: {} refused (group '{}')", peer.connection, peer.uid, peer.pid,
                   request.method, name_of(it->second->group));
    connection->send(make_error(request.id, Error(Errc::permission_denied, "uid " + std::to_string(peer.uid) +
                                                                               " may not call " + request.method)));
    return;
  }
  auto call = std::make_shared<Call>(*this, connection, std::move(request));
  connection->track(call);
  call->arm_deadline(options.request_timeout);
  // Every secret a request carries goes to the locked heap: a PIN, and
  // pin.unblock's activation code and new PIN.
  const auto& params = call->params();
  if (std::any_of(kSecretParams.begin(), kSecretParams.end(), [&](const char* key) {
        const auto secret = params.find(key);
        return secret != params.end() && !secret->is_null();
      })) {
    pin_gate->admit(call);
    return;
  }
  run(call);
}

void Core::run(const std::shared_ptr<Call>& call) {
  if (call->answered()) return;  // it waited for a PIN slot past its deadline
  const Method& method = *methods.find(call->method())->second;
  boost::asio::co_spawn(io, method.handler(*this, call), [call](std::exception_ptr failure, Json result) {
    if (!failure) return (void)call->respond(std::move(result));
    try {
      std::rethrow_exception(failure);
    } catch (const Error& e) {
      call->fail(e);
    } catch (const std::exception& e) {
      call->fail(internal_error(call->method(), e.what()));
    } catch (...) {
      call->fail(internal_error(call->method(), "an exception of unknown type"));
    }
  });
}

void Core::publish(std::string_view topic, Json params) {
  std::optional<uid_t> owner;
  if (auto it = params.find("uid"); it != params.end() && it->is_number_unsigned())
    owner = static_cast<uid_t>(it->get<std::uint64_t>());
  const Json event = make_event(topic, params);
  std::optional<Json> anonymous;
  if (owner) {
    params.erase("uid");
    anonymous = make_event(topic, std::move(params));
  }
  for (auto& [id, connection] : std::map(connections)) {
    if (connection->topics().count(std::string(topic)) == 0) continue;
    // The rules of now, not those at the subscription: a reload that takes
    // `read` from a uid stops its events until the rules give it back.
    if (!options.access.allows(connection->peer(), MethodGroup::read)) continue;
    const bool full = !owner || may_see_session_owner(connection->peer(), *owner);
    connection->send(full ? event : *anonymous);
  }
}

}  // namespace kortti::ipc
