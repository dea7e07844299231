#include "tests/support/support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grp.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/encoding.hpp"
#include "common/openssl.hpp"

extern char** environ;

namespace kortti::test {

fs::path source_dir() { return KORTTI_SOURCE_DIR; }
fs::path binary_dir() { return KORTTI_BINARY_DIR; }
fs::path korttid_binary() { return binary_dir() / "daemon" / "korttid"; }
fs::path kortti_binary() { return binary_dir() / "client" / "kortti"; }

fs::path pki_dir() {
  const fs::path dir = binary_dir() / "tests" / "pki";
  if (fs::exists(dir / "people.tsv")) return dir;
  // Outside ctest (which makes it once as a fixture): make it here, once.
  fs::create_directories(binary_dir() / "tests");
  const int lock = ::open((binary_dir() / "tests" / "pki.lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ::flock(lock, LOCK_EX);
  if (!fs::exists(dir / "people.tsv")) {
    auto r = run({(source_dir() / "tests/fixtures/make-pki.sh").string(), dir.string()});
    if (r.status != 0) throw std::runtime_error("make-pki.sh failed: " + r.err);
  }
  ::flock(lock, LOCK_UN);
  ::close(lock);
  return dir;
}

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "kortti-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  if (std::getenv("KORTTI_KEEP_TMP") != nullptr) return;
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

namespace {

std::vector<std::string> environment(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : extra) merged[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : merged) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Starts argv[0] (looked up in PATH) with extra environment; `actions` set up
// its descriptors. Throws when it cannot start.
pid_t start_process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                    const posix_spawn_file_actions_t& actions) {
  std::vector<std::string> args = argv;
  auto cargs = c_strings(args);
  auto envs = environment(env);
  auto cenv = c_strings(envs);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, cargs[0], &actions, nullptr, cargs.data(), cenv.data());
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

// A background process whose output goes to `log`.
pid_t spawn_logged(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                   const fs::path& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  try {
    const pid_t pid = start_process(argv, env, actions);
    posix_spawn_file_actions_destroy(&actions);
    return pid;
  } catch (...) {
    posix_spawn_file_actions_destroy(&actions);
    throw;
  }
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

CommandResult run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                  const std::string& input, const std::map<int, fs::path>& fds) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  for (const auto& [fd, path] : fds) posix_spawn_file_actions_addopen(&actions, fd, path.c_str(), O_RDONLY, 0);
  pid_t pid = -1;
  std::string failure;
  try {
    pid = start_process(argv, env, actions);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (!failure.empty()) {
    ::close(in[1]);
    ::close(out[0]);
    ::close(err[0]);
    throw std::runtime_error(failure);
  }
  if (!input.empty()) (void)!::write(in[1], input.data(), input.size());
  ::close(in[1]);
  CommandResult result;
  pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (::poll(p, 2, -1) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || p[i].revents == 0) continue;
      char buf[8192];
      const ssize_t n = ::read(p[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(p[i].fd);
        p[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? result.out : result.err).append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.status = decode_status(status);
  return result;
}

void write_file(const fs::path& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
}

std::string read_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

Bytes read_bytes(const fs::path& path) {
  const std::string s = read_file(path);
  return Bytes(s.begin(), s.end());
}

void write_bytes(const fs::path& path, ByteView data) {
  write_file(path, std::string(reinterpret_cast<const char*>(data.data()), data.size()));
}

SoftHsm::SoftHsm(const fs::path& dir) : dir_(dir) {}

void SoftHsm::add_token(const std::string& label, const std::vector<std::string>& items) {
  std::vector<std::string> argv = {(source_dir() / "tests/fixtures/softhsm-token.sh").string(), dir_.string(), label};
  argv.insert(argv.end(), items.begin(), items.end());
  auto r = run(argv, {{"TOKEN_PIN", kPin}, {"TOKEN_SO_PIN", kSoPin}, {"KORTTI_PKI", pki_dir().string()}});
  if (r.status != 0) throw std::runtime_error("softhsm-token.sh failed: " + r.err + r.out);
}

CommandResult xmlsec_verify(const std::string& document, const std::string& signature_id) {
  TempDir tmp;
  write_file(tmp / "signed.xml", document);
  // Kanta's timestamp reference points at an ID attribute, which without a
  // DTD only exists when named.
  std::vector<std::string> argv = {"xmlsec1",      "--verify",
                                   "--id-attr:ID", "urn:hl7finland:signatureTimestamp",
                                   "--id-attr:Id", "http://www.w3.org/2000/09/xmldsig#:Signature"};
  for (const auto* pem : {"trust/g2-root.pem", "trust/g3-root.pem"})
    argv.insert(argv.end(), {"--trusted-pem", (pki_dir() / pem).string()});
  for (const auto* pem : {"ca/hc-rsa.pem", "ca/hc-ec.pem"})
    argv.insert(argv.end(), {"--untrusted-pem", (pki_dir() / pem).string()});
  if (!signature_id.empty()) argv.insert(argv.end(), {"--node-id", signature_id});
  argv.push_back((tmp / "signed.xml").string());
  return run(argv);
}

CommandResult cms_verify(const Bytes& cms, const std::optional<Bytes>& content) {
  TempDir tmp;
  write_bytes(tmp / "sig.der", cms);
  // The issuing CAs too: a card holds only its own certificates, so a
  // signature may carry no chain.
  std::string store;
  for (const auto* pem : {"trust/g2-root.pem", "trust/g3-root.pem", "ca/hc-rsa.pem", "ca/hc-ec.pem"})
    store += read_file(pki_dir() / pem);
  write_file(tmp / "roots.pem", store);
  std::vector<std::string> argv = {"openssl",
                                   "cms",
                                   "-verify",
                                   "-cades",
                                   "-binary",
                                   "-inform",
                                   "DER",
                                   "-in",
                                   (tmp / "sig.der").string(),
                                   "-CAfile",
                                   (tmp / "roots.pem").string(),
                                   "-purpose",
                                   "any",
                                   "-out",
                                   (tmp / "content.bin").string()};
  if (content) {
    write_bytes(tmp / "data.bin", *content);
    argv.insert(argv.end(), {"-content", (tmp / "data.bin").string()});
  }
  CommandResult r = run(argv);
  if (r.status == 0) r.out = read_file(tmp / "content.bin");
  return r;
}

Bytes sign_like_a_token(const fs::path& key_pem, DigestAlgorithm alg, const Bytes& digest, bool pss) {
  BioPtr bio(BIO_new_file(key_pem.c_str(), "r"));
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) throw std::runtime_error("cannot read " + key_pem.string());
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(key.get(), nullptr));
  EVP_PKEY_sign_init(ctx.get());
  if (EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_RSA) {
    EVP_PKEY_CTX_set_rsa_padding(ctx.get(), pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING);
    if (pss) EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST);
  }
  EVP_PKEY_CTX_set_signature_md(ctx.get(), evp_md(alg));
  std::size_t len = 0;
  EVP_PKEY_sign(ctx.get(), nullptr, &len, digest.data(), digest.size());
  Bytes sig(len);
  if (EVP_PKEY_sign(ctx.get(), sig.data(), &len, digest.data(), digest.size()) != 1)
    throw std::runtime_error("signing with " + key_pem.string() + " failed");
  sig.resize(len);
  return sig;
}

namespace {

// The test programs' view of the daemons they run (see set_problem_reporter).
std::mutex registry_mutex;
std::function<void(const std::string&)> problem_reporter;
std::set<const Daemon*> live_daemons;

}  // namespace

Daemon::Daemon(DaemonOptions options) : socket_(options.socket.value_or(dir_ / "korttid.sock")) {
  std::string modules;
  for (const auto& m : options.modules) modules += (modules.empty() ? "\"" : ", \"") + m + "\"";
  std::ostringstream text;
  text << "[ipc]\nsocket = \"" << socket() << "\"\nsocket_mode = \"0666\"\n"
       << options.ipc << "\n"
       << "[pkcs11]\nmodules = [" << modules << "]\n"
       << "[pcsc]\nenabled = " << (options.pcsc ? "true" : "false") << "\n"
       << "[session]\n"
       << options.session << "\n"
       << "[log]\nlevel = \"" << options.log_level << "\"\n"
       << "[audit]\nfile = \"" << options.audit_file.value_or(dir_ / "audit.log").string() << "\"\n"
       << "[trust]\nanchors = \"" << (pki_dir() / "trust").string() << "\"\n"
       << "intermediates = \"" << (pki_dir() / "intermediates").string() << "\"\n"
       << options.trust << "\n"
       << "[revocation]\n"
       << options.revocation << "\n"
       << "[registry]\ndatabase = \"" << registry().string() << "\"\n"
       << options.registry << "\n"
       << options.extra << "\n";
  write_file(config(), text.str());

  const fs::path notify = dir_ / "notify.sock";
  notify_fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  notify.string().copy(addr.sun_path, sizeof addr.sun_path - 1);
  if (::bind(notify_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("bind notify");
  options.env["NOTIFY_SOCKET"] = notify.string();

  pid_ = spawn_logged({korttid_binary().string(), "--config", config().string()}, options.env, dir_ / "korttid.log");
  if (options.wait_ready && !wait_notify("READY=1", std::chrono::seconds(30))) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    throw std::runtime_error("korttid did not become ready; its log:\n" + this->log());
  }
  std::lock_guard lock(registry_mutex);
  live_daemons.insert(this);
}

namespace {

void report_problem(const std::string& problem) {
  std::function<void(const std::string&)> reporter;
  {
    std::lock_guard lock(registry_mutex);
    reporter = problem_reporter;
  }
  if (reporter)
    reporter(problem);
  else
    std::cerr << "korttid problem: " << problem << "\n";
}

std::string tail(const std::string& text, std::size_t bytes) {
  return text.size() <= bytes ? text : "..." + text.substr(text.size() - bytes);
}

}  // namespace

void set_problem_reporter(std::function<void(const std::string&)> reporter) {
  std::lock_guard lock(registry_mutex);
  problem_reporter = std::move(reporter);
}

std::string sanitizer_reports(const std::string& log) {
  static const char* const kMarkers[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                         "runtime error:", "WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer"};
  std::string found;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);)
    for (const char* marker : kMarkers)
      if (line.find(marker) != std::string::npos) {
        found += line + "\n";
        break;
      }
  return found;
}

void for_each_daemon_log(const std::function<void(const std::string&)>& fn) {
  std::vector<const Daemon*> daemons;
  {
    std::lock_guard lock(registry_mutex);
    daemons.assign(live_daemons.begin(), live_daemons.end());
  }
  for (const Daemon* d : daemons) fn(d->log());
}

Daemon::~Daemon() {
  {
    std::lock_guard lock(registry_mutex);
    live_daemons.erase(this);
  }
  const bool was_running = running();
  const bool died_unseen = !was_running && !status_seen_;
  const int status = was_running ? stop(SIGTERM, std::chrono::seconds(10)) : status_.value_or(-1);
  if (running()) stop(SIGKILL);
  if (notify_fd_ >= 0) ::close(notify_fd_);
  const std::string log = this->log();
  if (died_unseen)
    report_problem("korttid exited on its own with status " + std::to_string(status) + "; its log:\n" +
                   tail(log, 4000));
  else if (was_running && status != 0)
    report_problem("korttid did not stop cleanly on SIGTERM (status " + std::to_string(status) + "); its log:\n" +
                   tail(log, 4000));
  if (const std::string reports = sanitizer_reports(log); !reports.empty())
    report_problem("sanitizer reports in korttid's log:\n" + reports + "the log:\n" + tail(log, 8000));
}

std::string Daemon::log() const { return read_file(dir_ / "korttid.log"); }

bool Daemon::running() {
  if (status_) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = decode_status(status);
    return false;
  }
  return r == 0;
}

void Daemon::signal(int signo) const { ::kill(pid_, signo); }

std::optional<int> Daemon::exit_status(std::chrono::seconds timeout) {
  status_seen_ = true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status_;
}

int Daemon::stop(int signo, std::chrono::seconds timeout) {
  status_seen_ = true;
  if (!running()) return status_.value_or(-1);
  ::kill(pid_, signo);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      status_ = -1;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return *status_;
}

bool Daemon::wait_notify(const std::string& what, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !running()) return false;
    pollfd p{notify_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 200))) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(notify_fd_, buf, sizeof buf, 0);
    if (n > 0 && std::string(buf, static_cast<std::size_t>(n)).find(what) != std::string::npos) return true;
  }
}

namespace {

bool tcp_port_free(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

void reap(pid_t& pid, int signo) {
  if (pid <= 0) return;
  ::kill(pid, signo);
  int status = 0;
  ::waitpid(pid, &status, 0);
  pid = -1;
}

}  // namespace

Pcscd::Pcscd() {
  ::setenv("PCSCLITE_CSOCK_NAME", socket().c_str(), 1);
  fs::create_directories(dir_ / "conf");
  for (int attempt = 0; attempt < 8; ++attempt) {
    // An even base port in a range of our own; vpcd takes it and the next.
    base_port_ = 20000 + 2 * static_cast<int>((::getpid() * 7919 + attempt * 104729) % 15000);
    if (!tcp_port_free(base_port_) || !tcp_port_free(base_port_ + 1)) continue;
    char conf[256];
    std::snprintf(conf, sizeof conf,
                  "FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME   /dev/null:0x%X\n"
                  "LIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID    0x%X\n",
                  base_port_, base_port_);
    write_file(dir_ / "conf" / "vpcd", conf);
    if (launch()) return;
    kill();
  }
  throw std::runtime_error("cannot start a private pcscd; its log:\n" + log());
}

Pcscd::~Pcscd() { kill(); }

bool Pcscd::launch() {
  pid_ = spawn_logged({"systemd-socket-activate", "-l", socket(), "pcscd", "-f", "-c", (dir_ / "conf").string()}, {},
                      dir_ / "pcscd.log");
  // Ready when both readers are listed (opensc-tool asks through the socket,
  // which also starts pcscd).
  for (int i = 0; i < 100; ++i) {
    auto r = run({"opensc-tool", "-l"}, env());
    if (r.out.find("Virtual PCD 00 01") != std::string::npos && !tcp_port_free(base_port_ + 1)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

void Pcscd::kill() { reap(pid_, SIGKILL); }

fs::path registry_fixture_dir() { return source_dir() / "tests" / "fixtures" / "registry"; }

CommandResult registry_command(const Daemon& daemon, const std::vector<std::string>& args) {
  std::vector<std::string> argv{korttid_binary().string(), "--config", daemon.config().string(), "registry"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv);
}

void import_registry_fixture(const Daemon& daemon) {
  const fs::path dir = registry_fixture_dir();
  std::vector<std::vector<std::string>> commands{{"import", (dir / "professionals.jsonl").string()}};
  for (const char* set : {"rights", "restriction_targets", "medicine_classes"})
    commands.push_back({"import-codes", set, (dir / (std::string(set) + ".csv")).string()});
  for (const auto& c : commands) {
    auto r = registry_command(daemon, c);
    if (r.status != 0) throw std::runtime_error("korttid registry " + c[0] + " failed: " + r.err);
  }
}

namespace {

// Whether a TCP socket listens on `port`, from /proc/net: a probing
// connection would wedge OpenSSL 3.0's single-threaded responder, which then
// waits for a request on it.
bool listening(int port) {
  char local[16];
  std::snprintf(local, sizeof local, ":%04X ", port);
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    while (std::getline(in, line)) {
      // sl local_address rem_address st ...; st 0A is LISTEN.
      std::istringstream fields(line);
      std::string sl, address, remote, state;
      fields >> sl >> address >> remote >> state;
      if (state == "0A" && (address + " ").find(local) != std::string::npos) return true;
    }
  }
  return false;
}

}  // namespace

OcspResponder::OcspResponder(const std::string& ca, int port, std::optional<fs::path> index, std::string signer)
    : port_(port != 0       ? port
            : ca == "hc-ec" ? kEcPort
                            : kRsaPort) {
  const fs::path pki = pki_dir();
  if (signer.empty()) signer = ca;
  if (listening(port_)) throw std::runtime_error("something already listens on port " + std::to_string(port_));
  // OpenSSL 3.0's responder takes a port, not an address: it listens on all
  // interfaces, and the tests ask it on 127.0.0.1 only.
  pid_ = spawn_logged({"openssl", "ocsp", "-index", index.value_or(pki / "ca" / ca / "index.txt").string(), "-port",
                       std::to_string(port_), "-rsigner", (pki / "ocsp" / (signer + ".pem")).string(), "-rkey",
                       (pki / "ocsp" / (signer + ".key")).string(), "-CA", (pki / "ca" / (ca + ".pem")).string(),
                       "-nmin", "10", "-ignore_err"},
                      {}, dir_ / "ocsp.log");
  for (int i = 0; i < 100 && !listening(port_); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (!listening(port_)) {
    stop();
    throw std::runtime_error("openssl ocsp did not listen on " + std::to_string(port_) + ":\n" + log());
  }
}

OcspResponder::~OcspResponder() { stop(); }

void OcspResponder::stop() { reap(pid_, SIGTERM); }

std::string OcspResponder::log() const { return read_file(dir_ / "ocsp.log"); }

int OcspResponder::requests() const {
  const std::string text = log();
  int n = 0;
  for (auto at = text.find("Received request"); at != std::string::npos; at = text.find("Received request", at + 1))
    ++n;
  return n;
}

int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

void Pcscd::start() {
  if (!launch()) throw std::runtime_error("pcscd did not come back; its log:\n" + log());
}

std::string Pcscd::log() const { return read_file(dir_ / "pcscd.log"); }

VirtualCard::VirtualCard(const Pcscd& pcscd, CardOptions options) {
  guid_ = options.guid;
  if (guid_.empty()) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%024x%08x", 0x6b6f72u,
                  static_cast<unsigned>(std::hash<std::string>{}(options.person) % 0xFFFFFF) * 16 +
                      static_cast<unsigned>(options.reader));
    guid_ = buf;
  }
  const fs::path person = pki_dir() / "people" / options.person;
  std::vector<std::string> argv = {(binary_dir() / "tests/vcard/kortti-vcard").string(),
                                   "--port",
                                   std::to_string(pcscd.port(options.reader)),
                                   "--guid",
                                   guid_,
                                   "--auth-cert",
                                   (person / "auth.pem").string(),
                                   "--auth-key",
                                   (person / "auth.key").string(),
                                   "--sign-cert",
                                   (person / "sign.pem").string(),
                                   "--sign-key",
                                   (person / "sign.key").string(),
                                   "--events",
                                   (dir_ / "events").string()};
  argv.insert(argv.end(), options.args.begin(), options.args.end());
  pid_ = spawn_logged(argv, {{"VCARD_PIN", options.pin}}, dir_ / "vcard.log");
}

VirtualCard::~VirtualCard() { pull(); }

void VirtualCard::pull() { reap(pid_, SIGKILL); }

std::string VirtualCard::token_id() const { return "piv_II-" + guid_.substr(16); }

std::string VirtualCard::log() const { return read_file(dir_ / "vcard.log"); }

// Empty until the card has seen something: read_file of a missing file.
std::string VirtualCard::events() const { return read_file(dir_ / "events"); }

int VirtualCard::apdus(std::uint8_t ins, Apdu phase) const {
  std::string text = events();
  // A line the card is still writing is not an event yet.
  text.erase(text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1);
  char wanted[4];
  std::snprintf(wanted, sizeof wanted, "%02X", ins);
  int count = 0;
  bool in_chain = false;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string what, code, flag;
    fields >> what >> code >> flag;
    if (what == "insert" || what == "reset") in_chain = false;
    if (code != wanted) continue;
    const bool chained = flag == "chained";
    if (what == "begin") {
      if (phase == Apdu::begun && !in_chain) ++count;
      in_chain = chained;
    } else if (what == "end" && phase == Apdu::answered && !chained) {
      ++count;
    }
  }
  return count;
}

bool VirtualCard::wait_for_apdu(std::uint8_t ins, int nth, Apdu phase, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (apdus(ins, phase) >= nth) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

namespace {

std::vector<std::string> scheme_options(const std::string& flag, const std::string& scheme) {
  if (scheme != "pss") return {};
  return {flag, "rsa_padding_mode:pss", flag, "rsa_pss_saltlen:digest"};
}

fs::path public_key_pem(const TempDir& dir, const Bytes& certificate_der) {
  write_bytes(dir / "cert.der", certificate_der);
  auto r = run({"openssl", "x509", "-inform", "DER", "-in", (dir / "cert.der").string(), "-pubkey", "-noout"});
  if (r.status != 0) throw std::runtime_error("openssl x509: " + r.err);
  write_file(dir / "pub.pem", r.out);
  return dir / "pub.pem";
}

}  // namespace

bool openssl_verify_digest(const Bytes& certificate_der, const Bytes& digest, const Bytes& signature,
                           const std::string& digest_algorithm, const std::string& scheme) {
  TempDir dir;
  const fs::path pub = public_key_pem(dir, certificate_der);
  write_bytes(dir / "digest.bin", digest);
  write_bytes(dir / "sig.bin", signature);
  std::vector<std::string> argv = {"openssl",  "pkeyutl",
                                   "-verify",  "-pubin",
                                   "-inkey",   pub.string(),
                                   "-in",      (dir / "digest.bin").string(),
                                   "-sigfile", (dir / "sig.bin").string()};
  if (scheme != "ecdsa") argv.insert(argv.end(), {"-pkeyopt", "digest:" + digest_algorithm});
  for (auto& o : scheme_options("-pkeyopt", scheme)) argv.push_back(o);
  auto r = run(argv);
  return r.status == 0 && r.out.find("Signature Verified Successfully") != std::string::npos;
}

bool openssl_verify_data(const Bytes& certificate_der, const Bytes& data, const Bytes& signature,
                         const std::string& digest_algorithm, const std::string& scheme) {
  TempDir dir;
  const fs::path pub = public_key_pem(dir, certificate_der);
  write_bytes(dir / "data.bin", data);
  write_bytes(dir / "sig.bin", signature);
  std::vector<std::string> argv = {"openssl",    "dgst",       "-" + digest_algorithm,    "-verify",
                                   pub.string(), "-signature", (dir / "sig.bin").string()};
  for (auto& o : scheme_options("-sigopt", scheme)) argv.push_back(o);
  argv.push_back((dir / "data.bin").string());
  auto r = run(argv);
  return r.status == 0 && r.out.find("Verified OK") != std::string::npos;
}

Bytes random_bytes(std::size_t n) {
  Bytes b(n);
  RAND_bytes(b.data(), static_cast<int>(n));
  return b;
}

std::string str(const Json& value) { return to_std(value.get_ref<const WipingString&>()); }

Bytes b64(const Json& value) {
  auto bytes = base64_decode(str(value));
  if (!bytes) throw std::runtime_error("not base64: " + str(value));
  return *bytes;
}

std::unique_ptr<client::Client> connect_as(const std::string& socket, uid_t uid, gid_t gid,
                                           const std::vector<gid_t>& groups) {
  // The other user must be able to reach the socket (its mode is the test
  // daemon's 0666): let anyone through the folder it is in.
  fs::permissions(fs::path(socket).parent_path(), fs::perms::others_exec | fs::perms::group_exec,
                  fs::perm_options::add);
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) throw std::runtime_error("socketpair");
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pair[0]);
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) _exit(2);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socket.copy(addr.sun_path, sizeof addr.sun_path - 1);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) _exit(3);
    char byte = 'x';
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
    _exit(::sendmsg(pair[1], &msg, 0) == 1 ? 0 : 4);
  }
  ::close(pair[1]);
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = ::recvmsg(pair[0], &msg, MSG_CMSG_CLOEXEC);
  ::close(pair[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (n != 1 || cmsg == nullptr || cmsg->cmsg_type != SCM_RIGHTS)
    throw std::runtime_error("connect_as: the child could not connect as uid " + std::to_string(uid) +
                             " (exit status " + std::to_string(WEXITSTATUS(status)) + ")");
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
  return client::Client::adopt(fd);
}

}  // namespace kortti::test
