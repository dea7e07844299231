// What korttid is and sees: hello, status, readers, and event subscriptions.

#include <set>

#include "common/encoding.hpp"
#include "common/version.hpp"
#include "ipc/connection.hpp"
#include "ipc/convert.hpp"
#include "ipc/methods.hpp"
#include "ipc/params.hpp"
#include "pcsc/pcsc.hpp"
#include "policy/policy.hpp"

namespace kortti::ipc {

namespace {

const std::set<std::string> kTopics = {"reader", "card", "token", "session", "pin"};

std::vector<std::string> topics_of(Call& call) {
  Params params(call.params());
  auto topics = params.string_array("topics");
  if (topics.empty()) invalid_param("topics", "must list at least one of reader, card, token, session, pin");
  for (const auto& t : topics)
    if (kTopics.count(t) == 0)
      invalid_param("topics", "has unknown topic '" + echo(t) + "' (reader, card, token, session, pin)");
  return topics;
}

Json subscribed(const std::set<std::string>& topics) {
  Json list = Json::array();
  for (const auto& t : topics) list.push_back(wstr(t));
  return {{"subscribed", std::move(list)}};
}

}  // namespace

Task<Json> system_hello(Core& core, std::shared_ptr<Call> call) {
  Params params(call->params());
  const auto client = params.optional_string("client");
  (void)params.optional_string("version");
  // The name goes into every log and audit line of the connection and into
  // the PIN dialogs: a control character there could cut a dialog's text
  // short (before its "LAST try" warning) or redraw a terminal.
  if (client && !plain_text(*client))
    throw Error(Errc::invalid_params, "parameter 'client' must be UTF-8 text without control characters");
  // Cut at a character: half of one is not UTF-8.
  if (auto connection = call->connection(); connection && client)
    connection->peer().client = std::string(utf8_prefix(*client, 64));
  Json capabilities = Json::array();
  for (const auto& [name, method] : core.methods) capabilities.push_back(wstr(std::string(name)));
  capabilities.push_back("pipelining");
  capabilities.push_back("attachments");
  co_return Json{{"daemon", "korttid"},
                 {"version", kVersion},
                 {"protocol", kProtocolVersion},
                 {"capabilities", std::move(capabilities)}};
}

Task<Json> system_status(Core& core, std::shared_ptr<Call>) {
  const auto& tokens = *core.services.tokens;
  Json modules = Json::array();
  for (const auto& m : tokens.modules()) modules.push_back(to_json(m));
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - core.started);
  const pcsc::Monitor* monitor = core.services.pcsc;
  const char* pcsc_state = monitor == nullptr ? "disabled" : monitor->available() ? "ok" : "unavailable";
  Json status = {{"uptime_s", uptime.count()},
                 {"pcsc", pcsc_state},
                 {"modules", std::move(modules)},
                 {"readers", monitor == nullptr ? 0 : monitor->readers().size()},
                 {"tokens", tokens.tokens().size()},
                 {"connections", core.connections.size()},
                 {"registry", nullptr},
                 {"scs", core.services.scs_status ? core.services.scs_status() : Json()}};
  if (core.services.policy != nullptr) {
    // A registry that cannot be read now is reported as unknown, not as an error.
    Result<policy::Provenance> registry = co_await attempt(core.services.policy->status());
    if (registry.ok()) status["registry"] = to_json(registry.value(), core.services.policy->stale());
  }
  co_return status;
}

Task<Json> events_subscribe(Core&, std::shared_ptr<Call> call) {
  const auto topics = topics_of(*call);
  auto connection = call->connection();
  if (!connection) co_return Json::object();  // nobody to answer
  connection->topics().insert(topics.begin(), topics.end());
  co_return subscribed(connection->topics());
}

Task<Json> events_unsubscribe(Core&, std::shared_ptr<Call> call) {
  const auto topics = topics_of(*call);
  auto connection = call->connection();
  if (!connection) co_return Json::object();
  for (const auto& t : topics) connection->topics().erase(t);
  co_return subscribed(connection->topics());
}

Task<Json> readers_list(Core& core, std::shared_ptr<Call>) {
  Json list = Json::array();
  if (core.services.pcsc == nullptr) co_return list;
  const auto tokens = core.services.tokens->tokens();
  for (const auto& reader : core.services.pcsc->readers()) {
    Json entry = to_json(reader);
    Json ids = Json::array();
    for (const auto& t : tokens)
      if (t.reader == reader.name) ids.push_back(wstr(t.token_id));
    entry["tokens"] = std::move(ids);
    list.push_back(std::move(entry));
  }
  co_return list;
}

}  // namespace kortti::ipc
