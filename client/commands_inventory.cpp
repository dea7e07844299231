// `kortti status`, `readers`, `tokens` and `certs`: what korttid sees.

#include <iostream>
#include <memory>
#include <utility>

#include "client/commands.hpp"
#include "client/table.hpp"
#include "common/subject.hpp"

namespace kortti::cli {

namespace {

using client::Client;

int cmd_status(Client& c, const Globals& g) {
  const Json s = c.call("system.status");
  if (g.json) return print_json(s), 0;
  std::cout << "korttid up " << s.value("uptime_s", 0) << " s; PC/SC " << text(s, "pcsc") << "; "
            << s.value("readers", 0) << " reader(s), " << s.value("tokens", 0) << " token(s)\n\n";
  client::Table t({"PKCS#11 MODULE", "STATE", "LIBRARY"});
  for (const auto& m : s["modules"])
    t.add({text(m, "path"), m.value("loaded", false) ? "loaded" : "FAILED: " + text(m, "error"),
           m.value("loaded", false) ? text(m, "manufacturer") + " " + text(m, "description") + " " + text(m, "version")
                                    : ""});
  t.print(std::cout);
  std::cout << "\nValvira registry: " << registry_summary(s["registry"]) << "\n";
  return 0;
}

int cmd_readers(Client& c, const Globals& g) {
  const Json list = c.call("readers.list");
  if (g.json) return print_json(list), 0;
  if (list.empty()) {
    std::cout << "no readers (is pcscd running, and [pcsc] enabled?)\n";
    return 0;
  }
  client::Table t({"READER", "CARD", "CARD TYPE", "PIN PAD", "TOKENS"});
  for (const auto& r : list) {
    std::string tokens;
    for (const auto& id : r["tokens"]) {
      if (!tokens.empty()) tokens += ',';
      tokens += to_std(id.get_ref<const WipingString&>());
    }
    t.add({text(r, "name"), r.value("card_present", false) ? "yes" : "no",
           r["card_type"].is_string() ? text(r, "card_type") : (r.value("card_present", false) ? "unknown" : "-"),
           r.value("pinpad", false) ? "yes" : "no", tokens.empty() ? "-" : tokens});
  }
  t.print(std::cout);
  return 0;
}

}  // namespace

std::string pin_state(const Json& token) {
  const Json user = token["pins"]["user"];
  if (user.value("locked", false)) return "locked";
  if (user.contains("tries_left")) {
    const int n = user["tries_left"].get<int>();
    return std::to_string(n) + (n == 1 ? " try left" : " tries left");
  }
  if (user.value("count_low", false)) return "tries low";
  return "ok";
}

namespace {

int cmd_tokens(Client& c, const Globals& g) {
  const Json list = c.call("tokens.list");
  if (g.json) return print_json(list), 0;
  if (list.empty()) {
    std::cout << "no tokens (no card inserted, or no PKCS#11 module recognises it)\n";
    return 0;
  }
  client::Table t({"TOKEN ID", "LABEL", "READER", "LOGGED IN", "PIN PAD", "PIN"});
  for (const auto& tok : list)
    t.add({text(tok, "token_id"), text(tok, "label"), tok["reader"].is_string() ? text(tok, "reader") : "-",
           tok.value("logged_in", false) ? "yes" : "no", tok.value("pinpad", false) ? "yes" : "no", pin_state(tok)});
  t.print(std::cout);
  return 0;
}

int cmd_certs(Client& c, const Globals& g, const std::string& token, const std::string& purpose) {
  Json params = Json::object();
  if (!token.empty()) params["token_id"] = wstr(token);
  if (!purpose.empty()) params["purpose"] = wstr(purpose);
  const Json list = c.call("certificates.list", params);
  if (g.json) return print_json(list), 0;
  if (list.empty()) {
    std::cout << "no certificates\n";
    return 0;
  }
  client::Table t({"CERT ID", "SUBJECT", "KEY", "PURPOSES", "VALID UNTIL"});
  for (const auto& cert : list) {
    std::string purposes;
    for (const auto& p : cert["purposes"])
      purposes += (purposes.empty() ? "" : ",") + to_std(p.get_ref<const WipingString&>());
    std::string key = text(cert, "key_type") + "-" + std::to_string(cert.value("key_bits", 0));
    if (cert.contains("curve")) key = "ec " + text(cert, "curve");
    t.add({text(cert, "cert_id"), common_name(text(cert, "subject")), key, purposes,
           text(cert, "not_after").substr(0, 10)});
  }
  t.print(std::cout);
  return 0;
}

}  // namespace

Runner define_status(CLI::App&) { return {cmd_status, {}}; }
Runner define_readers(CLI::App&) { return {cmd_readers, {}}; }
Runner define_tokens(CLI::App&) { return {cmd_tokens, {}}; }

Runner define_certs(CLI::App& cmd) {
  auto o = std::make_shared<std::pair<std::string, std::string>>();  // token, purpose
  cmd.add_option("--token", o->first, "only this token")->option_text("TOKEN_ID");
  cmd.add_option("--purpose", o->second, "authentication or signature")
      ->check(CLI::IsMember({"authentication", "signature"}));
  return {[o](Client& c, const Globals& g) { return cmd_certs(c, g, o->first, o->second); }, {}};
}

}  // namespace kortti::cli
