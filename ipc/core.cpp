#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include "common/encoding.hpp"
#include "ipc/connection.hpp"
#include "ipc/core.hpp"

namespace kortti::ipc {

std::string new_correlation_id() {
  Bytes raw(6);
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) return "unknown";
  return hex_encode(raw);
}

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
  try {
    it->second.handler(call);
  } catch (const Error& e) {
    call->fail(e);
  } catch (const std::exception& e) {
    const std::string cid = new_correlation_id();
    spdlog::error("internal error {} in {}: {}", cid, call->method(), e.what());
    call->fail(Error(Errc::internal_error, "internal error; the korttid log has the details under " + cid), cid);
  }
}

void Core::publish(std::string_view topic, Json params) {
  const Json event = make_event(topic, std::move(params));
  for (auto& [id, connection] : std::map(connections))
    if (connection->topics().count(std::string(topic)) != 0) connection->send(event);
}

}  // namespace kortti::ipc
