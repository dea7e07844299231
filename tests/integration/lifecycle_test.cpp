// The daemon as admins run it: config checking, readiness, signals, the
// socket file, socket activation, module failures.

#include <gtest/gtest-spi.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "tests/integration/softhsm_fixture.hpp"

namespace kortti::test {
namespace {

using Lifecycle = SoftHsmDaemonTest;

TEST_F(Lifecycle, SigtermStopsCleanlyAndRemovesTheSocket) {
  ASSERT_TRUE(fs::exists(daemon_->socket()));
  struct stat st {};
  ASSERT_EQ(::stat(daemon_->socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666U);  // as configured by the test
  EXPECT_EQ(daemon_->stop(SIGTERM), 0);
  EXPECT_FALSE(fs::exists(daemon_->socket()));
  EXPECT_NE(daemon_->log().find("korttid stopped"), std::string::npos);
}

// With CAP_IPC_LOCK (root, as CI runs) or under Linux's default
// RLIMIT_MEMLOCK of 8 MiB, the kernel locks what korttid asks for, so the
// size is the limits'. The fallback under a lower limit is pinned down in
// tests/unit/pin_memory_test.cpp.
TEST_F(Lifecycle, ItLocksMemoryForThePinsItsLimitsLetRunAtOnce) {
  rlimit memlock{};
  ASSERT_EQ(::getrlimit(RLIMIT_MEMLOCK, &memlock), 0);
  std::uint64_t caps = 0;
  std::istringstream status(read_file("/proc/self/status"));
  for (std::string line; std::getline(status, line);)
    if (line.rfind("CapEff:", 0) == 0) caps = std::stoull(line.substr(7), nullptr, 16);
  constexpr std::uint64_t kCapIpcLock = std::uint64_t{1} << 14;
  if ((caps & kCapIpcLock) == 0 && memlock.rlim_cur < 8 * 1024 * 1024)
    GTEST_SKIP() << "no CAP_IPC_LOCK and RLIMIT_MEMLOCK below 8 MiB: korttid would rightly lock less";
  EXPECT_NE(daemon_->log().find("PIN memory: 1024 KiB locked, for 256 requests with PINs at once"), std::string::npos)
      << daemon_->log();
  DaemonOptions o;
  o.ipc = "max_connections = 1024\nmax_pin_requests_per_uid = 8\n";
  start(std::move(o));
  // 8,192 requests x three 128-byte blocks, twice over: 6 MiB, so 8.
  EXPECT_NE(daemon_->log().find("PIN memory: 8192 KiB locked, for 8192 requests with PINs at once"), std::string::npos)
      << daemon_->log();
}

TEST_F(Lifecycle, SigtermLetsRequestsInFlightFinish) {
  auto c = daemon_->connect();
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 10; ++i)
    ids.push_back(c->send("sign.digest", {{"cert_id", wstr(ec_sign_cert())},
                                          {"digest_algorithm", "sha384"},
                                          {"digest", wstr(base64_encode(random_bytes(48)))},
                                          {"pin", kPin}}));
  daemon_->signal(SIGTERM);
  int answered = 0;
  for (auto id : ids) {
    try {
      c->wait_for(id, std::chrono::seconds(20));
      ++answered;
    } catch (const client::RpcError& e) {
      EXPECT_EQ(e.reason(), "service_unavailable");  // only if the grace ran out
    }
  }
  EXPECT_GT(answered, 0);
  EXPECT_EQ(daemon_->stop(SIGTERM), 0);
  // Every thread ended and every component was taken down in order.
  EXPECT_EQ(daemon_->log().find("without exit-time cleanup"), std::string::npos) << daemon_->log();
}

TEST_F(Lifecycle, NotifiesStoppingOnSigterm) {
  daemon_->signal(SIGTERM);
  EXPECT_TRUE(daemon_->wait_notify("STOPPING=1", std::chrono::seconds(10)));
}

// A module stuck in C_Finalize (OpenSC, disconnecting a card that pcscd is
// still removing) must not keep korttid from stopping.
TEST_F(Lifecycle, AModuleHangingInFinalizeDelaysTheStopByItsBoundOnly) {
  start(shim_options("KORTTI_SHIM_FINALIZE_HANG_S", "60"));
  auto c = daemon_->connect();
  EXPECT_NO_THROW(sign_digest(*c, ec_sign_cert(), "sha384"));
  EXPECT_EQ(daemon_->stop(SIGTERM, std::chrono::seconds(30)), 0);  // the module would take 60
  const std::string log = daemon_->log();
  EXPECT_NE(log.find("p11-shim.so did not finish within"), std::string::npos) << log;
  EXPECT_NE(log.find("korttid stopped"), std::string::npos);
  EXPECT_FALSE(fs::exists(daemon_->socket()));
}

// A token still opening when korttid stops (its first scan under way) has
// its sessions open already: they are closed before the module is
// finalized, never after, when the module they would call into is gone.
TEST_F(Lifecycle, StoppingWhileATokenIsStillOpeningClosesItsSessionsBeforeTheModule) {
  TempDir dir;
  const fs::path journal = dir / "journal";
  DaemonOptions o = shim_options("KORTTI_SHIM_SLOW_OPEN", journal.string());
  o.env["SOFTHSM2_CONF"] = hsm_->conf().string();
  o.wait_ready = false;  // nor can it be asked anything: it is not serving yet
  daemon_ = std::make_unique<Daemon>(std::move(o));
  ASSERT_TRUE(eventually([&] { return fs::exists(journal); }, std::chrono::seconds(20))) << daemon_->log();
  daemon_->signal(SIGTERM);
  ASSERT_TRUE(eventually([&] { return daemon_->log().find("stopping: closing the sessions") != std::string::npos; },
                         std::chrono::seconds(20)))
      << daemon_->log();
  write_file(dir / "journal.go", "");  // the tokens' opening goes on, while korttid stops
  EXPECT_EQ(daemon_->stop(SIGTERM, std::chrono::seconds(20)), 0);
  const std::string log = daemon_->log();
  EXPECT_NE(log.find("korttid stopped"), std::string::npos) << log;
  EXPECT_EQ(log.find("without exit-time cleanup"), std::string::npos) << log;
  const std::string calls = read_file(journal);
  const auto finalize = calls.find("finalize");
  ASSERT_NE(finalize, std::string::npos) << calls;
  EXPECT_EQ(calls.find("close-session", finalize), std::string::npos) << "a session closed after C_Finalize:\n"
                                                                      << calls;
  EXPECT_NE(calls.rfind("close-session", finalize), std::string::npos) << "the half-open tokens' sessions:\n" << calls;
}

TEST_F(Lifecycle, StatusReportsAModuleThatFailedAndTheOthersWork) {
  DaemonOptions o;
  o.modules = {"/nonexistent/libvendor-pkcs11.so", SoftHsm::kModule};
  start(std::move(o));
  auto c = daemon_->connect();
  const Json status = c->call("system.status");
  ASSERT_EQ(status["modules"].size(), 2U);
  EXPECT_FALSE(status["modules"][0]["loaded"].get<bool>());
  EXPECT_NE(str(status["modules"][0]["error"]).find("libvendor-pkcs11.so"), std::string::npos);
  EXPECT_TRUE(status["modules"][1]["loaded"].get<bool>());
  EXPECT_EQ(status["tokens"], 2);
  EXPECT_NE(daemon_->log().find("not loaded"), std::string::npos);
}

TEST_F(Lifecycle, ASecondDaemonOnTheSameSocketIsRefused) {
  TempDir dir;
  write_file(dir / "k.toml",
             "[ipc]\nsocket = \"" + daemon_->socket() + "\"\n[pkcs11]\nmodules = []\n[pcsc]\nenabled = false\n");
  auto r = run({korttid_binary().string(), "--config", (dir / "k.toml").string()});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("already listening"), std::string::npos) << r.err;
  EXPECT_EQ(daemon_->connect()->call("system.hello")["daemon"], "korttid");
}

TEST_F(Lifecycle, AStaleSocketFileIsReplaced) {
  TempDir dir;
  const fs::path sock = dir / "k.sock";
  DaemonOptions first;
  first.socket = sock;
  start(std::move(first));
  daemon_->stop(SIGKILL);  // leaves the socket file behind
  ASSERT_TRUE(fs::exists(sock));
  DaemonOptions second;
  second.socket = sock;
  start(std::move(second));
  EXPECT_EQ(daemon_->connect()->call("system.hello")["daemon"], "korttid");
}

TEST_F(Lifecycle, SighupReloadsAccessRules) {
  auto c = daemon_->connect();
  auto [answer, digest] = sign_digest(*c, rsa_sign_cert(), "sha256");
  const fs::path config = daemon_->dir() / "korttid.toml";
  std::string text = read_file(config);
  text += "[access]\nsign = [\"uid:4242\"]\n";
  write_file(config, text);
  daemon_->signal(SIGHUP);
  ASSERT_TRUE(daemon_->wait_notify("READY=1", std::chrono::seconds(10)));
  auto e = rpc_error([&] { sign_digest(*c, rsa_sign_cert(), "sha256"); });
  EXPECT_EQ(e.code(), 1040);
  EXPECT_EQ(e.reason(), "permission_denied");
}

// A subscriber the reloaded rules no longer let read gets no more events:
// the rules apply at once, to connections already open too.
TEST_F(Lifecycle, SighupTakingReadAwayEndsTheEventsOfThoseAlreadySubscribed) {
  auto watcher = connect_as(daemon_->socket(), 4242, 4242);
  watcher->call("events.subscribe", {{"topics", Json::array({"session"})}});
  auto holder = daemon_->connect();
  const Json card = wstr(token_ids_.at("cardA"));
  holder->call("session.login", {{"token_id", card}, {"pin", kPin}});
  ASSERT_TRUE(watcher->next_event(std::chrono::seconds(10))) << "the subscription showed nothing";
  const fs::path config = daemon_->dir() / "korttid.toml";
  write_file(config, read_file(config) + "[access]\nread = [\"uid:0\"]\n");
  daemon_->signal(SIGHUP);
  ASSERT_TRUE(daemon_->wait_notify("READY=1", std::chrono::seconds(10)));
  holder->call("session.logout", {{"token_id", card}});
  // An event still sent would be on its way before this answer.
  EXPECT_EQ(holder->call("system.hello")["daemon"], "korttid");
  const auto late = watcher->next_event(std::chrono::seconds(2));
  EXPECT_FALSE(late) << late->dump();
  EXPECT_EQ(rpc_error([&] { watcher->call("tokens.list"); }).code(), 1040);
}

TEST_F(Lifecycle, SighupNamesEveryChangedKeyThatWaitsForARestart) {
  const fs::path config = daemon_->dir() / "korttid.toml";
  const std::string original = read_file(config);
  write_file(config, original + "[signature]\nmax_document_bytes = 1048576\nrsa_digest = \"sha512\"\n");
  daemon_->signal(SIGHUP);
  ASSERT_TRUE(daemon_->wait_notify("READY=1", std::chrono::seconds(10)));
  const std::string log = daemon_->log();
  const auto line = log.find("take effect at the next restart");
  ASSERT_NE(line, std::string::npos) << log;
  const std::string warning = log.substr(line, log.find('\n', line) - line);
  EXPECT_NE(warning.find("signature.max_document_bytes"), std::string::npos) << warning;
  EXPECT_NE(warning.find("signature.rsa_digest"), std::string::npos) << warning;
  EXPECT_EQ(warning.find("log.level"), std::string::npos) << "a key SIGHUP applies is not listed: " << warning;

  // Still waiting at the next reload; put back, nothing waits.
  const auto warnings = [&] {
    std::size_t n = 0;
    const std::string text = daemon_->log();
    for (auto at = text.find("take effect at the next restart"); at != std::string::npos;
         at = text.find("take effect at the next restart", at + 1))
      ++n;
    return n;
  };
  const auto reloaded = [&] {
    daemon_->signal(SIGHUP);
    return daemon_->wait_notify("READY=1", std::chrono::seconds(10));
  };
  ASSERT_TRUE(reloaded());
  EXPECT_EQ(warnings(), 2U) << daemon_->log();
  write_file(config, original);
  ASSERT_TRUE(reloaded());
  EXPECT_EQ(warnings(), 2U) << "the file is as korttid runs it again: " << daemon_->log();
}

TEST_F(Lifecycle, SighupWithABadFileKeepsTheOldConfiguration) {
  const fs::path config = daemon_->dir() / "korttid.toml";
  write_file(config, read_file(config) + "[access]\nsign = \"everyone\"\n");
  daemon_->signal(SIGHUP);
  ASSERT_TRUE(daemon_->wait_notify("READY=1", std::chrono::seconds(10)));
  auto c = daemon_->connect();
  EXPECT_NO_THROW(sign_digest(*c, rsa_sign_cert(), "sha256"));
  EXPECT_NE(daemon_->log().find("reload refused"), std::string::npos);
}

// Blocks signals in this thread, and so in a korttid started from it,
// until it goes.
class BlockedSignals {
 public:
  explicit BlockedSignals(std::initializer_list<int> signals) {
    sigset_t set;
    sigemptyset(&set);
    for (const int signo : signals) sigaddset(&set, signo);
    if (::pthread_sigmask(SIG_BLOCK, &set, &before_) != 0) throw std::runtime_error("pthread_sigmask");
  }
  BlockedSignals(const BlockedSignals&) = delete;
  BlockedSignals& operator=(const BlockedSignals&) = delete;
  ~BlockedSignals() { ::pthread_sigmask(SIG_SETMASK, &before_, nullptr); }

 private:
  sigset_t before_{};
};

// A parent's blocked signals are inherited: korttid takes those it acts on
// once it listens for them, and one sent while they were blocked is acted
// on then.
TEST_F(Lifecycle, SignalsItsParentBlockedAreActedOn) {
  {
    const BlockedSignals held({SIGHUP, SIGTERM, SIGINT});
    start({});
  }
  daemon_->signal(SIGHUP);
  EXPECT_TRUE(daemon_->wait_notify("READY=1", std::chrono::seconds(10))) << "no reload";
  EXPECT_NE(daemon_->log().find("configuration reloaded"), std::string::npos) << daemon_->log();
  EXPECT_EQ(daemon_->connect()->call("system.hello")["daemon"], "korttid");
  EXPECT_EQ(daemon_->stop(SIGINT, std::chrono::seconds(10)), 0);
  EXPECT_NE(daemon_->log().find("korttid stopped"), std::string::npos) << daemon_->log();
}

// A SIGHUP while korttid starts (here held back by the mask korttid
// inherits, so that it comes before korttid listens) is a reload once
// korttid is ready, and not before: systemd takes the reload's READY=1 as
// the start's.
TEST_F(Lifecycle, ASighupWhileKorttidStartsIsAReloadOnceItIsReady) {
  DaemonOptions o;
  o.env["SOFTHSM2_CONF"] = hsm_->conf().string();
  o.revocation = "ocsp = false\ncrl = false\n";
  o.wait_ready = false;
  std::optional<Daemon> starting;
  {
    const BlockedSignals held({SIGHUP});
    starting.emplace(std::move(o));
  }
  starting->signal(SIGHUP);
  ASSERT_TRUE(starting->wait_notify("READY=1", std::chrono::seconds(20))) << starting->log();
  ASSERT_TRUE(starting->wait_notify("READY=1", std::chrono::seconds(10))) << "no reload: " << starting->log();
  const std::string log = starting->log();
  const auto ready = log.find("ready: ");
  const auto reload = log.find("SIGHUP: reloading");
  ASSERT_NE(reload, std::string::npos) << log;
  EXPECT_LT(ready, reload) << "reloaded before it was ready: " << log;
  EXPECT_EQ(starting->connect()->call("system.hello")["daemon"], "korttid");
  EXPECT_EQ(starting->stop(SIGTERM), 0);
}

// A PIN dialog program starts with no signal blocked, whatever korttid's
// threads inherited (pinentry's own --timeout is a SIGALRM).
TEST_F(Lifecycle, APinDialogStartsWithNoSignalBlocked) {
  PinentryDouble dialog;
  dialog.answer({std::string("pin:") + kPin});
  DaemonOptions o;
  dialog.use_in(o);
  {
    const BlockedSignals held({SIGALRM, SIGUSR1});
    start(std::move(o));
  }
  auto c = daemon_->connect();
  c->call("sign.digest", {{"cert_id", wstr(rsa_sign_cert())},
                          {"digest_algorithm", "sha256"},
                          {"digest", wstr(base64_encode(random_bytes(32)))},
                          {"pin_prompt", true}});
  EXPECT_EQ(read_file(dialog.dir() / "signals-1"), "SigBlk:\t0000000000000000\n");
}

TEST_F(Lifecycle, SighupUnderLoadLosesNoRequestAndNoSession) {
  auto holder = daemon_->connect();
  holder->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}});
  const fs::path config = daemon_->dir() / "korttid.toml";
  const std::string original = read_file(config);

  // Four clients sign and list without pause while korttid reloads twenty
  // times, each reload changing a key that applies at once.
  std::atomic<bool> done{false};
  std::atomic<int> signed_ok{0}, listed{0};
  std::vector<std::string> failures;
  std::mutex failures_mutex;
  auto fail = [&](std::string what) {
    std::lock_guard lock(failures_mutex);
    failures.push_back(std::move(what));
  };
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i)
    clients.emplace_back([&, i] {
      try {
        auto c = daemon_->connect();
        while (!done) {
          if (i % 2 == 0) {
            auto [answer, digest] = sign_digest(*c, i == 0 ? rsa_sign_cert() : ec_sign_cert(), "sha256");
            if (!openssl_verify_digest(b64(answer["certificate"]), digest, b64(answer["signature"]), "sha256",
                                       i == 0 ? "pkcs1" : "ecdsa"))
              fail("a signature openssl does not verify");
            ++signed_ok;
          } else {
            if (c->call("certificates.list").size() != 4U) fail("certificates.list lost a certificate");
            ++listed;
          }
        }
      } catch (const std::exception& e) {
        fail(e.what());
      }
    });
  for (int reload = 0; reload < 20; ++reload) {
    std::string text = original;
    text.replace(text.find("[ipc]\n"), 6,
                 "[ipc]\nrequest_timeout_s = " + std::to_string(60 + reload) +
                     "\nshutdown_grace_s = " + std::to_string(5 + reload % 3) + "\n");
    write_file(config, text);
    daemon_->signal(SIGHUP);
    ASSERT_TRUE(daemon_->wait_notify("READY=1", std::chrono::seconds(10))) << "reload " << reload;
  }
  done = true;
  for (auto& t : clients) t.join();
  EXPECT_TRUE(failures.empty()) << failures.front();
  EXPECT_GT(signed_ok.load(), 0);
  EXPECT_GT(listed.load(), 0);
  EXPECT_EQ(daemon_->log().find("reload refused"), std::string::npos) << daemon_->log();
  // The session opened before the storm still signs without a PIN.
  EXPECT_NO_THROW(sign_digest(*holder, rsa_auth_cert(), "sha256", "", false));
}

TEST(LifecycleNoDaemon, CheckConfigExitCodesAndMessages) {
  TempDir dir;
  write_file(dir / "good.toml", "[ipc]\nsocket = \"/tmp/x.sock\"\n");
  auto ok = run({korttid_binary().string(), "--config", (dir / "good.toml").string(), "--check-config"});
  EXPECT_EQ(ok.status, 0);
  EXPECT_NE(ok.out.find("configuration OK"), std::string::npos);
  write_file(dir / "bad.toml", "[ipc]\nsocket = \"/tmp/x.sock\"\nmax_mesage_bytes = 10\n");
  auto bad = run({korttid_binary().string(), "--config", (dir / "bad.toml").string(), "--check-config"});
  EXPECT_EQ(bad.status, 78);
  EXPECT_NE(bad.err.find("bad.toml:3: ipc.max_mesage_bytes: unknown key (did you mean ipc.max_message_bytes?)"),
            std::string::npos)
      << bad.err;
  auto missing = run({korttid_binary().string(), "--config", (dir / "none.toml").string(), "--check-config"});
  EXPECT_EQ(missing.status, 78);
}

// A short run of korttid is checked as a Daemon's log is: a sanitizer's
// report fails the test even where the exit status is one the test expects.
// (Here the marker is the file name korttid's error repeats.)
TEST(LifecycleNoDaemon, ASanitizerReportInAShortRunFailsTheTest) {
  EXPECT_NONFATAL_FAILURE(
      (void)run({korttid_binary().string(), "--config", "/nonexistent/runtime error: here.toml", "--check-config"}),
      "sanitizer reports in the output of");
}

TEST(LifecycleNoDaemon, HelpAndVersion) {
  auto help = run({korttid_binary().string(), "--help"});
  EXPECT_EQ(help.status, 0);
  for (const char* section : {"--config", "--check-config", "SIGNALS", "SIGHUP", "EXIT STATUS", "FILES"})
    EXPECT_NE(help.out.find(section), std::string::npos) << section;
  auto version = run({korttid_binary().string(), "--version"});
  EXPECT_EQ(version.status, 0);
  EXPECT_NE(version.out.find("protocol 1"), std::string::npos);
}

// korttid under systemd-socket-activate, which starts it at the first
// connection to `socket`, as korttid.socket does.
class Activated {
 public:
  Activated(const fs::path& socket, const fs::path& config, const fs::path& log, const std::string& env = "",
            const std::string& options = "")
      : log_(log) {
    // systemd-socket-activate gives korttid only the variables named with -E.
    const std::string cmd = "exec systemd-socket-activate " + (env.empty() ? "" : "-E " + env + " ") + "-l " +
                            socket.string() + " " + korttid_binary().string() + " " + options + " --config " +
                            config.string() + " > " + log.string() + " 2>&1";
    pid_ = fork();
    if (pid_ == 0) {
      execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 100 && !client_; ++i) {
      try {
        client_ = std::make_unique<client::Client>(socket.string());
      } catch (const std::exception&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the listener is not bound yet
      }
    }
  }
  ~Activated() { stop(); }
  Activated(const Activated&) = delete;
  Activated& operator=(const Activated&) = delete;

  client::Client* client() { return client_.get(); }
  // Stops korttid with SIGTERM; its exit status (0 expected).
  int stop() {
    if (pid_ <= 0) return -1;
    client_.reset();
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  [[nodiscard]] std::string log() const { return read_file(log_); }

 private:
  fs::path log_;
  pid_t pid_ = -1;
  std::unique_ptr<client::Client> client_;
};

TEST(LifecycleNoDaemon, SocketActivationServesThePassedSocket) {
  TempDir dir;
  write_file(dir / "k.toml", "[ipc]\nsocket = \"" + (dir / "unused.sock").string() +
                                 "\"\n[pkcs11]\nmodules = []\n[pcsc]\nenabled = false\n");
  Activated korttid(dir / "activated.sock", dir / "k.toml", dir / "log");
  ASSERT_TRUE(korttid.client());
  EXPECT_EQ(korttid.client()->call("system.hello", Json::object(), std::chrono::seconds(20))["daemon"], "korttid");
  EXPECT_FALSE(fs::exists(dir / "unused.sock"));
  EXPECT_EQ(korttid.stop(), 0) << korttid.log();
  EXPECT_NE(korttid.log().find("serving the socket passed by systemd"), std::string::npos) << korttid.log();
  EXPECT_EQ(sanitizer_reports(korttid.log()), "");
}

// [ipc] socket_mode and socket_group are for a socket korttid binds: the
// socket unit decides those of the one it passes, and an admin who set
// them for the packaged service is told they do not apply.
TEST(LifecycleNoDaemon, ASocketModeTheSocketUnitDecidesIsNamedInAWarning) {
  TempDir dir;
  write_file(dir / "k.toml", "[ipc]\nsocket_mode = \"0600\"\n[pkcs11]\nmodules = []\n[pcsc]\nenabled = false\n");
  Activated korttid(dir / "activated.sock", dir / "k.toml", dir / "log");
  ASSERT_TRUE(korttid.client());
  EXPECT_EQ(korttid.client()->call("system.hello", Json::object(), std::chrono::seconds(20))["daemon"], "korttid");
  char has[8];
  std::snprintf(has, sizeof has, "%04o", static_cast<unsigned>(fs::status(dir / "activated.sock").permissions()));
  ASSERT_STRNE(has, "0600");
  EXPECT_EQ(korttid.stop(), 0) << korttid.log();
  EXPECT_NE(korttid.log().find(std::string("has mode ") + has + ", not [ipc] socket_mode 0600"), std::string::npos)
      << korttid.log();
  EXPECT_EQ(sanitizer_reports(korttid.log()), "");
}

// A user's own korttid has its socket unit's 0600 while the configuration
// it shares with the system service says 0660: nothing to warn of there.
TEST(LifecycleNoDaemon, AUsersOwnInstanceIsNotWarnedOfItsSocketsMode) {
  TempDir dir;
  write_file(dir / "k.toml", "[ipc]\nsocket_mode = \"0600\"\n[pkcs11]\nmodules = []\n[pcsc]\nenabled = false\n");
  Activated korttid(dir / "activated.sock", dir / "k.toml", dir / "log",
                    "XDG_RUNTIME_DIR=" + dir.path().string() + " -E HOME=" + dir.path().string(), "--user-instance");
  ASSERT_TRUE(korttid.client());
  EXPECT_EQ(korttid.client()->call("system.hello", Json::object(), std::chrono::seconds(20))["daemon"], "korttid");
  EXPECT_NE(fs::status(dir / "activated.sock").permissions(), fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(korttid.stop(), 0) << korttid.log();
  EXPECT_NE(korttid.log().find("serving the socket passed by systemd"), std::string::npos) << korttid.log();
  EXPECT_EQ(korttid.log().find("socket_mode"), std::string::npos) << korttid.log();
  EXPECT_EQ(sanitizer_reports(korttid.log()), "");
}

// The client whose connection starts korttid asks at once: the cards that
// were inserted before must already be known (it used to get 1002 until the
// first token scan ended).
TEST_F(Lifecycle, TheClientThatStartsKorttidFindsTheCardsAlreadyInserted) {
  ASSERT_EQ(daemon_->stop(SIGTERM), 0);
  TempDir dir;
  Activated korttid(dir / "activated.sock", daemon_->config(), dir / "log", "SOFTHSM2_CONF=" + hsm_->conf().string());
  ASSERT_TRUE(korttid.client());
  auto& c = *korttid.client();
  const auto wait = std::chrono::seconds(30);
  // A decision, whatever it says: policy.check answers a known certificate
  // with one, and an unknown one with 1002.
  Json decision;
  ASSERT_NO_THROW(
      decision = c.call("policy.check", {{"cert_id", wstr(rsa_sign_cert())}, {"action", "sign.prescription"}}, wait))
      << korttid.log();
  EXPECT_TRUE(decision.contains("allowed")) << decision.dump();
  EXPECT_EQ(c.call("certificates.list", Json::object(), wait).size(), 4U) << korttid.log();
  EXPECT_EQ(korttid.stop(), 0) << korttid.log();
  EXPECT_EQ(sanitizer_reports(korttid.log()), "");
}

}  // namespace
}  // namespace kortti::test
