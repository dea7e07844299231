#pragma once

// Internal to client/ (docs/architecture.md, Layering); include client/client.hpp.
#if !defined(KORTTI_COMPONENT_CLIENT) && !defined(KORTTI_WHITE_BOX)
#error "client/commands.hpp is internal to client/; include client/client.hpp"
#endif

// The `kortti` commands, one define_* per command of main.cpp's table, and
// what more than one command file needs.

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/client.hpp"
#include "common/bytes.hpp"
#include "common/json.hpp"

namespace kortti::cli {

constexpr int kExitDenied = 3;  // `kortti check`: the policy says no

struct Globals {
  std::string socket;
  bool json = false;
  // --timeout: how long kortti waits on korttid at each step, in seconds;
  // 0 waits as long as it takes. Above korttid's own request deadline (120 s
  // by default), so it ends only a korttid that cannot answer.
  unsigned timeout_s = 300;

  [[nodiscard]] client::Client::Timeout timeout() const {
    return timeout_s == 0 ? client::Client::kForever : client::Client::Timeout(std::int64_t{timeout_s} * 1000);
  }
};

// Runs a parsed command against korttid. `check` (optional) refuses a
// combination of options CLI11 cannot express, before korttid is contacted.
// `standalone` (instead of run): the command connects by itself, so it can
// explain a failure to connect (kortti doctor).
struct Runner {
  std::function<int(client::Client&, const Globals&)> run;
  std::function<std::optional<std::string>()> check;
  std::function<int(const Globals&)> standalone = {};
};
using Define = Runner (*)(CLI::App& cmd);

// commands_inventory.cpp
Runner define_status(CLI::App& cmd);
Runner define_readers(CLI::App& cmd);
Runner define_tokens(CLI::App& cmd);
Runner define_certs(CLI::App& cmd);
// commands_policy.cpp
Runner define_identity(CLI::App& cmd);
Runner define_check(CLI::App& cmd);
Runner define_professional(CLI::App& cmd);
// commands_sign.cpp
Runner define_sign(CLI::App& cmd);
Runner define_prescribe(CLI::App& cmd);
// commands_verify.cpp
Runner define_verify(CLI::App& cmd);
// commands_auth.cpp
Runner define_auth_token(CLI::App& cmd);
Runner define_verify_token(CLI::App& cmd);
// commands_tls.cpp
Runner define_tunnels(CLI::App& cmd);
Runner define_tls(CLI::App& cmd);
// commands_session.cpp
Runner define_login(CLI::App& cmd);
Runner define_logout(CLI::App& cmd);
// commands_pin.cpp
Runner define_pin(CLI::App& cmd);
// commands_watch.cpp
Runner define_watch(CLI::App& cmd);
// commands_events.cpp
Runner define_events(CLI::App& cmd);
// commands_doctor.cpp
Runner define_doctor(CLI::App& cmd);
// commands_scs.cpp
Runner define_scs(CLI::App& cmd);
// Where kortti scs setup puts the SCS listener's files by default, and
// korttid's [scs] certificate and key point: $XDG_DATA_HOME/kortti/scs.
std::string scs_default_dir();

// --- shared by the command files (commands.cpp) ---

// How the user proves presence: --pin-fd, --pinpad, or a prompt when needed.
struct PinOptions {
  int pin_fd = -1;
  bool pinpad = false;
  bool pin_prompt = false;
  bool final_try = false;

  void add_to(CLI::App* cmd);
  // Adds pin/pinpad to params if given up front; returns whether it did.
  bool apply(Json& params) const;
};

// Calls `method`; when the daemon says a PIN is needed and none was given,
// asks for it once on the terminal and tries again.
// `attach`: a params member to send as an attachment (documents).
Json call_with_pin(client::Client& c, const std::string& method, Json params, const PinOptions& pin,
                   const std::string& what, std::string_view attach = {});

// The caller's login name, or "uid N" when it has none.
std::string user_name();
std::string text(const Json& j, const char* key);
// text(), for a member the answer must have: throws when it is missing or
// not a string (nothing half-made gets written).
std::string required_text(const Json& j, const char* key);
// "3 tries left", "locked", ... of a token's user PIN (tokens.list, pin.status).
std::string pin_state(const Json& token);
void print_json(const Json& j);
Bytes read_file(const std::string& path);
// One "label  value" line per present value.
void field(const char* label, const std::string& value);
std::string registry_summary(const Json& r);
void print_validation(const Json& v);
void print_reasons(const char* title, const Json& list);
void print_error(const client::RpcError& e);

// card_conditions.cpp: what is wrong with the cards now that their user
// should hear of: a PIN locked or with one try left, a certificate that
// expires within expiry_days, a stale registry extract. kortti watch shows
// each as a notification, kortti doctor as a finding.
struct Condition {
  std::string key;  // the same condition is shown once while it lasts; empty: an event, shown every time
  std::string summary;
  std::string body;
  bool urgent = false;    // the card cannot be used (locked, expired) or will not be after one mistake
  bool blocking = false;  // the card cannot be used for this until it is mended (locked, expired)
  std::string hint = {};  // what to do about it
};
// What an admin does about a missing or stale registry extract.
inline constexpr const char* kRegistryImportHint = "korttid registry import FILE (korttid(8))";
// From the answers of tokens.list, certificates.list and system.status.
std::vector<Condition> card_conditions(const Json& tokens, const Json& certificates, const Json& status,
                                       int expiry_days);
// Asks korttid for those answers first.
std::vector<Condition> card_conditions(client::Client& c, int expiry_days);

}  // namespace kortti::cli
