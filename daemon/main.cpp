// korttid: the kortti daemon. See `korttid --help` and docs/.

#include <unistd.h>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "common/version.hpp"
#include "daemon/audit.hpp"
#include "daemon/config.hpp"
#include "daemon/daemon.hpp"
#include "daemon/logging.hpp"
#include "daemon/pin_memory.hpp"
#include "daemon/registry_command.hpp"
#include "daemon/user_instance.hpp"

namespace {

using namespace kortti;

constexpr int kExitConfig = 78;      // EX_CONFIG
constexpr int kExitCantCreate = 73;  // EX_CANTCREAT
constexpr const char* kDefaultConfig = "/etc/korttid/korttid.toml";

constexpr const char* kFooter = R"(
korttid reads healthcare professional smart cards over PC/SC, signs with the
card keys through the configured PKCS#11 modules, and serves client systems
(EHR and e-prescription software, the `kortti` CLI) over a local Unix socket
speaking JSON-RPC 2.0, one JSON object per line (docs/protocol.md).

CONFIGURATION
  One TOML file, by default /etc/korttid/korttid.toml. Every key has a default
  that works; the shipped file documents each one. Unknown keys and bad values
  stop the daemon at start with the file, line and key named. A missing
  default file means built-in defaults; a missing --config file is an error.
  A per-user instance reads its user's own file first (PER-USER INSTANCE).

SIGNALS
  SIGTERM, SIGINT  stop accepting, let requests in flight finish for up to
                   ipc.shutdown_grace_s, fail the rest, remove the socket it
                   bound (one from systemd stays), exit 0
  SIGHUP           reload the configuration: the keys marked "# SIGHUP" in
                   korttid.toml (log level, access rules, request timeout,
                   shutdown grace, registry age, prescription rules, TLS
                   upstreams) apply at once; korttid logs every other
                   changed key, which waits for a restart. One sent while
                   korttid starts waits until it is ready (korttid(8))

SYSTEMD
  Type=notify: READY=1 once the socket is served, STOPPING=1 at shutdown.
  With korttid.socket the listening socket comes from systemd (sd_listen_fds).
  Connections wait until the first scan of the tokens has answered (at most
  10 s), so a client that started korttid finds the cards already present.

SECURITY
  PINs are taken out of requests into locked memory, used once, and wiped;
  they never reach a log line, an error message or the command line. The
  signature PIN (PIN2) is never cached. Core dumps are disabled.)";

constexpr const char* kFooterEnd = R"(

PER-USER INSTANCE
  korttid --user-instance runs as its user, who may not write the system
  service's folders. It reads $XDG_CONFIG_HOME/korttid/korttid.toml
  (~/.config/korttid/korttid.toml) when that exists and no --config is
  given, else the system's file. Whichever it reads, ipc.socket and tunnel
  listen sockets under /run/korttid/ move to $XDG_RUNTIME_DIR/korttid/,
  and [audit] file under /var/log/korttid/ to $XDG_STATE_HOME/korttid/
  (~/.local/state/korttid/), the rest of each path kept; the log names
  each move at start, --check-config prints them, and folders made there
  are mode 0700. The registry stays: the system's cannot be read by users,
  so prescriptions are refused (registry_unreadable) unless the file names
  a registry the user can read.

EXIT STATUS
  0 stopped cleanly; 1 could not start; 73 --user-instance: a folder for a
  moved path cannot be made; 78 configuration error; registry commands: see
  REGISTRY.

FILES
  /etc/korttid/korttid.toml     configuration
  ~/.config/korttid/korttid.toml  a per-user instance's own configuration
  /run/korttid/korttid.sock     socket of the system service
  /var/lib/korttid/registry.sqlite  the Valvira registry
  /etc/korttid/trust/           trust anchors (PEM roots)

SEE ALSO
  kortti(1), docs/protocol.md, docs/configuration.md, docs/policy.md,
  docs/operations.md)";

constexpr const char* kRegistryHelp = R"(
REGISTRY
  The Valvira registry is a SQLite file ([registry] database) that korttid
  reads and these commands write. They work on the file directly, so the
  daemon need not run; a running daemon sees the new set when an import
  commits, and never half of it.

  korttid registry import FILE [--source NAME]
      replace all professionals with a JSON Lines extract, one professional
      per line (docs/policy.md). A bad line, a repeated registration number
      or an empty file rejects the whole file with its line number, and the
      previous set stays.
  korttid registry import-codes SET FILE
      replace a code set: rights, restriction_targets or medicine_classes,
      from CSV (header code,name,valid_from,valid_to) or JSON Lines.
  korttid registry status
      what is imported, from where, when, how many, and whether it is stale.

  Run as root, the command first opens FILE, then becomes the owner of the
  registry's folder (the service user), so the daemon can keep reading
  what it writes. Exit status: 0 done, 65 bad data (nothing changed),
  74 cannot use a file, 78 configuration error.)";

constexpr const char* kAuditHelp = R"(
AUDIT
  With [audit] file, every line of the audit trail carries its sequence
  number (seq) and the SHA-256 of the line before it (prev); the first line
  of a new file after logrotate names the last line of the old one. A line
  is on disk (fdatasync) before the answer it records leaves; when it cannot
  be written, the signature is refused with 1060.

  korttid audit verify [--last-known HASH] FILE...
      check the chain through the files, oldest first (audit.log.2
      audit.log.1 audit.log), and print the range of seq checked and the
      last line's hash. A change to the last lines cannot be seen from the
      files alone: keep that hash elsewhere and give it to a later verify
      as --last-known, which then fails unless some line hashes to it.
      Exit status: 0 intact, 1 a line changed or missing (the first one is
      named) or the last known hash not found, 2 intact but the chain
      starts anew after its first line (files out of order, or moved while
      korttid was stopped uncleanly) or no line at all in the files (which
      proves nothing), 74 a file cannot be read.)";

std::optional<daemon::Config> read_config(const std::string& path, bool explicit_path) {
  try {
    if (!explicit_path && access(path.c_str(), F_OK) != 0) return daemon::Config{};
    return daemon::load_config(path);
  } catch (const daemon::ConfigError& e) {
    for (const auto& p : e.problems()) std::cerr << "korttid: " << p << "\n";
    return std::nullopt;
  }
}

// What the command line asked for.
struct CommandLine {
  std::string config_path = kDefaultConfig;
  CLI::Option* config_option = nullptr;
  bool check_only = false;
  bool version = false;
  bool user_instance = false;
  CLI::App* registry = nullptr;
  CLI::App* import = nullptr;
  CLI::App* import_codes = nullptr;
  daemon::RegistryCommand registry_command;
  CLI::App* audit_verify = nullptr;
  std::vector<std::string> audit_files;
  std::optional<std::string> last_known;
};

// The options and commands, as --help shows them (the footer holds the rest).
void declare(CLI::App& app, CommandLine& c) {
  app.footer(std::string(kFooter) + kRegistryHelp + kAuditHelp + kFooterEnd);
  app.get_formatter()->column_width(28);
  c.config_option = app.add_option("-c,--config", c.config_path, "configuration file (TOML)")->option_text("PATH");
  app.add_flag("--check-config", c.check_only, "check the configuration file and exit");
  app.add_flag("-V,--version", c.version, "print the version and protocol number and exit");
  app.add_flag("--user-instance", c.user_instance,
               "this is a user's own instance (korttid-user.service): it reads ~/.config/korttid/korttid.toml "
               "when there is one, moves the system service's folders to the user's, and serves [scs] when "
               "enabled (see PER-USER INSTANCE below)");
  c.registry = app.add_subcommand("registry", "manage the Valvira registry file (see REGISTRY below)");
  c.registry->require_subcommand(1);
  c.registry->footer(kRegistryHelp);
  c.import = c.registry->add_subcommand("import", "replace the professionals with a JSON Lines extract");
  c.import->add_option("FILE", c.registry_command.file, "the extract")->required()->check(CLI::ExistingFile);
  c.import->add_option("--source", c.registry_command.source, "a name for the extract (default: the file name)");
  c.import_codes = c.registry->add_subcommand("import-codes", "replace a code set");
  c.import_codes->add_option("SET", c.registry_command.code_set, "rights, restriction_targets or medicine_classes")
      ->required()
      ->check(CLI::IsMember({"rights", "restriction_targets", "medicine_classes"}));
  c.import_codes->add_option("FILE", c.registry_command.file, "CSV or JSON Lines")
      ->required()
      ->check(CLI::ExistingFile);
  c.registry->add_subcommand("status", "what is imported, from where, when");
  auto* audit = app.add_subcommand("audit", "check the audit trail (see AUDIT below)");
  audit->require_subcommand(1);
  audit->footer(kAuditHelp);
  c.audit_verify = audit->add_subcommand("verify", "check the hash chain of audit files, oldest first");
  c.audit_verify
      ->add_option("--last-known", c.last_known,
                   "a last hash an earlier verify printed, kept elsewhere: some line must hash to it")
      ->type_name("HASH")
      ->check(
          [](const std::string& hash) {
            return daemon::is_sha256_hex(hash) ? std::string() : std::string("a SHA-256 in 64 lowercase hex digits");
          },
          "SHA-256");
  c.audit_verify->add_option("FILE", c.audit_files, "audit files, oldest first")->required()->check(CLI::ExistingFile);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"korttid - smart-card signing daemon for Finnish healthcare professional cards", "korttid"};
  CommandLine c;
  declare(app, c);
  CLI11_PARSE(app, argc, argv);

  if (c.version) {
    std::cout << "korttid " << kVersion << " (protocol " << kProtocolVersion << ")\n";
    return 0;
  }
  if (*c.audit_verify) return daemon::verify_audit_files(c.audit_files, c.last_known);
  daemon::Invocation how{c.config_path, c.config_option->count() > 0, c.user_instance};
  // A user's own file, when there is one, before the system's.
  if (how.user_instance && !how.explicit_path && ::access(daemon::user_config_file().c_str(), F_OK) == 0)
    how.config_path = daemon::user_config_file();
  auto loaded = read_config(how.config_path, how.explicit_path);
  if (!loaded) return kExitConfig;
  daemon::Config config = std::move(*loaded);
  const auto moved = how.user_instance ? daemon::move_to_user_folders(config) : std::vector<daemon::MovedPath>{};
  if (*c.registry) {
    c.registry_command.kind = *c.import         ? daemon::RegistryCommand::Kind::import_professionals
                              : *c.import_codes ? daemon::RegistryCommand::Kind::import_codes
                                                : daemon::RegistryCommand::Kind::status;
    return daemon::run_registry_command(config, c.registry_command);
  }
  if (c.check_only) {
    std::cout << "korttid: configuration OK: " << (config.path.empty() ? "(built-in defaults)" : config.path) << "\n";
    for (const auto& m : moved)
      std::cout << "korttid: per-user instance: " << m.key << " " << m.from << " -> " << m.to << "\n";
    return 0;
  }

  daemon::hold_reloads();
  daemon::harden_process();
  daemon::setup_logging(config.log);
  (void)daemon::make_pin_memory(config.ipc.max_connections * config.ipc.max_pin_requests_per_uid);
  spdlog::info("korttid {} starting (config: {})", kVersion, config.path.empty() ? "built-in defaults" : config.path);
  for (const auto& m : moved)
    spdlog::info("per-user instance: {} is {}, not the system service's {}", m.key, m.to, m.from);
  try {
    daemon::make_user_folders(moved);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return kExitCantCreate;
  }
  return daemon::run_daemon(config, how);
}
