#include <spdlog/spdlog.h>

#include "common/secret.hpp"
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
  // Each PIN waits in locked memory, which is small: one uid must not fill it
  // with queued requests and so lock everyone else out of signing.
  if (auto pin = call->params().find("pin"); pin != call->params().end() && !pin->is_null() &&
                                             !call->hold_pin_slot(options.max_pin_requests_per_uid)) {
    spdlog::warn("conn={} uid={} pid={}: {} refused, {} requests with a PIN already in flight", peer.connection,
                 peer.uid, peer.pid, call->method(), options.max_pin_requests_per_uid);
    wipe_string(pin->get_ref<WipingString&>());
    connection->send(make_error(call->id(), Error(Errc::service_unavailable,
                                                  "uid " + std::to_string(peer.uid) + " already has " +
                                                      std::to_string(options.max_pin_requests_per_uid) +
                                                      " requests with a PIN in flight; wait for one to finish")));
    return;
  }
  connection->track(call);
  call->arm_deadline(options.request_timeout);
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
