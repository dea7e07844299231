// korttid: the kortti daemon. See `korttid --help` and docs/.

#include <grp.h>
#include <systemd/sd-daemon.h>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <cstdlib>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <iostream>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "common/secret.hpp"
#include "common/version.hpp"
#include "common/worker.hpp"
#include "daemon/audit.hpp"
#include "daemon/config.hpp"
#include "daemon/config_schema.hpp"
#include "daemon/logging.hpp"
#include "daemon/registry_command.hpp"
#include "daemon/wiring.hpp"
#include "ipc/ipc.hpp"
#include "pcsc/pcsc.hpp"
#include "pinentry/pinentry.hpp"
#include "pkcs11/pkcs11.hpp"
#include "policy/policy.hpp"
#include "scs/scs.hpp"
#include "service/service.hpp"
#include "signature/signature.hpp"
#include "tls/tls.hpp"

namespace {

using namespace kortti;
namespace asio = boost::asio;

constexpr int kExitConfig = 78;  // EX_CONFIG
constexpr const char* kDefaultConfig = "/etc/korttid/korttid.toml";
constexpr auto kFirstScanPatience = std::chrono::seconds(10);
// How long a failed start or a settled stop waits for worker threads to end.
constexpr auto kThreadsEndPatience = std::chrono::seconds(2);

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

SIGNALS
  SIGTERM, SIGINT  stop accepting, let requests in flight finish for up to
                   ipc.shutdown_grace_s, fail the rest, remove the socket it
                   bound (one from systemd stays), exit 0
  SIGHUP           reload the configuration: the keys marked "# SIGHUP" in
                   korttid.toml (log level, access rules, request timeout,
                   shutdown grace, registry age and prescription rules) apply
                   at once; korttid logs every other changed key, which waits
                   for a restart

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

EXIT STATUS
  0 stopped cleanly; 1 could not start; 78 configuration error;
  registry commands: see REGISTRY.

FILES
  /etc/korttid/korttid.toml     configuration
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

ipc::AccessPolicy access_policy(const daemon::Config& config) {
  ipc::AccessPolicy policy;
  policy.set(ipc::MethodGroup::read, config.access.read);
  policy.set(ipc::MethodGroup::session, config.access.session);
  policy.set(ipc::MethodGroup::sign, config.access.sign);
  policy.set(ipc::MethodGroup::admin, config.access.admin);
  return policy;
}

std::optional<daemon::Config> read_config(const std::string& path, bool explicit_path) {
  try {
    if (!explicit_path && access(path.c_str(), F_OK) != 0) return daemon::Config{};
    return daemon::load_config(path);
  } catch (const daemon::ConfigError& e) {
    for (const auto& p : e.problems()) std::cerr << "korttid: " << p << "\n";
    return std::nullopt;
  }
}

void reload(const std::string& path, bool explicit_path, daemon::Config& current, ipc::Server& server,
            policy::PolicyService& policy, tls::Tunnels& tunnels, std::optional<gid_t> group) {
  sd_notify(0, "RELOADING=1");
  spdlog::info("SIGHUP: reloading {}", path);
  try {
    daemon::Config next =
        explicit_path || access(path.c_str(), F_OK) == 0 ? daemon::load_config(path) : daemon::Config{};
    daemon::set_log_level(next.log.level);
    server.set_access(access_policy(next));
    server.set_request_timeout(next.ipc.request_timeout);
    policy.set_rules(next.rules);
    tunnels.reconfigure(daemon::tls_options(next, group).upstreams);
    // The schema says which keys a reload applies; name every other one
    // that changed, so an admin is not left believing it took effect.
    std::string waiting;
    for (const auto& row : daemon::config_schema())
      if (row.reload == daemon::Reload::restart && !row.in_array && row.get && row.get(next) != row.get(current))
        waiting += (waiting.empty() ? "" : ", ") + row.name();
    if (!waiting.empty()) spdlog::warn("these changes take effect at the next restart: {}", waiting);
    current = std::move(next);
    spdlog::info("configuration reloaded");
  } catch (const daemon::ConfigError& e) {
    for (const auto& p : e.problems()) spdlog::error("reload refused: {}", p);
  }
  sd_notify(0, "READY=1");
}

// Handlers answer their own errors; one that escapes is a bug. It costs the
// request it belonged to (which then meets its deadline), never the daemon,
// the sessions it holds or the other clients.
void run_until_stopped(asio::io_context& io) {
  for (;;) {
    try {
      io.run();
      return;
    } catch (const std::exception& e) {
      (void)internal_error("the io thread", e.what());
    } catch (...) {
      (void)internal_error("the io thread", "an exception of unknown type");
    }
  }
}

// Exit-time cleanup (OpenSSL's atexit handler, the PKCS#11 modules', static
// destructors) frees what a thread that is still running may use: a worker
// stuck in a card, network or document call, or one that is just ending
// after a failed start. Without it, the process ends at once. Audit lines
// are already on disk; only the logs need flushing.
[[noreturn]] void end_without_cleanup(int code) {
  spdlog::warn("a worker is still inside a call; korttid exits without exit-time cleanup");
  spdlog::default_logger()->flush();
  std::_Exit(code);
}

int leave(int code) {
  if (!Worker::all_ended(kThreadsEndPatience)) end_without_cleanup(code);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"korttid - smart-card signing daemon for Finnish healthcare professional cards", "korttid"};
  app.footer(std::string(kFooter) + kRegistryHelp + kAuditHelp + kFooterEnd);
  app.get_formatter()->column_width(28);
  std::string config_path = kDefaultConfig;
  bool check_only = false;
  bool version = false;
  bool user_instance = false;
  auto* config_opt = app.add_option("-c,--config", config_path, "configuration file (TOML)")->option_text("PATH");
  app.add_flag("--check-config", check_only, "check the configuration file and exit");
  app.add_flag("-V,--version", version, "print the version and protocol number and exit");
  app.add_flag("--user-instance", user_instance,
               "this is a user's own instance (korttid-user.service): it serves [scs] when enabled");
  daemon::RegistryCommand registry_command;
  auto* registry = app.add_subcommand("registry", "manage the Valvira registry file (see REGISTRY below)");
  registry->require_subcommand(1);
  registry->footer(kRegistryHelp);
  auto* import = registry->add_subcommand("import", "replace the professionals with a JSON Lines extract");
  import->add_option("FILE", registry_command.file, "the extract")->required()->check(CLI::ExistingFile);
  import->add_option("--source", registry_command.source, "a name for the extract (default: the file name)");
  auto* import_codes = registry->add_subcommand("import-codes", "replace a code set");
  import_codes->add_option("SET", registry_command.code_set, "rights, restriction_targets or medicine_classes")
      ->required()
      ->check(CLI::IsMember({"rights", "restriction_targets", "medicine_classes"}));
  import_codes->add_option("FILE", registry_command.file, "CSV or JSON Lines")->required()->check(CLI::ExistingFile);
  auto* registry_status = registry->add_subcommand("status", "what is imported, from where, when");
  auto* audit_command = app.add_subcommand("audit", "check the audit trail (see AUDIT below)");
  audit_command->require_subcommand(1);
  audit_command->footer(kAuditHelp);
  std::vector<std::string> audit_files;
  auto* audit_verify = audit_command->add_subcommand("verify", "check the hash chain of audit files, oldest first");
  std::optional<std::string> last_known;
  audit_verify
      ->add_option("--last-known", last_known,
                   "a last hash an earlier verify printed, kept elsewhere: some line must hash to it")
      ->type_name("HASH")
      ->check(
          [](const std::string& hash) {
            return daemon::is_sha256_hex(hash) ? std::string() : std::string("a SHA-256 in 64 lowercase hex digits");
          },
          "SHA-256");
  audit_verify->add_option("FILE", audit_files, "audit files, oldest first")->required()->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);

  if (version) {
    std::cout << "korttid " << kVersion << " (protocol " << kProtocolVersion << ")\n";
    return 0;
  }
  if (*audit_verify) return daemon::verify_audit_files(audit_files, last_known);
  const bool explicit_path = config_opt->count() > 0;
  auto loaded = read_config(config_path, explicit_path);
  if (!loaded) return kExitConfig;
  daemon::Config config = std::move(*loaded);
  if (*registry) {
    registry_command.kind = *import         ? daemon::RegistryCommand::Kind::import_professionals
                            : *import_codes ? daemon::RegistryCommand::Kind::import_codes
                                            : daemon::RegistryCommand::Kind::status;
    (void)registry_status;
    return daemon::run_registry_command(config, registry_command);
  }
  if (check_only) {
    std::cout << "korttid: configuration OK: " << (config.path.empty() ? "(built-in defaults)" : config.path) << "\n";
    return 0;
  }

  daemon::harden_process();
  daemon::setup_logging(config.log);
  // 1 MiB holds some 8,000 PINs (128-byte blocks); requests with a PIN are
  // also capped per uid (ipc.max_pin_requests_per_uid). 64 KiB is the old
  // default RLIMIT_MEMLOCK: the fallback.
  if (!init_secure_heap(1024 * 1024) && !init_secure_heap(64 * 1024))
    spdlog::warn("cannot lock memory for PINs (RLIMIT_MEMLOCK); they are still wiped after use");
  spdlog::info("korttid {} starting (config: {})", kVersion, config.path.empty() ? "built-in defaults" : config.path);

  int status = 0;
  // Outlives the components and the wait for their threads: a job that ends
  // during that wait still has an executor to post its result to.
  asio::io_context io(1);
  try {
    pkcs11::Options token_options;
    token_options.modules = config.pkcs11.modules;
    token_options.session_lifetime = config.session.lifetime;
    token_options.session_idle = config.session.idle_timeout;
    token_options.unblock_style = config.pkcs11.unblock_style;
    pkcs11::TokenService tokens(io, token_options);
    daemon::AuditLog audit(config.audit.file);
    std::optional<pcsc::Monitor> monitor;
    if (config.pcsc.enabled) {
      monitor.emplace(io, daemon::monitor_options(config.pcsc));
      daemon::connect_pcsc(*monitor, tokens);
    }

    ipc::ServerOptions server_options;
    server_options.max_message_bytes = config.ipc.max_message_bytes;
    server_options.max_connections = config.ipc.max_connections;
    server_options.max_connections_per_uid = config.ipc.max_connections_per_uid;
    server_options.idle_timeout = config.ipc.idle_timeout;
    server_options.max_inflight_per_connection = config.ipc.max_inflight_per_connection;
    server_options.max_pin_requests_per_uid = config.ipc.max_pin_requests_per_uid;
    server_options.request_timeout = config.ipc.request_timeout;
    server_options.access = access_policy(config);
    policy::Options policy_options{config.identity, config.trust, config.revocation, config.registry_database,
                                   config.rules};
    policy::PolicyService policy(io, policy_options);
    signature::DocumentService documents(io, config.signature);
    pinentry::PinEntry pin_dialogs(io, pinentry::Options{config.pin.pinentry, config.pin.tty, config.pin.timeout});
    service::Options service_options{config.batch.max_items, config.batch.max_time,
                                     service::PinOptions{config.pin.prompt_attempts, config.pin.client_may_send,
                                                         config.pin.client_may_send_authentication}};
    service::Service operations(service::Services{&tokens, &audit, &policy, &documents, &pin_dialogs}, service_options);
    std::optional<gid_t> group;
    if (!config.ipc.socket_group.empty()) group = getgrnam(config.ipc.socket_group.c_str())->gr_gid;
    tls::Tunnels tunnels(io, operations, daemon::tls_options(config, group));
    std::optional<scs::Listener> browsers;
    std::string browsers_error;  // why they are not served, when they are not
    ipc::Server server(io, server_options,
                       ipc::Services{&operations, &tokens, monitor ? &*monitor : nullptr, &policy, true,
                                     config.tls.enabled ? &tunnels : nullptr,
                                     // [scs] as the listener was started: its keys take a restart.
                                     [scs = config.scs, user_instance, &browsers, &browsers_error] {
                                       return daemon::scs_status(scs, user_instance, browsers.has_value(),
                                                                 browsers_error);
                                     }});

    if (sd_listen_fds(1) >= 1)
      server.adopt(SD_LISTEN_FDS_START);
    else
      server.listen(config.ipc.socket, config.ipc.socket_mode, group);
    tunnels.start();
    if (config.scs.enabled && user_instance) {
      browsers.emplace(io, operations, daemon::scs_options(config), ::getuid());
      // Browsers go without; the socket's clients need not.
      try {
        browsers->start();
      } catch (const scs::StartError& e) {
        spdlog::error("{}; the SCS interface is not served", e.what());
        browsers_error = e.what();
        browsers.reset();  // nor half-served: a listener already bound closes
      }
    } else if (config.scs.enabled) {
      spdlog::warn("[scs] is enabled, but only a per-user instance (korttid --user-instance) serves it");
    }

    asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
    bool stopping = false;
    bool settled = true;  // every worker thread ended before korttid does
    std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& ec,
                                                                               int signo) {
      if (ec) return;
      if (signo == SIGHUP) {
        reload(config_path, explicit_path, config, server, policy, tunnels, group);
      } else if (!stopping) {
        stopping = true;
        spdlog::info("signal {}: stopping", signo == SIGTERM ? "SIGTERM" : "SIGINT");
        sd_notify(0, "STOPPING=1");
        // The browsers' requests under way get the socket's grace too.
        if (browsers) browsers->stop_accepting();
        const auto grace = std::chrono::duration_cast<std::chrono::milliseconds>(config.ipc.shutdown_grace);
        const auto browsers_busy = [&] { return browsers && browsers->requests_in_progress() > 0; };
        server.stop(
            grace,
            [&] {
              if (browsers) browsers->stop();
              // Each component gets a bounded wait for its threads; a check
              // still waiting on a slow responder is not waited out.
              settled = tunnels.stop(std::chrono::milliseconds(1000));
              settled = tokens.shutdown(std::chrono::milliseconds(2000)) && settled;
              settled = policy.stop(std::chrono::milliseconds(1000)) && settled;
              settled = documents.stop(std::chrono::milliseconds(1000)) && settled;
              settled = audit.stop(std::chrono::milliseconds(1000)) && settled;
              signals.cancel();
              io.stop();
            },
            browsers_busy);
      }
      signals.async_wait(on_signal);
    };
    signals.async_wait(on_signal);

    // Requests wait in the socket's backlog until the first token scan has
    // answered, so a `cert_id` of a card that was present at start is found.
    // A module that never answers its scan must not keep everyone out.
    asio::steady_timer first_scan(io, kFirstScanPatience);
    first_scan.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      spdlog::warn("the first token scan is still running after {} s; serving without it",
                   std::chrono::duration_cast<std::chrono::seconds>(kFirstScanPatience).count());
      server.serve();
    });
    if (monitor) monitor->start();
    tokens.start([&](Result<Unit>) {
      first_scan.cancel();
      server.serve();
      sd_notify(0, "READY=1\nSTATUS=serving");
      spdlog::info("ready: {} token(s) present", tokens.tokens().size());
    });
    run_until_stopped(io);
    spdlog::info("korttid stopped");
    // A thread still inside a call: the components are not destroyed under it.
    if (!settled) end_without_cleanup(0);
  } catch (const std::exception& e) {
    spdlog::critical("cannot start: {}", e.what());
    status = 1;
  }
  return leave(status);
}
