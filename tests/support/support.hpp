#pragma once

// Test support: real processes, real files. Used by the integration tests to
// run korttid against SoftHSM2 / pcscd, and to verify with the openssl CLI.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "client/client.hpp"
#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "common/openssl.hpp"

namespace kortti::test {

namespace fs = std::filesystem;

fs::path source_dir();
// The tree this suite was built in (its PKI fixture lives there).
fs::path binary_dir();
// The tree whose programs it tests: binary_dir(), or the tree named by
// KORTTI_TEST_PROGRAMS (an absolute path). CI runs the package tree's suite
// against the ThreadSanitizer tree's programs so (scripts/test); a run by hand
// against a TSan korttid also sets KORTTI_MEMORY_SCALE=8 (hostile_test.cpp).
fs::path programs_dir();
fs::path korttid_binary();
fs::path kortti_binary();
fs::path webeid_binary();
// The test PKI made once per ctest run (tests/fixtures/make-pki.sh).
fs::path pki_dir();

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const fs::path& path() const noexcept { return path_; }
  [[nodiscard]] fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

struct CommandResult {
  int status = -1;  // exit status, or 128 + signal
  std::string out;
  std::string err;
};

// Runs argv[0] (looked up in PATH) with extra environment, feeding `input` on
// stdin. `fds` maps child descriptor numbers to file paths opened for reading.
CommandResult run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
                  const std::string& input = {}, const std::map<int, fs::path>& fds = {});

// argv[0] run in the background (looked up in PATH), its output to `log`:
// a client that is still waiting when the test acts. Killed (SIGKILL) and
// reaped when it goes, unless it was waited for.
class BackgroundCommand {
 public:
  BackgroundCommand(const std::vector<std::string>& argv, const fs::path& log);
  ~BackgroundCommand() { kill(); }
  BackgroundCommand(const BackgroundCommand&) = delete;
  BackgroundCommand& operator=(const BackgroundCommand&) = delete;
  void kill();
  // Its exit status (128 + signal if killed); -1 if it was killed or
  // waited for already.
  int wait();

 private:
  pid_t pid_ = -1;
};

void write_file(const fs::path& path, const std::string& content);

// Waits for `done`, asking again every 20 ms, up to `timeout`.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout);
// `xmlsec1 --verify` of a signed XML document against the test PKI's roots
// (the ds:Signature with Id `signature_id`, or the first one).
CommandResult xmlsec_verify(const std::string& document, const std::string& signature_id = {});
// `openssl cms -verify -cades` of a DER CMS signature against the test PKI's
// roots; `content` for a detached one. `out` is the content it verified.
CommandResult cms_verify(const Bytes& cms, const std::optional<Bytes>& content = std::nullopt);
// Signs `digest` with a PEM key the way the token does: PKCS#1 v1.5 (or PSS,
// salt = digest length) for RSA, DER ECDSA for EC.
Bytes sign_like_a_token(const fs::path& key_pem, DigestAlgorithm alg, const Bytes& digest, bool pss = false);
// The certificates of a PEM file, DER, in file order; throws when it holds
// none.
std::vector<Bytes> pem_certificates(const fs::path& pem);
// The first certificate, or the private key, of a PEM file; null when it
// holds none.
X509Ptr read_pem_certificate(const fs::path& pem);
EvpPkeyPtr read_pem_key(const fs::path& pem);
std::string read_file(const fs::path& path);
// How many times `needle` occurs in `text` (a log, an audit file).
std::size_t occurrences(std::string_view text, std::string_view needle);
// An XML document of about `bytes` with no signature in it.
std::string unsigned_document(std::size_t bytes);
// A burst of `n` verify.xml requests of `document` as attachments, ids 1..n,
// for one write: korttid reads them all before it answers any.
std::string verify_burst(const std::string& document, int n);
Bytes read_bytes(const fs::path& path);
void write_bytes(const fs::path& path, ByteView data);

// Throw-away PINs of the test tokens.
inline constexpr const char* kPin = "917364";
inline constexpr const char* kSoPin = "55554444";

// SoftHSM2 tokens filled from the test PKI (tests/fixtures/softhsm-token.sh).
class SoftHsm {
 public:
  explicit SoftHsm(const fs::path& dir);
  // Items: "person/purpose[/always-auth]"; CKA_IDs 01, 02, ... in order.
  void add_token(const std::string& label, const std::vector<std::string>& items);
  [[nodiscard]] fs::path conf() const { return dir_ / "softhsm2.conf"; }
  static constexpr const char* kModule = "/usr/lib/softhsm/libsofthsm2.so";
  // The test double over kModule (tests/p11_shim/shim.cpp): what it changes
  // is switched on by korttid's environment.
  static std::string shim();

 private:
  fs::path dir_;
};

struct DaemonOptions {
  std::optional<fs::path> socket;  // default: korttid.sock in the daemon's directory
  std::string ipc;                 // extra lines for the [ipc] table
  std::string session;             // extra lines for the [session] table
  std::string pkcs11;              // extra lines for the [pkcs11] table
  // [trust] anchors and intermediates are the test PKI's; [registry] database is
  // registry.sqlite in the daemon's directory. Extra lines for each:
  std::string trust;
  std::string revocation;
  std::string registry;
  std::string extra;                   // further tables, appended as they are
  std::optional<fs::path> audit_file;  // default: audit.log in the daemon's directory
  std::string audit;                   // extra lines for the [audit] table
  std::vector<std::string> modules{SoftHsm::kModule};
  bool pcsc = false;
  std::string log_level = "debug";
  std::map<std::string, std::string> env;
  std::vector<std::string> args;  // korttid's options after --config (e.g. --user-instance)
  // A command korttid's own is appended to, which ends by exec'ing it (so
  // the process is korttid's): e.g. unshare(1) for a namespace of its own.
  std::vector<std::string> wrapper;
  bool wait_ready = true;
};

// Options of a korttid that loads the PKCS#11 test double (SoftHsm::shim())
// instead of SoftHSM2, with the shim's `variable` set to `value`.
inline DaemonOptions shim_options(const std::string& variable, const std::string& value) {
  DaemonOptions o;
  o.modules = {SoftHsm::shim()};
  o.env[variable] = value;
  return o;
}

// korttid in a child process with its own socket, config and log, in a
// temporary directory. READY is awaited through NOTIFY_SOCKET, the way
// systemd does it.
class Daemon {
 public:
  explicit Daemon(DaemonOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  [[nodiscard]] std::string socket() const { return socket_.string(); }
  [[nodiscard]] const fs::path& dir() const noexcept { return dir_.path(); }
  [[nodiscard]] fs::path config() const { return dir_ / "korttid.toml"; }
  [[nodiscard]] fs::path registry() const { return dir_ / "registry.sqlite"; }
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] std::string log() const;
  // The audit trail's lines once settled: korttid answers a signature when
  // its begun line is on disk and writes the outcome's line after it, so
  // this waits (up to 10 s) until every begun line has its outcome line.
  [[nodiscard]] std::vector<Json> audit() const;
  [[nodiscard]] fs::path audit_file() const { return audit_file_; }
  [[nodiscard]] bool running();
  std::unique_ptr<client::Client> connect() const { return std::make_unique<client::Client>(socket()); }

  // Sends `signo` and waits for the exit status (128 + signal if killed).
  // The caller has then seen the status and checks it itself.
  int stop(int signo = 15, std::chrono::seconds timeout = std::chrono::seconds(20));
  // The exit status of a daemon that was expected to exit on its own (a
  // bad config, say), waited for up to `timeout`; the caller checks it.
  std::optional<int> exit_status(std::chrono::seconds timeout = std::chrono::seconds(20));
  void signal(int signo) const;
  // Waits for a notify message containing `what` (e.g. "READY=1").
  bool wait_notify(const std::string& what, std::chrono::milliseconds timeout);

 private:
  TempDir dir_;
  fs::path socket_;
  fs::path audit_file_;
  pid_t pid_ = -1;
  int notify_fd_ = -1;
  std::optional<int> status_;
  bool status_seen_ = false;  // a test looked at the exit status itself
};

// The pinentry test double (tests/pinentry/pinentry-double) as korttid's
// PIN dialog: a korttid given use_in() shows its dialogs through it, which
// answers as scripted and records what each dialog said.
class PinentryDouble {
 public:
  // [pin] pinentry in the config, and the double's folder and a display in
  // the environment.
  void use_in(DaemonOptions& options) const;
  // One line per dialog, in order: "pin:DIGITS", "late:DIGITS" (after 2 s),
  // "ok" (a confirmation), "cancel", "timeout", "stall".
  void answer(const std::vector<std::string>& answers) const;
  // Dialog n (from 1), one decoded Assuan command per line.
  [[nodiscard]] std::string dialog(int n) const;
  [[nodiscard]] bool any_shown() const { return fs::exists(dir_ / "count"); }
  [[nodiscard]] const fs::path& dir() const noexcept { return dir_.path(); }

 private:
  TempDir dir_;
};

// What every test that runs korttid checks when its Daemon goes away: that it
// did not die on its own, that SIGTERM stopped it with status 0, and that its
// log has no AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer or
// ThreadSanitizer report. Problems go to the reporter (a gtest failure in
// the test programs: tests/support/test_main.cpp), or stderr without one.
void set_problem_reporter(std::function<void(const std::string&)> reporter);
// A sanitizer report in what one of our programs printed is a problem
// (reported as above), whatever its exit status said: run() checks every
// program of this build tree with it.
void check_output_of(const std::string& program, const std::string& output);
// The sanitizer reports in a log, or empty.
std::string sanitizer_reports(const std::string& log);
// Calls `fn` with the log of every korttid that is running now (the
// listener in test_main.cpp prints them when a test fails).
void for_each_daemon_log(const std::function<void(const std::string&)>& fn);
// An audit trail's lines other than the begun lines: one per outcome.
std::vector<Json> outcomes(const std::vector<Json>& lines);

// A connection made by a process with other credentials: a child takes
// `uid`, `gid` and `groups`, connects, and hands the socket back. korttid
// reads the credentials of whoever connected, so this is how a test is
// another user without running as one.
std::unique_ptr<client::Client> connect_as(const std::string& socket, uid_t uid, gid_t gid,
                                           const std::vector<gid_t>& groups = {});
// The same, for any Unix socket or loopback TCP port
// (client::connect_listener): the connected descriptor, the caller's to close.
int connect_fd_as(const std::string& socket, uid_t uid, gid_t gid, const std::vector<gid_t>& groups = {});

// A private pcscd with vpcd's two virtual readers on free TCP ports, reached
// through its own socket (PCSCLITE_CSOCK_NAME); set for this process too.
class Pcscd {
 public:
  // Two virtual readers, or `readers` (an even number up to 16, pcscd's
  // most: vpcd serves two readers per pair of ports).
  explicit Pcscd(int readers = 2);
  // A pcscd with no reader at all, as on a machine with none plugged in.
  struct NoReaders {};
  explicit Pcscd(NoReaders);
  ~Pcscd();
  Pcscd(const Pcscd&) = delete;
  Pcscd& operator=(const Pcscd&) = delete;

  [[nodiscard]] int port(int reader) const noexcept { return base_port_ + reader; }
  [[nodiscard]] std::string socket() const { return (dir_ / "pcscd.comm").string(); }
  [[nodiscard]] std::map<std::string, std::string> env() const { return {{"PCSCLITE_CSOCK_NAME", socket()}}; }
  void kill();
  void start();
  [[nodiscard]] std::string log() const;

 private:
  bool launch();
  TempDir dir_;
  int readers_ = 2;
  int base_port_ = 0;
  pid_t pid_ = -1;
};

struct CardOptions {
  std::string person = "physician";  // from the test PKI
  int reader = 0;
  std::string guid;               // 32 hex digits; default: from person and reader
  std::vector<std::string> args;  // extra kortti-vcard options (--delay 87:3000, --reconnect, ...)
  std::string pin = kPin;
};

inline CardOptions card_options(std::string person = "physician", int reader = 0, std::vector<std::string> args = {}) {
  CardOptions o;
  o.person = std::move(person);
  o.reader = reader;
  o.args = std::move(args);
  return o;
}

// Where a command APDU is at the card: it has arrived (the card is working on
// it, --delay included), or its answer has been sent back.
enum class Apdu { begun, answered };

// A kortti-vcard process: constructing it inserts the card, pull() or the
// destructor removes it.
class VirtualCard {
 public:
  VirtualCard(const Pcscd& pcscd, CardOptions options);
  ~VirtualCard();
  VirtualCard(const VirtualCard&) = delete;
  VirtualCard& operator=(const VirtualCard&) = delete;
  void pull();
  [[nodiscard]] std::string token_id() const;  // what OpenSC makes of the GUID
  [[nodiscard]] std::string log() const;

  // How many commands with instruction byte `ins` (0x87 GENERAL AUTHENTICATE,
  // 0x20 VERIFY, ...) have reached `phase` so far, from the card's own event
  // log. A command chain counts once: it begins with its first link and is
  // answered with its last (OpenSC sends an RSA-2048 signature as two links).
  [[nodiscard]] int apdus(std::uint8_t ins, Apdu phase) const;
  // Blocks until the `nth` such command (1 is the first since insertion of
  // this card) has reached `phase`; false at `timeout`. Tests wait on this
  // where a sleep would only guess that the card got that far.
  [[nodiscard]] bool wait_for_apdu(std::uint8_t ins, int nth, Apdu phase, std::chrono::milliseconds timeout) const;
  // The event log itself ("begin 87", "end 87", ...), for failure messages.
  [[nodiscard]] std::string events() const;

 private:
  TempDir dir_;
  std::string guid_;
  pid_t pid_ = -1;
};

// `korttid registry ...` with a daemon's configuration.
CommandResult registry_command(const Daemon& daemon, const std::vector<std::string>& args);
// Imports the registry fixture (tests/fixtures/registry/) into a daemon's
// registry: the professionals and the three code sets. Throws on failure.
void import_registry_fixture(const Daemon& daemon);
fs::path registry_fixture_dir();

// `openssl ocsp` answering for one CA of the test PKI from its index.txt, on
// the port that CA's certificates name (AIA). Or on `port`, from `index`,
// signed by the responder certificate of CA `signer`.
class OcspResponder {
 public:
  static constexpr int kRsaPort = 18888;  // hc-rsa (make-pki.sh)
  static constexpr int kEcPort = 18889;   // hc-ec
  explicit OcspResponder(const std::string& ca, int port = 0, std::optional<fs::path> index = std::nullopt,
                         std::string signer = "");
  ~OcspResponder();
  OcspResponder(const OcspResponder&) = delete;
  OcspResponder& operator=(const OcspResponder&) = delete;
  [[nodiscard]] int port() const noexcept { return port_; }
  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] std::string log() const;
  [[nodiscard]] int requests() const;  // answered so far, from its log
  void stop();

 private:
  TempDir dir_;
  int port_;
  pid_t pid_ = -1;
};

// A local TCP port nobody listens on (bound, then closed).
int closed_port();

// `openssl s_server -www` on 127.0.0.1 with a fresh self-signed certificate
// for localhost, demanding a client certificate from the test PKI's CAs
// (-Verify 2 -verify_return_error), whose names its certificate request
// carries; `options` are added (-tls1_3, ...; -rev: an echo server that
// sends each line back reversed, instead of -www). Its status page (GET /)
// says what it saw: protocol, peer signature type and digest, the client
// certificate.
class TlsServer {
 public:
  // `files`: serve that folder's files (GET /NAME) instead of the status page.
  // `client_issuers`: the test CAs (pki_dir()/ca/NAME-chain.pem, or a PEM
  // file under pki_dir() where NAME has a '/') it accepts client
  // certificates from; none: it asks for no client certificate.
  explicit TlsServer(const std::vector<std::string>& options = {}, const fs::path& files = {},
                     const std::vector<std::string>& client_issuers = {"hc-rsa", "hc-ec"});
  ~TlsServer();
  TlsServer(const TlsServer&) = delete;
  TlsServer& operator=(const TlsServer&) = delete;
  [[nodiscard]] int port() const noexcept { return port_; }
  [[nodiscard]] fs::path certificate() const { return dir_ / "server.pem"; }
  [[nodiscard]] std::string log() const;
  void stop();

 private:
  TempDir dir_;
  int port_;
  pid_t pid_ = -1;
};

// A TLS 1.3 server that asks for the test CAs' RSA client certificates,
// sends a line, and reads nothing until told to (release()), then everything until the
// connection ends, and writes down how many bytes it read and whether the
// end was a close_notify (Python's ssl: s_server cannot hold off reading).
// One connection.
class HoldingServer {
 public:
  HoldingServer();
  ~HoldingServer();
  HoldingServer(const HoldingServer&) = delete;
  HoldingServer& operator=(const HoldingServer&) = delete;
  [[nodiscard]] int port() const noexcept { return port_; }
  [[nodiscard]] fs::path certificate() const { return dir_ / "server.pem"; }
  void release() const;
  // What it read: {bytes, whether the end was a close_notify}; nullopt if it
  // has not finished within 20 s.
  [[nodiscard]] std::optional<std::pair<std::uint64_t, bool>> result() const;
  [[nodiscard]] std::string log() const;

 private:
  TempDir dir_;
  int port_;
  pid_t pid_ = -1;
};

// A listening Unix socket at `path` (backlog 4); throws if it cannot be.
int listen_unix(const fs::path& path);

// A test double for korttid, for what no real korttid sends: on a Unix
// socket, it answers each request with the line scripted for its method
// ("ID" in it replaced by the request's id; an unscripted method gets an
// empty result; kStall: nothing, and nothing more is read) and records the
// methods it was asked. One connection at a time.
class ScriptedKorttid {
 public:
  static constexpr const char* kStall = "STALL";
  ScriptedKorttid(const fs::path& socket, std::map<std::string, std::string> answers);
  ~ScriptedKorttid();
  ScriptedKorttid(const ScriptedKorttid&) = delete;
  ScriptedKorttid& operator=(const ScriptedKorttid&) = delete;
  [[nodiscard]] std::vector<std::string> methods() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `openssl s_server -WWW` serving the files of a folder over HTTPS on
// 127.0.0.1 (GET /NAME), as a web site a browser opens: its certificate
// names localhost and 127.0.0.1 and comes from a CA of its own, ca(), which
// the browser must trust.
class PageServer {
 public:
  explicit PageServer(const fs::path& files);
  ~PageServer();
  PageServer(const PageServer&) = delete;
  PageServer& operator=(const PageServer&) = delete;
  [[nodiscard]] int port() const noexcept { return port_; }
  [[nodiscard]] fs::path ca() const { return dir_ / "ca.pem"; }

 private:
  TempDir dir_;
  int port_;
  pid_t pid_ = -1;
};

// A headless Chromium whose user is `home` (HOME): an NSS database there,
// trusting the web sites' CAs given to trust(). page_output() loads a page
// and returns what its script wrote into <pre id="out">, or nothing (with
// `error` saying what Chromium printed) when there is no such element.
class Browser {
 public:
  explicit Browser(fs::path home);
  // Throws std::runtime_error when certutil fails.
  void trust(const fs::path& ca, const std::string& nickname);
  [[nodiscard]] std::optional<std::string> page_output(const std::string& url, std::string& error) const;
  [[nodiscard]] fs::path nssdb() const { return home_ / ".pki/nssdb"; }

 private:
  fs::path home_;
};

// A user's desktop as `kortti watch` needs it: a private D-Bus session bus
// (dbus-daemon) with the notification server's test double on it
// (tests/notify_double/), and `kortti watch` itself run in the background.
class Desktop {
 public:
  Desktop();
  ~Desktop();
  Desktop(const Desktop&) = delete;
  Desktop& operator=(const Desktop&) = delete;
  [[nodiscard]] std::map<std::string, std::string> env() const;
  // The notifications shown so far: "URGENCY\tSUMMARY\tBODY" each.
  [[nodiscard]] std::vector<std::string> notices() const;
  // Waits until a notice contains `text`; false at `timeout`.
  [[nodiscard]] bool wait_for_notice(const std::string& text, std::chrono::milliseconds timeout) const;
  // `kortti --socket SOCKET watch ARGS...` until stop_watch() or the end.
  void start_watch(const std::string& socket, const std::vector<std::string>& args);
  void stop_watch();
  [[nodiscard]] std::string watch_log() const;

 private:
  TempDir dir_;
  pid_t bus_ = -1;
  pid_t server_ = -1;
  pid_t watch_ = -1;
};

inline constexpr const char* kOpenScModule = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";

// A name server that takes every question and never answers: UDP on
// 127.0.0.2:53 (port 53 needs root, as CI has). wrapper() runs korttid in a
// mount namespace of its own whose /etc/resolv.conf names only this server
// (resolver timeout 30 s, one attempt): what the rest of the machine sees
// is unchanged. One at a time: it waits up to 60 s for another test's to
// free the port.
class SilentNameServer {
 public:
  SilentNameServer();
  ~SilentNameServer();
  SilentNameServer(const SilentNameServer&) = delete;
  SilentNameServer& operator=(const SilentNameServer&) = delete;
  [[nodiscard]] bool bound() const { return bound_; }
  // Questions it was asked (and left unanswered) since the last call.
  [[nodiscard]] int questions() const;
  // DaemonOptions::wrapper for a korttid that asks this server.
  [[nodiscard]] std::vector<std::string> wrapper() const;

 private:
  int fd_;
  bool bound_ = false;
  TempDir etc_;
};

// Independent verification with the openssl CLI.
// Verifies a signature over a digest (pkeyutl) with the certificate's key.
bool openssl_verify_digest(const Bytes& certificate_der, const Bytes& digest, const Bytes& signature,
                           const std::string& digest_algorithm, const std::string& scheme);
// Verifies a signature over data (dgst -verify).
bool openssl_verify_data(const Bytes& certificate_der, const Bytes& data, const Bytes& signature,
                         const std::string& digest_algorithm, const std::string& scheme);

// The Web eID rule, checked with the openssl CLI and never korttid's code:
// does `token` sign hash(origin) || hash(nonce) with its algorithm's hash,
// ECDSA as JWS r||s?
bool web_eid_rule_holds(const Json& token, const std::string& origin, const std::string& nonce);
// The openssl CLI's hash ("sha256", ...) of a text, as raw bytes.
Bytes openssl_hash(const std::string& alg, const std::string& text);
// JWS r||s as the DER ECDSA-Sig-Value openssl verifies.
Bytes ecdsa_raw_as_der(const Bytes& raw);

Bytes random_bytes(std::size_t n);
Bytes b64(const Json& value);  // base64 field of an answer
std::string str(const Json& value);

}  // namespace kortti::test
