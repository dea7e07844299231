// `kortti pin status|change|unblock`: the user PIN's tries, and a new PIN
// proven by the old one or by the activation code (PUK). The PINs are typed
// on this terminal, read from --pin-fd, or asked by korttid itself in its
// own dialog (--pin-prompt).

#include <iostream>
#include <memory>

#include "client/commands.hpp"
#include "client/pin_entry.hpp"
#include "client/table.hpp"

namespace kortti::cli {

namespace {

using client::Client;

struct PinCommand {
  std::string token;
  int pin_fd = -1;
  bool pin_prompt = false;
  bool pinpad = false;
  bool final_try = false;
  CLI::App* status = nullptr;
  CLI::App* change = nullptr;
  CLI::App* unblock = nullptr;
};

int cmd_status(Client& c, const Globals& g, const PinCommand& o) {
  Json params = Json::object();
  if (!o.token.empty()) params["token_id"] = wstr(o.token);
  const Json list = c.call("pin.status", params);
  if (g.json) return print_json(list), 0;
  if (list.empty()) {
    std::cout << "no tokens (no card inserted, or no PKCS#11 module recognises it)\n";
    return 0;
  }
  client::Table t({"TOKEN ID", "LABEL", "PIN", "LENGTH", "PIN PAD"});
  for (const auto& tok : list) {
    const Json& user = tok["pins"]["user"];
    std::string length = "-";
    if (user.contains("max_length"))
      length = std::to_string(user["min_length"].get<int>()) + "-" + std::to_string(user["max_length"].get<int>());
    t.add(
        {text(tok, "token_id"), text(tok, "label"), pin_state(tok), length, tok.value("pinpad", false) ? "yes" : "no"});
  }
  t.print(std::cout);
  return 0;
}

// The old PIN (or PUK) and the new PIN, typed twice, when korttid does not ask.
void collect(Json& params, const PinCommand& o, const char* proof, const std::string& proof_name) {
  if (o.pin_prompt) {
    params["pin_prompt"] = true;
    return;
  }
  if (o.pinpad) {
    params["pinpad"] = true;
    return;
  }
  if (o.pin_fd >= 0) {
    // Two lines: the old PIN (or PUK), then the new PIN.
    SecretString old_pin = client::read_pin_from_fd(o.pin_fd);
    SecretString new_pin = client::read_pin_from_fd(o.pin_fd);
    put_scrubbed(params, proof, old_pin.view());
    put_scrubbed(params, "new_pin", new_pin.view());
    return;
  }
  SecretString old_pin = client::prompt_pin(proof_name + " for " + o.token + ": ");
  SecretString new_pin = client::prompt_pin("new PIN: ");
  SecretString again = client::prompt_pin("new PIN again: ");
  if (new_pin.view() != again.view()) throw std::runtime_error("the two new PINs differ; nothing was changed");
  put_scrubbed(params, proof, old_pin.view());
  put_scrubbed(params, "new_pin", new_pin.view());
}

int cmd_change(Client& c, const Globals& g, const PinCommand& o) {
  Json params = {{"token_id", wstr(o.token)}};
  if (o.final_try) params["final_try"] = true;
  collect(params, o, "pin", "current PIN");
  const Json r = c.call("pin.change", params);
  if (g.json) return print_json(r), 0;
  std::cout << "the PIN of " << o.token << " is changed\n";
  return 0;
}

int cmd_unblock(Client& c, const Globals& g, const PinCommand& o) {
  Json params = {{"token_id", wstr(o.token)}};
  collect(params, o, "puk", "activation code (PUK)");
  const Json r = c.call("pin.unblock", params);
  if (g.json) return print_json(r), 0;
  std::cout << "the PIN of " << o.token << " is unblocked and set anew\n";
  return 0;
}

void add_entry_options(CLI::App* cmd, PinCommand& o, const char* fd_help) {
  cmd->add_option("--token", o.token, "the token whose user PIN it is")->required()->option_text("TOKEN_ID");
  auto* fd = cmd->add_option("--pin-fd", o.pin_fd, fd_help)->option_text("N")->check(CLI::NonNegativeNumber);
  auto* prompt = cmd->add_flag("--pin-prompt", o.pin_prompt,
                               "let korttid ask for the PINs in its own dialog (pinentry), so this program never "
                               "sees them")
                     ->excludes(fd);
  cmd->add_flag("--pinpad", o.pinpad, "type the PINs on the reader's PIN pad")->excludes(fd)->excludes(prompt);
}

}  // namespace

Runner define_pin(CLI::App& cmd) {
  auto o = std::make_shared<PinCommand>();
  cmd.require_subcommand(1);
  o->status = cmd.add_subcommand("status", "tries left, locked or not, and the length rule of each token's PIN");
  o->status->add_option("--token", o->token, "only this token")->option_text("TOKEN_ID");
  o->change = cmd.add_subcommand("change", "set a new PIN, proven by the current one");
  add_entry_options(o->change, *o, "read the current PIN, then the new one, a line each, from this descriptor");
  o->change->add_flag("--final-try", o->final_try,
                      "spend the current PIN's last try when only one is left (a wrong PIN then locks the card)");
  o->unblock = cmd.add_subcommand("unblock", "unlock a locked PIN with the activation code (PUK) and set a new one");
  add_entry_options(o->unblock, *o, "read the PUK, then the new PIN, a line each, from this descriptor");
  return {[o](Client& c, const Globals& g) {
            if (*o->change) return cmd_change(c, g, *o);
            if (*o->unblock) return cmd_unblock(c, g, *o);
            return cmd_status(c, g, *o);
          },
          {}};
}

}  // namespace kortti::cli
