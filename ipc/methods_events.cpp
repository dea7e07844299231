#include <set>

#include "ipc/connection.hpp"
#include "ipc/core.hpp"
#include "ipc/params.hpp"

namespace kortti::ipc {

namespace {

const std::set<std::string> kTopics = {"reader", "card", "token", "session"};

std::vector<std::string> topics_of(const std::shared_ptr<Call>& call) {
  Params params(call->params());
  auto topics = params.string_array("topics");
  if (topics.empty()) invalid_param("topics", "must list at least one of reader, card, token, session");
  for (const auto& t : topics)
    if (kTopics.count(t) == 0) invalid_param("topics", "has unknown topic '" + t + "' (reader, card, token, session)");
  return topics;
}

void answer(const std::shared_ptr<Call>& call, const std::set<std::string>& subscribed) {
  Json list = Json::array();
  for (const auto& t : subscribed) list.push_back(wstr(t));
  call->respond({{"subscribed", std::move(list)}});
}

}  // namespace

void register_event_methods(Core& core) {
  core.add("events.subscribe", MethodGroup::read, [](const std::shared_ptr<Call>& call) {
    const auto topics = topics_of(call);
    auto connection = call->connection();
    if (!connection) return;
    connection->topics().insert(topics.begin(), topics.end());
    answer(call, connection->topics());
  });
  core.add("events.unsubscribe", MethodGroup::read, [](const std::shared_ptr<Call>& call) {
    const auto topics = topics_of(call);
    auto connection = call->connection();
    if (!connection) return;
    for (const auto& t : topics) connection->topics().erase(t);
    answer(call, connection->topics());
  });
}

}  // namespace kortti::ipc
