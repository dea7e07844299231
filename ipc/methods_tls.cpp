// tls.upstreams and tls.tunnels: the forward tunnels as configured and as
// open now. Who holds a tunnel is the holder's and the admins' business,
// as for sessions.

#include "common/time.hpp"
#include "ipc/methods.hpp"
#include "tls/tls.hpp"

namespace kortti::ipc {

Task<Json> tls_upstreams(Core& core, std::shared_ptr<Call>) {
  Json out = Json::array();
  for (const auto& u : core.services.tunnels->upstreams())
    out.push_back({{"name", wstr(u.name)},
                   {"connect", wstr(u.connect)},
                   {"server_name", wstr(u.server_name)},
                   {"listen", wstr(u.listen)},
                   {"state", u.listening ? "listening" : "closed"}});
  co_return out;
}

Task<Json> tls_tunnels(Core& core, std::shared_ptr<Call> call) {
  Json out = Json::array();
  for (const auto& t : core.services.tunnels->tunnels()) {
    if (!core.may_see_session_owner(call->peer(), t.uid)) continue;
    out.push_back({{"id", t.id},
                   {"upstream", wstr(t.upstream)},
                   {"uid", t.uid},
                   {"pid", t.pid},
                   {"cert_id", wstr(t.cert_id)},
                   {"version", wstr(t.version)},
                   {"signature_algorithm", wstr(t.signature)},
                   {"since", wstr(to_rfc3339(t.since))},
                   {"bytes_sent", t.sent},
                   {"bytes_received", t.received}});
  }
  co_return out;
}

}  // namespace kortti::ipc
