#include "daemon/daemon.hpp"

#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <optional>

#include "common/error.hpp"
#include "common/worker.hpp"
#include "daemon/audit.hpp"
#include "daemon/config_schema.hpp"
#include "daemon/logging.hpp"
#include "daemon/user_instance.hpp"
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

namespace kortti::daemon {

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr auto kFirstScanPatience = std::chrono::seconds(10);
// How long a failed start or a settled stop waits for worker threads to end.
constexpr auto kThreadsEndPatience = std::chrono::seconds(2);

// The socket's group (checked to exist when the configuration was loaded).
std::optional<gid_t> socket_group(const Config& config) {
  if (config.ipc.socket_group.empty()) return std::nullopt;
  const group* found = ::getgrnam(config.ipc.socket_group.c_str());
  if (found == nullptr) throw std::runtime_error("no group '" + config.ipc.socket_group + "' ([ipc] socket_group)");
  return found->gr_gid;
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

// The components, as members in the order they are made: each is destroyed
// after those that use it.
class Korttid {
 public:
  Korttid(asio::io_context& io, asio::signal_set& signals, Config& config, const Invocation& how)
      : io_(io),
        signals_(signals),
        config_(config),
        started_(config),
        how_(how),
        tokens_(io, token_options(config)),
        audit_(config.audit.file),
        monitor_(config.pcsc.enabled ? std::make_unique<pcsc::Monitor>(io, monitor_options(config.pcsc)) : nullptr),
        policy_(io, policy::Options{config.identity, config.trust, config.revocation, config.registry_database,
                                    config.rules}),
        documents_(io, config.signature),
        pin_dialogs_(io, pinentry::Options{config.pin.pinentry, config.pin.tty, config.pin.timeout}),
        operations_(service::Services{&tokens_, &audit_, &policy_, &documents_, &pin_dialogs_},
                    service_options(config)),
        group_(socket_group(config)),
        tunnels_(io, operations_, tls_options(config, group_)),
        server_(io, server_options(config),
                ipc::Services{&operations_, &tokens_, monitor_.get(), &policy_, true,
                              config.tls.enabled ? &tunnels_ : nullptr,
                              // [scs] as the listener was started: its keys take a restart.
                              [this, scs = config.scs] {
                                return scs_status(scs, how_.user_instance, browsers_.has_value(), browsers_error_);
                              }}),
        first_scan_(io, kFirstScanPatience) {
    if (monitor_) connect_pcsc(*monitor_, tokens_);
  }

  // Listens, serves browsers and tunnels, and scans the tokens; requests
  // wait in the socket's backlog until that first scan has answered, so a
  // `cert_id` of a card present at start is found.
  void start() {
    if (sd_listen_fds(1) < 1)
      server_.listen(config_.ipc.socket, config_.ipc.socket_mode, group_);
    else if (how_.user_instance)
      // A user's own instance has its socket unit's 0600 whatever the
      // configuration it shares with the system says: nothing to warn of.
      server_.adopt(SD_LISTEN_FDS_START, std::nullopt, std::nullopt);
    else
      server_.adopt(SD_LISTEN_FDS_START, config_.ipc.socket_mode, group_);
    tunnels_.start();
    start_browsers();
    wait_for_signal();
    // A module that never answers its scan must not keep everyone out.
    first_scan_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      spdlog::warn("the first token scan is still running after {} s; serving without it",
                   std::chrono::duration_cast<std::chrono::seconds>(kFirstScanPatience).count());
      server_.serve();
    });
    if (monitor_) monitor_->start();
    tokens_.start([this](Result<Unit>) {
      first_scan_.cancel();
      server_.serve();
      sd_notify(0, "READY=1\nSTATUS=serving");
      spdlog::info("ready: {} token(s) present", tokens_.tokens().size());
      ready_ = true;
      if (std::exchange(reload_waiting_, false)) reload();
    });
  }

  // Whether every worker thread ended before korttid does.
  [[nodiscard]] bool settled() const noexcept { return settled_; }

 private:
  void start_browsers() {
    if (config_.scs.enabled && !how_.user_instance) {
      spdlog::warn("[scs] is enabled, but only a per-user instance (korttid --user-instance) serves it");
      return;
    }
    if (!config_.scs.enabled) return;
    browsers_.emplace(io_, operations_, scs_options(config_), ::getuid());
    // Browsers go without; the socket's clients need not.
    try {
      browsers_->start();
    } catch (const scs::StartError& e) {
      spdlog::error("{}; the SCS interface is not served", e.what());
      browsers_error_ = e.what();
      browsers_.reset();  // nor half-served: a listener already bound closes
    }
  }

  void wait_for_signal() {
    signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
      if (ec) return;
      // Armed again first: whatever the handling throws, the next SIGTERM
      // or SIGHUP is still heard (stop() cancels the wait).
      wait_for_signal();
      if (signo == SIGHUP) {
        // One asked for while korttid starts waits until it is ready: the
        // reload's READY=1 would tell systemd it serves before it does.
        if (ready_)
          reload();
        else
          reload_waiting_ = true;
      } else if (!stopping_)
        stop(signo);
    });
  }

  void reload() {
    sd_notify(0, "RELOADING=1");
    spdlog::info("SIGHUP: reloading {}", how_.config_path);
    try {
      Config next = how_.explicit_path || ::access(how_.config_path.c_str(), F_OK) == 0 ? load_config(how_.config_path)
                                                                                        : Config{};
      if (how_.user_instance) make_user_folders(move_to_user_folders(next));
      // Everything made from the file before any of it is applied: a
      // failure here (a user or group name the name service no longer
      // resolves) leaves the running configuration whole.
      auto access = access_policy(next);
      auto upstreams = tls_options(next, group_).upstreams;
      set_log_level(next.log.level);
      server_.set_access(std::move(access));
      server_.set_request_timeout(next.ipc.request_timeout);
      policy_.set_rules(next.rules);
      tunnels_.reconfigure(std::move(upstreams));
      // The schema says which keys a reload applies; name every other one
      // that differs from what runs (the file at start), at every reload
      // until the restart, so an admin is not left believing it took effect.
      std::string waiting;
      for (const auto& key : changed_keys(started_, next, Reload::restart))
        waiting += (waiting.empty() ? "" : ", ") + key;
      if (!waiting.empty()) spdlog::warn("these changes take effect at the next restart: {}", waiting);
      config_ = std::move(next);
      spdlog::info("configuration reloaded");
    } catch (const ConfigError& e) {
      for (const auto& p : e.problems()) spdlog::error("reload refused: {}", p);
    } catch (const std::exception& e) {
      spdlog::error("reload failed: {}; the configuration korttid runs with is unchanged", e.what());
    }
    sd_notify(0, "READY=1");
  }

  // Stops accepting, lets requests in flight finish within the grace, then
  // gives each component a bounded wait for its threads: a check still
  // waiting on a slow responder is not waited out.
  void stop(int signo) {
    stopping_ = true;
    spdlog::info("signal {}: stopping", signo == SIGTERM ? "SIGTERM" : "SIGINT");
    // The browsers' requests under way get the socket's grace too, and the
    // tunnels open carry on through it; neither takes new ones.
    if (browsers_) browsers_->stop_accepting();
    tunnels_.stop_accepting();
    sd_notify(0, "STOPPING=1");
    const auto grace = std::chrono::duration_cast<std::chrono::milliseconds>(config_.ipc.shutdown_grace);
    server_.stop(
        grace,
        [this] {
          if (browsers_) browsers_->stop();
          settled_ = tunnels_.stop(1000ms);
          settled_ = tokens_.shutdown(2000ms) && settled_;
          settled_ = policy_.stop(1000ms) && settled_;
          settled_ = documents_.stop(1000ms) && settled_;
          operations_.stop();
          settled_ = audit_.stop(1000ms) && settled_;
          signals_.cancel();
          io_.stop();
        },
        [this] { return browsers_ && browsers_->requests_in_progress() > 0; });
  }

  asio::io_context& io_;
  asio::signal_set& signals_;
  Config& config_;        // the file as last read
  const Config started_;  // as korttid started: what runs of the keys a reload does not apply
  const Invocation how_;
  pkcs11::TokenService tokens_;
  AuditLog audit_;
  std::unique_ptr<pcsc::Monitor> monitor_;  // null when [pcsc] enabled = false
  policy::PolicyService policy_;
  signature::DocumentService documents_;
  pinentry::PinEntry pin_dialogs_;
  service::Service operations_;
  std::optional<gid_t> group_;
  tls::Tunnels tunnels_;
  std::optional<scs::Listener> browsers_;
  std::string browsers_error_;  // why they are not served, when they are not
  ipc::Server server_;
  asio::steady_timer first_scan_;
  bool stopping_ = false;
  bool ready_ = false;           // READY=1 sent
  bool reload_waiting_ = false;  // a SIGHUP came before it was
  bool settled_ = true;
};

// Once korttid no longer serves (or failed to start), a second SIGTERM or
// SIGINT ends a shutdown that hangs: their default action again. SIGHUP
// stays taken, and ignored.
class StopSignalsEndAtOnce {
 public:
  explicit StopSignalsEndAtOnce(asio::signal_set& signals) : signals_(signals) {}
  StopSignalsEndAtOnce(const StopSignalsEndAtOnce&) = delete;
  StopSignalsEndAtOnce& operator=(const StopSignalsEndAtOnce&) = delete;
  ~StopSignalsEndAtOnce() {
    boost::system::error_code ignored;
    signals_.remove(SIGTERM, ignored);
    signals_.remove(SIGINT, ignored);
  }

 private:
  asio::signal_set& signals_;
};

}  // namespace

namespace {

// SIG_BLOCK or SIG_UNBLOCK `signals` in the calling thread.
void mask(int how, std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (const int signo : signals) sigaddset(&set, signo);
  pthread_sigmask(how, &set, nullptr);
}

}  // namespace

void hold_reloads() { mask(SIG_BLOCK, {SIGHUP}); }

int run_daemon(Config& config, const Invocation& how) {
  int status = 0;
  // Outlives the components and the wait for their threads: a job that ends
  // during that wait still has an executor to post its result to.
  asio::io_context io(1);
  // The signals korttid acts on, heard from before the components are made
  // until after their threads end: none meets its default action (for
  // SIGHUP, the end of the process) while korttid runs. Each may have been
  // blocked until now, by hold_reloads() or by the mask a parent passed
  // down; one sent meanwhile is taken now, and acted on once korttid is
  // ready.
  asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  mask(SIG_UNBLOCK, {SIGTERM, SIGINT, SIGHUP});
  try {
    Korttid korttid(io, signals, config, how);
    const StopSignalsEndAtOnce after_serving(signals);
    korttid.start();
    run_until_stopped(io);
    spdlog::info("korttid stopped");
    // A thread still inside a call: the components are not destroyed under it.
    if (!korttid.settled()) end_without_cleanup(0);
  } catch (const std::exception& e) {
    spdlog::critical("cannot start: {}", e.what());
    status = 1;
  }
  if (!Worker::all_ended(kThreadsEndPatience)) end_without_cleanup(status);
  return status;
}

}  // namespace kortti::daemon
