// `kortti login` and `logout`: this user's PIN1 session on a token.

#include <iostream>
#include <memory>

#include "client/commands.hpp"
#include "client/pin_entry.hpp"

namespace kortti::cli {

namespace {

using client::Client;

int cmd_login(Client& c, const Globals& g, const std::string& token, const PinOptions& pin) {
  Json params = {{"token_id", wstr(token)}};
  if (!pin.apply(params)) {
    put_scrubbed(params, "pin", client::prompt_pin("PIN for " + token + ": ").view());
  }
  const Json r = c.call("session.login", params);
  if (g.json) return print_json(r), 0;
  std::cout << "logged in to " << token << " until " << text(r, "expires_at") << "\n";
  return 0;
}

int cmd_logout(Client& c, const Globals& g, const std::string& token) {
  const Json r = c.call("session.logout", {{"token_id", wstr(token)}});
  if (g.json) return print_json(r), 0;
  std::cout << "logged out of " << token << "\n";
  return 0;
}

}  // namespace

Runner define_login(CLI::App& cmd) {
  auto token = std::make_shared<std::string>();
  auto pin = std::make_shared<PinOptions>();
  cmd.add_option("--token", *token, "token to log in to")->required()->option_text("TOKEN_ID");
  pin->add_to(&cmd);
  return {[token, pin](Client& c, const Globals& g) { return cmd_login(c, g, *token, *pin); }, {}};
}

Runner define_logout(CLI::App& cmd) {
  auto token = std::make_shared<std::string>();
  cmd.add_option("--token", *token, "token to log out of")->required()->option_text("TOKEN_ID");
  return {[token](Client& c, const Globals& g) { return cmd_logout(c, g, *token); }, {}};
}

}  // namespace kortti::cli
