// kortti: command-line client for korttid. See `kortti --help`.
// The commands live in client/commands_*.cpp (client/commands.hpp).

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <iostream>
#include <memory>
#include <system_error>
#include <utility>
#include <vector>

#include "client/client.hpp"
#include "client/commands.hpp"
#include "client/safe_output.hpp"
#include "common/secret.hpp"
#include "common/version.hpp"

namespace {

using namespace kortti;
using namespace kortti::cli;
using client::Client;
using client::RpcError;

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnavailable = 69;  // EX_UNAVAILABLE
// What kortti says when korttid takes no connection or gives no answer in time.
constexpr const char* kStoppedOrStuck =
    "korttid may be stopped or stuck; systemctl status korttid, or journalctl -u korttid, shows why";

constexpr const char* kFooter = R"(
kortti talks to korttid, the local smart-card daemon, over its Unix socket.
Every command prints a readable table or summary; add --json for the daemon's
answer as JSON (docs/protocol.md).

PINS
  A PIN is never taken from the command line. kortti asks on the terminal
  with echo off, or reads one line from --pin-fd N (for scripts: a pipe or
  file opened on descriptor N). --pinpad uses the reader's PIN pad. When
  the card has one PIN try left, korttid does not spend it unless the command
  has --final-try: a wrong PIN then locks the card.

SOCKET
  --socket PATH, else $KORTTI_SOCKET, else $XDG_RUNTIME_DIR/korttid/korttid.sock
  if it exists, else /run/korttid/korttid.sock.

TIMEOUT
  korttid answers each request kortti sends within its own deadline
  (ipc.request_timeout_s, 120 s unless the admin changed it), PIN dialogs
  included. --timeout (300 s) is for a korttid that cannot: stopped, or stuck.
  kortti then gives up on the connection, the request or the answer it waited
  for, and exits 69.

EXIT STATUS
  0 success; 1 the daemon refused or failed, or its answer could not be
  read (the reason is printed); 2 usage error; 3 `kortti check` or
  `kortti prescribe`: denied, `kortti verify`: not valid; 69 korttid is
  not reachable, or did not answer within --timeout.

EXAMPLES
  kortti tokens
  kortti certs --purpose signature
  kortti identity --cert SoftHSM_project-1a2b/02
  kortti check --cert SoftHSM_project-1a2b/02 --atc N02AA01 --atc J01CA04
  kortti professional 10000001
  kortti sign --cert SoftHSM_project-1a2b/02 --in note.txt --out note.sig --cert-out signer.pem
  kortti prescribe --cert SoftHSM_project-1a2b/02 --in resepti.xml --out resepti-signed.xml
  kortti verify --in resepti-signed.xml
  openssl dgst -sha256 -verify <(openssl x509 -pubkey -noout -in signer.pem) -signature note.sig note.txt)";

struct Command {
  const char* name;
  const char* help;
  Define define;
};

// Every command of `kortti --help`, in its order.
const Command kCommands[] = {
    {"status", "daemon, PC/SC and PKCS#11 module status", define_status},
    {"doctor", "find what keeps the card from working, and what to do about it", define_doctor},
    {"readers", "list PC/SC readers, their cards and tokens", define_readers},
    {"tokens", "list tokens (cards) and their PIN state", define_tokens},
    {"certs", "list certificates on the cards", define_certs},
    {"identity", "who a card certificate names, its validation and Valvira record", define_identity},
    {"check", "would the policy let this professional sign? (policy.check)", define_check},
    {"professional", "a professional's record in the Valvira registry", define_professional},
    {"sign", "sign a file's digest with a card key", define_sign},
    {"prescribe", "sign an e-prescription CDA (policy check, then Kanta signature)", define_prescribe},
    {"verify", "verify a signed XML document or a CMS signature", define_verify},
    {"login", "log in to a token for this user (PIN1 session)", define_login},
    {"auth-token", "make a Web eID login token with the card's authentication key", define_auth_token},
    {"verify-token", "check a Web eID login token as a relying party would", define_verify_token},
    {"tunnels", "list the TLS upstreams and the tunnels open to them", define_tunnels},
    {"tls", "use a TLS tunnel that logs in with the card (tls connect NAME)", define_tls},
    {"scs", "the browsers' HTTPS interface: its localhost certificate (scs setup|remove)", define_scs},
    {"events", "print reader, card, token, session and PIN events as they happen", define_events},
    {"watch", "desktop notifications: card in or out, PIN about to lock, certificate expiring, stale registry",
     define_watch},
    {"logout", "end this user's session on a token", define_logout},
    {"pin", "the PIN's state; change it, or unblock it with the activation code (pin status|change|unblock)",
     define_pin},
};

}  // namespace

int main(int argc, char** argv) {
  make_output_safe();
  // The PIN it reads must not end up in a core file.
  keep_out_of_core_dumps();
  CLI::App app{"kortti - client for korttid, the Finnish healthcare smart-card daemon", "kortti"};
  app.footer(kFooter);
  app.require_subcommand(1);
  Globals g;
  app.add_option("--socket", g.socket, "korttid's socket")->option_text("PATH");
  app.add_flag("--json", g.json, "print the daemon's answer as JSON");
  app.add_option("--timeout", g.timeout_s,
                 "give up on a korttid that takes longer than this at any step (default 300; 0: wait)")
      ->option_text("SECONDS")
      ->check(CLI::Range(0U, 86400U));
  app.set_version_flag("-V,--version",
                       std::string("kortti ") + kVersion + " (protocol " + std::to_string(kProtocolVersion) + ")");
  std::vector<std::pair<CLI::App*, Runner>> commands;
  for (const Command& command : kCommands) {
    CLI::App* sub = app.add_subcommand(command.name, command.help);
    commands.emplace_back(sub, command.define(*sub));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version end here too, with 0.
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }

  const auto chosen = std::find_if(commands.begin(), commands.end(), [](const auto& c) { return bool(*c.first); });
  if (chosen == commands.end()) return kExitUsage;
  const Runner& runner = chosen->second;
  if (runner.check)
    if (auto problem = runner.check()) {
      std::cerr << *problem << "\n";
      return kExitUsage;
    }
  try {
    if (runner.standalone) return runner.standalone(g);
    const std::string socket = g.socket.empty() ? Client::default_socket() : g.socket;
    std::unique_ptr<Client> c;
    try {
      c = std::make_unique<Client>(socket, g.timeout());
    } catch (const std::system_error& e) {
      if (e.code().value() == EAGAIN)
        std::cerr << "kortti: korttid takes no new connections at " << socket
                  << " (its queue of them stayed full for --timeout): " << kStoppedOrStuck << "\n";
      else
        std::cerr << "kortti: " << e.what() << "\n";
      return kExitUnavailable;
    }
    c->call("system.hello", {{"client", "kortti"}, {"version", kVersion}});
    return runner.run(*c, g);
  } catch (const client::NoAnswer& e) {
    std::cerr << "kortti: " << e.what() << " (--timeout): " << kStoppedOrStuck << "\n";
    return kExitUnavailable;
  } catch (const RpcError& e) {
    print_error(e);
    return kExitError;
  } catch (const Json::exception& e) {
    // A member missing or of another type, in an answer of korttid's (or
    // of whatever listens on the socket) or a file given to read.
    std::cerr << "kortti: unexpected JSON: " << e.what() << "\n";
    return kExitError;
  } catch (const std::exception& e) {
    std::cerr << "kortti: " << e.what() << "\n";
    return kExitError;
  }
}
