// `kortti events`: reader, card, token, session and PIN events as they happen.

#include <iostream>
#include <memory>
#include <vector>

#include "client/commands.hpp"

namespace kortti::cli {

namespace {

using client::Client;

int cmd_events(Client& c, const Globals& g, std::vector<std::string> topics, int count) {
  if (topics.empty()) topics = {"reader", "card", "token", "session", "pin"};
  Json list = Json::array();
  for (const auto& t : topics) list.push_back(wstr(t));
  c.call("events.subscribe", {{"topics", list}});
  for (int seen = 0; count <= 0 || seen < count; ++seen) {
    auto event = c.next_event();
    if (!event) break;
    const Json& p = (*event)["params"];
    if (g.json) {
      std::cout << to_std(p.dump()) << std::endl;
      continue;
    }
    std::cout << text(p, "time") << "  " << text(p, "topic") << " " << text(p, "type");
    for (const char* key : {"reader", "token_id", "card_type", "label"})
      if (p.contains(key) && p[key].is_string()) std::cout << "  " << key << "=" << text(p, key);
    std::cout << std::endl;
  }
  return 0;
}

}  // namespace

Runner define_events(CLI::App& cmd) {
  auto topics = std::make_shared<std::vector<std::string>>();
  auto count = std::make_shared<int>(0);
  cmd.add_option("--topic", *topics, "reader, card, token, session or pin (repeatable; default: all)")
      ->check(CLI::IsMember({"reader", "card", "token", "session", "pin"}));
  cmd.add_option("--count", *count, "stop after this many events (default: run until interrupted)");
  return {[topics, count](Client& c, const Globals& g) { return cmd_events(c, g, *topics, *count); }, {}};
}

}  // namespace kortti::cli
