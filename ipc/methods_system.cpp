#include "common/encoding.hpp"
#include "common/version.hpp"
#include "ipc/connection.hpp"
#include "ipc/convert.hpp"
#include "ipc/core.hpp"
#include "ipc/params.hpp"
#include "policy/policy.hpp"

namespace kortti::ipc {

void register_system_methods(Core& core) {
  core.add("system.hello", MethodGroup::read, [&core](const std::shared_ptr<Call>& call) {
    Params params(call->params());
    const auto client = params.optional_string("client");
    (void)params.optional_string("version");
    // Cut at a character: half of one is not UTF-8, and this name goes into
    // every log and audit line of the connection.
    if (auto connection = call->connection(); connection && client)
      connection->peer().client = std::string(utf8_prefix(*client, 64));
    Json capabilities = Json::array();
    for (const auto& [name, method] : core.methods) capabilities.push_back(wstr(name));
    capabilities.push_back("pipelining");
    capabilities.push_back("attachments");
    call->respond({{"daemon", "korttid"},
                   {"version", kVersion},
                   {"protocol", kProtocolVersion},
                   {"capabilities", std::move(capabilities)}});
  });

  core.add("system.status", MethodGroup::read, [&core](const std::shared_ptr<Call>& call) {
    const auto& tokens = *core.services.tokens;
    Json modules = Json::array();
    for (const auto& m : tokens.modules()) modules.push_back(to_json(m));
    const auto uptime =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - core.started);
    const pcsc::Monitor* monitor = core.services.pcsc;
    const char* pcsc_state = monitor == nullptr ? "disabled" : monitor->available() ? "ok" : "unavailable";
    Json status = {{"uptime_s", uptime.count()},
                   {"pcsc", pcsc_state},
                   {"modules", std::move(modules)},
                   {"readers", monitor == nullptr ? 0 : monitor->readers().size()},
                   {"tokens", tokens.tokens().size()},
                   {"connections", core.connections.size()},
                   {"registry", nullptr}};
    if (core.services.policy == nullptr) return (void)call->respond(std::move(status));
    core.services.policy->status([&core, call, status = std::move(status)](Result<policy::Provenance> r) mutable {
      if (r.ok()) status["registry"] = to_json(r.value(), core.services.policy->stale());
      call->respond(std::move(status));
    });
  });
}

}  // namespace kortti::ipc
