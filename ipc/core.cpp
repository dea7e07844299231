#include <spdlog/spdlog.h>

#include "ipc/connection.hpp"
#include "ipc/core.hpp"

namespace kortti::ipc {

void Core::dispatch(const std::shared_ptr<Connection>& connection, Request request) {
  auto it = methods.find(request.method);
  if (it == methods.end()) {
    connection->send(make_error(request.id, Error(Errc::method_not_found, "unknown method '" + request.method + "'")));
    return;
  }
  const Peer& peer = connection->peer();
  if (!options.access.allows(peer, it->second.group)) {
    spdlog::warn("conn={} uid={} pid={}: {} refused (group '{}')", peer.connection, peer.uid, peer.pid, request.method,
                 name_of(it->second.group));
    connection->send(make_error(request.id, Error(Errc::permission_denied, "uid " + std::to_string(peer.uid) +
                                                                               " may not call " + request.method)));
    return;
  }
  auto call = std::make_shared<Call>(*this, connection, std::move(request));
  connection->track(call);
  call->arm_deadline(options.request_timeout);
  if (auto pin = call->params().find("pin"); pin != call->params().end() && !pin->is_null()) {
    pin_gate->admit(call);
    return;
  }
  run(call);
}

void Core::run(const std::shared_ptr<Call>& call) {
  if (call->answered()) return;  // it waited for a PIN slot past its deadline
  const auto it = methods.find(call->method());
  try {
    it->second.handler(call);
  } catch (const Error& e) {
    call->fail(e);
  } catch (const std::exception& e) {
    call->fail(internal_error(call->method(), e.what()));
  }
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
    const bool full = !owner || may_see_session_owner(connection->peer(), *owner);
    connection->send(full ? event : *anonymous);
  }
}

}  // namespace kortti::ipc
