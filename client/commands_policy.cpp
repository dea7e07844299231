// `kortti identity`, `check` and `professional`: who a card names and what
// the policy and the Valvira registry say of them.

#include <iostream>
#include <memory>
#include <utility>
#include <vector>

#include "client/commands.hpp"

namespace kortti::cli {

namespace {

using client::Client;

const std::vector<std::string> kActions = {"authenticate", "sign.document", "sign.prescription"};

void print_professional(const Json& p) {
  if (!p.is_object()) {
    std::cout << "Valvira record: none\n";
    return;
  }
  std::cout << "Valvira record " << text(p, "registration_number") << ": " << text(p["name"], "given") << " "
            << text(p["name"], "family") << "\n";
  field("prescriber id", p["prescriber_id"].is_string() ? text(p, "prescriber_id") : "");
  field("SATU", text(p["identifiers"], "satu"));
  auto period = [](const Json& x) {
    return (x["valid_from"].is_string() ? text(x, "valid_from") : "") + " .. " +
           (x["valid_to"].is_string() ? text(x, "valid_to") : "");
  };
  for (const auto& r : p["rights"])
    field("right", text(r, "code") + (r.contains("name") ? " " + text(r, "name") : "") + "  (" + period(r) + ")");
  for (const auto& r : p["restrictions"]) {
    std::string what = "target " + text(r, "target") + (r.contains("target_name") ? " " + text(r, "target_name") : "");
    if (r["object"].is_object()) what += ", " + text(r["object"], "system") + " " + text(r["object"], "code");
    if (r["scope"].is_string()) what += ", scope " + text(r, "scope");
    field("restriction", what + "  (" + period(r) + ")");
  }
  for (const auto& s : p["specialties"]) field("specialty", to_std(s.get_ref<const WipingString&>()));
}

int cmd_identity(Client& c, const Globals& g, const std::string& cert, const std::string& action) {
  Json params = {{"cert_id", wstr(cert)}};
  if (!action.empty()) params["action"] = wstr(action);
  const Json r = c.call("certificates.identity", params);
  if (g.json) return print_json(r), 0;
  const Json& id = r["identity"];
  std::cout << text(id["name"], "common") << "\n";
  field("title", text(id, "title"));
  field("organisation", text(id, "organisation"));
  field("SATU", text(id, "satu"));
  field("registration", text(id, "registration_number"));
  field("card type", text(id, "card_type"));
  print_validation(r["validation"]);
  std::cout << "  (validated for " << text(r, "action") << ")\n";
  print_professional(r["professional"]);
  std::cout << "Valvira registry: " << registry_summary(r["registry"]) << "\n";
  return 0;
}

struct CheckOptions {
  std::string cert;
  std::string number;
  std::string action = "sign.prescription";
  std::vector<std::string> atc;
  std::vector<std::string> classes;
  std::string workplace;
  bool supervised = false;
};

int cmd_check(Client& c, const Globals& g, const CheckOptions& o) {
  Json context = Json::object();
  Json atc = Json::array(), classes = Json::array();
  for (const auto& a : o.atc) atc.push_back(wstr(a));
  for (const auto& m : o.classes) classes.push_back(wstr(m));
  context["atc_codes"] = std::move(atc);
  context["medicine_classes"] = std::move(classes);
  if (!o.workplace.empty()) context["workplace"] = wstr(o.workplace);
  if (o.supervised) context["supervised"] = true;
  Json params = {{"action", wstr(o.action)}, {"context", std::move(context)}};
  if (!o.cert.empty())
    params["cert_id"] = wstr(o.cert);
  else
    params["registration_number"] = wstr(o.number);
  const Json r = c.call("policy.check", params);
  const bool allowed = r.value("allowed", false);
  if (g.json) return print_json(r), allowed ? 0 : kExitDenied;
  std::cout << (allowed ? "ALLOWED" : "DENIED") << ": " << o.action << " by "
            << (r["professional"].is_object()
                    ? text(r["professional"]["name"], "given") + " " + text(r["professional"]["name"], "family") +
                          " (" + text(r["professional"], "registration_number") + ")"
                    : (o.cert.empty() ? o.number : o.cert))
            << "\n";
  print_reasons("Reasons", r["reasons"]);
  print_reasons("Warnings", r["warnings"]);
  if (r.contains("certificate")) print_validation(r["certificate"]);
  std::cout << "Valvira registry: " << registry_summary(r["registry"]) << "\n";
  return allowed ? 0 : kExitDenied;
}

int cmd_professional(Client& c, const Globals& g, const std::string& number) {
  const Json r = c.call("registry.lookup", {{"registration_number", wstr(number)}});
  if (g.json) return print_json(r), 0;
  print_professional(r["professional"]);
  std::cout << "Valvira registry: " << registry_summary(r["registry"]) << "\n";
  return 0;
}

}  // namespace

Runner define_identity(CLI::App& cmd) {
  auto o = std::make_shared<std::pair<std::string, std::string>>();  // cert, action
  cmd.add_option("--cert", o->first, "cert_id")->required()->option_text("CERT_ID");
  cmd.add_option("--action", o->second, "validate for this action (default: by the key's purpose)")
      ->check(CLI::IsMember(kActions));
  return {[o](Client& c, const Globals& g) { return cmd_identity(c, g, o->first, o->second); }, {}};
}

Runner define_check(CLI::App& cmd) {
  cmd.footer(
      "\nExit status 0 when allowed, 3 when denied; every reason is printed.\n"
      "With --registration only the Valvira rules run, no certificate checks.\n"
      "docs/policy.md explains each rule and reason.");
  auto o = std::make_shared<CheckOptions>();
  auto* cert = cmd.add_option("--cert", o->cert, "cert_id of the signer's certificate")->option_text("CERT_ID");
  auto* number =
      cmd.add_option("--registration", o->number, "Terhikki registration number instead")->option_text("NUMBER");
  cert->excludes(number);
  cmd.add_option("--action", o->action, "sign.prescription (default), sign.document or authenticate")
      ->check(CLI::IsMember(kActions));
  cmd.add_option("--atc", o->atc, "ATC code of the prescription (repeatable)")->option_text("CODE");
  cmd.add_option("--medicine-class", o->classes, "medicine class code (repeatable)")->option_text("CODE");
  cmd.add_option("--workplace", o->workplace, "where the prescription is written");
  cmd.add_flag("--supervised", o->supervised, "the prescriber works under supervision");
  return {[o](Client& c, const Globals& g) { return cmd_check(c, g, *o); },
          [o]() -> std::optional<std::string> {
            if (o->cert.empty() && o->number.empty())
              return "kortti check: give --cert CERT_ID or --registration NUMBER";
            return std::nullopt;
          }};
}

Runner define_professional(CLI::App& cmd) {
  auto number = std::make_shared<std::string>();
  cmd.add_option("NUMBER", *number, "Terhikki registration number")->required();
  return {[number](Client& c, const Globals& g) { return cmd_professional(c, g, *number); }, {}};
}

}  // namespace kortti::cli
