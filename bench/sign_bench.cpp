// Sign latency and throughput: korttid (over its socket) against direct libp11
// calls in this process, on the same SoftHSM2 token, RSA-2048 and P-256, with
// 1, 8 and 32 concurrent clients. Both sides run in the same process run; the
// table at the end prints korttid's numbers as ratios of the direct ones.
// Throughput is by wall clock: every signature of a run over the time from
// its first start to its last end (bench/recorder.hpp).
//
// korttid is driven two ways: through the client library (kd) and by a raw
// socket client that writes one line and reads one (raw). The floor rows are
// what no daemon can beat: a bare Unix-socket round trip of the same message
// sizes to an echo thread, and korttid's system.hello.
//
// Goals (issue 11): RSA-2048 sign.digest p50 <= 1.10x direct at one client;
// korttid's added latency at one client (P-256, raw minus direct) <= 4x the
// bare round trip; at 32 clients, throughput >= 0.85x the serialised direct
// baseline for RSA-2048 and P-256.

#include <benchmark/benchmark.h>
#include <libp11.h>
#include <openssl/evp.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "bench/recorder.hpp"
#include "bench/token.hpp"
#include "common/encoding.hpp"
#include "common/openssl.hpp"
#include "tests/support/support.hpp"

namespace {

using namespace kortti;
using namespace kortti::bench;
namespace fs = std::filesystem;

constexpr int kClients[] = {1, 8, 32};
constexpr const char* kKeys[] = {"rsa2048", "p256"};
int g_ops = 1600;            // signatures per (side, key, clients) configuration
constexpr int kRepeats = 8;  // each configuration in slices, shuffled with all others

struct Setup {
  test::TempDir dir;
  std::unique_ptr<test::Daemon> daemon;
  std::map<std::string, std::string> cert_ids;  // key -> cert_id
  PKCS11_CTX* ctx = nullptr;
  PKCS11_SLOT* slots = nullptr;
  unsigned int nslots = 0;
  std::map<std::string, EVP_PKEY*> direct_keys;
  Bytes digest = test::random_bytes(32);
};
std::unique_ptr<Setup> g_setup;

void setup() {
  g_setup = std::make_unique<Setup>();
  make_token(g_setup->dir.path(), {{"01", "-newkey rsa:2048"}, {"02", "-newkey ec -pkeyopt ec_paramgen_curve:P-256"}});
  const std::string conf = (g_setup->dir / "softhsm2.conf").string();
  ::setenv("SOFTHSM2_CONF", conf.c_str(), 1);

  test::DaemonOptions options;
  options.env["SOFTHSM2_CONF"] = conf;
  options.log_level = "info";  // as shipped: one log line per request
  // KORTTI_BENCH_AUDIT=FILE puts the audit trail elsewhere (e.g. on a tmpfs,
  // to see what its fdatasync per signature costs on this disk).
  if (const char* audit = std::getenv("KORTTI_BENCH_AUDIT")) options.audit_file = audit;
  options.ipc = "max_connections = 256\nmax_connections_per_uid = 256\nmax_pin_requests_per_uid = 64\n";
  g_setup->daemon = std::make_unique<test::Daemon>(options);
  auto c = g_setup->daemon->connect();
  const Json tokens = c->call("tokens.list");
  const std::string token = test::str(tokens.at(0)["token_id"]);
  c->call("session.login", {{"token_id", wstr(token)}, {"pin", test::kPin}});
  g_setup->cert_ids["rsa2048"] = token + "/01";
  g_setup->cert_ids["p256"] = token + "/02";

  // The direct side: libp11 in this process, logged in once.
  g_setup->ctx = PKCS11_CTX_new();
  if (PKCS11_CTX_load(g_setup->ctx, test::SoftHsm::kModule) != 0) throw std::runtime_error("PKCS11_CTX_load");
  PKCS11_enumerate_slots(g_setup->ctx, &g_setup->slots, &g_setup->nslots);
  PKCS11_SLOT* slot = PKCS11_find_token(g_setup->ctx, g_setup->slots, g_setup->nslots);
  if (slot == nullptr || PKCS11_login(slot, 0, test::kPin) != 0) throw std::runtime_error("libp11 login");
  PKCS11_KEY* keys = nullptr;
  unsigned int nkeys = 0;
  PKCS11_enumerate_keys(slot->token, &keys, &nkeys);
  for (unsigned int i = 0; i < nkeys; ++i) {
    const std::string id = hex_encode(ByteView(keys[i].id, keys[i].id_len));
    g_setup->direct_keys[id == "01" ? "rsa2048" : "p256"] = PKCS11_get_private_key(&keys[i]);
  }
}

// A client that is nothing but the socket: one request line out, one answer
// line in, no JSON parsing (the answer is checked for an error member only).
class RawClient {
 public:
  explicit RawClient(const std::string& path) : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("raw connect to " + path);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  ~RawClient() { ::close(fd_); }

  // Sends `line` (ending in \n) and returns the answer line.
  const std::string& call(const std::string& line) {
    for (std::size_t sent = 0; sent < line.size();) {
      const ssize_t n = ::write(fd_, line.data() + sent, line.size() - sent);
      if (n <= 0) throw std::runtime_error("raw write");
      sent += static_cast<std::size_t>(n);
    }
    answer_.clear();
    for (;;) {
      if (auto nl = pending_.find('\n'); nl != std::string::npos) {
        answer_.assign(pending_, 0, nl + 1);
        pending_.erase(0, nl + 1);
        break;
      }
      char buf[8192];
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) throw std::runtime_error("raw read");
      pending_.append(buf, static_cast<std::size_t>(n));
    }
    if (answer_.find("\"error\"") != std::string::npos) throw std::runtime_error("korttid: " + answer_);
    return answer_;
  }

 private:
  int fd_;
  std::string pending_;
  std::string answer_;
};

// The floor: an in-process peer that answers each line with a fixed answer
// of the size korttid's would have, over a Unix socket pair.
class EchoPeer {
 public:
  explicit EchoPeer(std::string answer) : answer_(std::move(answer)) {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_) != 0) throw std::runtime_error("socketpair");
    thread_ = std::thread([this] { serve(); });
  }
  EchoPeer(const EchoPeer&) = delete;
  EchoPeer& operator=(const EchoPeer&) = delete;
  ~EchoPeer() {
    ::shutdown(fds_[0], SHUT_RDWR);
    thread_.join();
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  void call(const std::string& line) {
    if (::write(fds_[0], line.data(), line.size()) != static_cast<ssize_t>(line.size()))
      throw std::runtime_error("echo write");
    std::size_t got = 0;
    char buf[8192];
    while (got < answer_.size()) {
      const ssize_t n = ::read(fds_[0], buf, sizeof buf);
      if (n <= 0) throw std::runtime_error("echo read");
      got += static_cast<std::size_t>(n);
    }
  }

 private:
  void serve() {
    char buf[8192];
    for (;;) {
      const ssize_t n = ::read(fds_[1], buf, sizeof buf);
      if (n <= 0) return;
      if (std::memchr(buf, '\n', static_cast<std::size_t>(n)) == nullptr) continue;
      if (::write(fds_[1], answer_.data(), answer_.size()) != static_cast<ssize_t>(answer_.size())) return;
    }
  }
  std::string answer_;
  int fds_[2] = {-1, -1};
  std::thread thread_;
};

std::string request_line(const std::string& method, const Json& params) {
  return to_std(Json{{"jsonrpc", "2.0"}, {"id", 1}, {"method", method}, {"params", params}}.dump()) + "\n";
}

Json sign_params(const std::string& key) {
  return {{"cert_id", wstr(g_setup->cert_ids.at(key))},
          {"digest_algorithm", "sha256"},
          {"digest", wstr(base64_encode(g_setup->digest))}};
}

void sign_direct(EVP_PKEY* key) {
  const EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(key, nullptr));
  unsigned char sig[512];
  std::size_t len = sizeof sig;
  if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1 || EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_sign(ctx.get(), sig, &len, g_setup->digest.data(), g_setup->digest.size()) != 1)
    throw std::runtime_error("direct EVP_PKEY_sign failed");
}

std::string series_name(const std::string& side, const std::string& key, int clients) {
  return side + "/" + key + "/clients:" + std::to_string(clients);
}

void BM_Direct(benchmark::State& state, std::string key) {
  EVP_PKEY* pkey = g_setup->direct_keys.at(key);
  Sampler sampler(series_name("direct", key, state.threads()), state.threads());
  for (auto _ : state) sampler.time([&] { sign_direct(pkey); });
  state.SetItemsProcessed(state.iterations());
}

// libp11 used the way korttid uses a card: one operation at a time per token.
std::mutex g_token_mutex;
void BM_DirectSerialised(benchmark::State& state, std::string key) {
  EVP_PKEY* pkey = g_setup->direct_keys.at(key);
  Sampler sampler(series_name("serialised", key, state.threads()), state.threads());
  for (auto _ : state) {
    sampler.time([&] {
      std::lock_guard lock(g_token_mutex);
      sign_direct(pkey);
    });
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Korttid(benchmark::State& state, std::string key) {
  auto client = g_setup->daemon->connect();
  const Json params = sign_params(key);
  Sampler sampler(series_name("korttid", key, state.threads()), state.threads());
  for (auto _ : state) sampler.time([&] { client->call("sign.digest", params); });
  state.SetItemsProcessed(state.iterations());
}

void BM_KorttidRaw(benchmark::State& state, std::string key) {
  RawClient client(g_setup->daemon->socket());
  const std::string line = request_line("sign.digest", sign_params(key));
  Sampler sampler(series_name("raw", key, state.threads()), state.threads());
  for (auto _ : state) sampler.time([&] { (void)client.call(line); });
  state.SetItemsProcessed(state.iterations());
}

// The floor rows, one client: the same bytes through a bare socket pair, and
// korttid's cheapest method.
void BM_Floor(benchmark::State& state, std::string key) {
  RawClient probe(g_setup->daemon->socket());
  const std::string line = request_line("sign.digest", sign_params(key));
  EchoPeer peer(probe.call(line));  // the answer korttid gives, byte for byte in size
  Sampler sampler(series_name("floor", key, state.threads()), state.threads());
  for (auto _ : state) sampler.time([&] { peer.call(line); });
  state.SetItemsProcessed(state.iterations());
}

void BM_Hello(benchmark::State& state) {
  RawClient client(g_setup->daemon->socket());
  const std::string line = request_line("system.hello", Json::object());
  Sampler sampler(series_name("hello", "any", state.threads()), state.threads());
  for (auto _ : state) sampler.time([&] { (void)client.call(line); });
  state.SetItemsProcessed(state.iterations());
}

void print_table() {
  std::printf("\nsign: korttid (kd) vs direct libp11 (dir), same SoftHSM2 token, same run; ratio = kd / dir.\n");
  std::printf("ser = libp11 with one signature at a time per token, as korttid drives a card.\n\n");
  std::printf("%-8s %7s | %8s %8s %6s | %8s %8s %6s | %9s %9s %6s | %9s %6s\n", "key", "clients", "p50 dir", "p50 kd",
              "ratio", "p99 dir", "p99 kd", "ratio", "ops/s dir", "ops/s kd", "ratio", "ops/s ser", "ratio");
  for (const char* key : kKeys) {
    for (int n : kClients) {
      if (!recorder().has(series_name("direct", key, n)) || !recorder().has(series_name("serialised", key, n)) ||
          !recorder().has(series_name("korttid", key, n)))
        continue;  // filtered out on the command line
      const auto& d = recorder().get(series_name("direct", key, n));
      const auto& s = recorder().get(series_name("serialised", key, n));
      const auto& k = recorder().get(series_name("korttid", key, n));
      std::printf("%-8s %7d | %6.0fus %6.0fus %5.2fx | %6.0fus %6.0fus %5.2fx | %9.0f %9.0f %5.2fx | %9.0f %5.2fx\n",
                  key, n, d.percentile(50), k.percentile(50), k.percentile(50) / d.percentile(50), d.percentile(99),
                  k.percentile(99), k.percentile(99) / d.percentile(99), d.throughput(), k.throughput(),
                  k.throughput() / d.throughput(), s.throughput(), k.throughput() / s.throughput());
    }
  }
  std::printf("\nkd is the client library; raw is a bare socket client (one line out, one in).\n");
  std::printf("%-8s %7s | %8s %8s %6s | %9s %9s %6s\n", "key", "clients", "p50 dir", "p50 raw", "ratio", "ops/s raw",
              "ops/s ser", "ratio");
  for (const char* key : kKeys)
    for (int n : kClients) {
      if (!recorder().has(series_name("raw", key, n)) || !recorder().has(series_name("direct", key, n)) ||
          !recorder().has(series_name("serialised", key, n)))
        continue;
      const auto& d = recorder().get(series_name("direct", key, n));
      const auto& s = recorder().get(series_name("serialised", key, n));
      const auto& r = recorder().get(series_name("raw", key, n));
      std::printf("%-8s %7d | %6.0fus %6.0fus %5.2fx | %9.0f %9.0f %5.2fx\n", key, n, d.percentile(50),
                  r.percentile(50), r.percentile(50) / d.percentile(50), r.throughput(), s.throughput(),
                  r.throughput() / s.throughput());
    }

  std::printf("\nthe floor, one client (p50): a bare Unix-socket round trip of the same bytes, system.hello,\n");
  std::printf("and korttid's added latency = raw sign.digest - direct.\n");
  const bool hello = recorder().has(series_name("hello", "any", 1));
  for (const char* key : kKeys) {
    if (!recorder().has(series_name("floor", key, 1)) || !recorder().has(series_name("raw", key, 1)) ||
        !recorder().has(series_name("direct", key, 1)))
      continue;
    const double floor = recorder().get(series_name("floor", key, 1)).percentile(50);
    const double added = recorder().get(series_name("raw", key, 1)).percentile(50) -
                         recorder().get(series_name("direct", key, 1)).percentile(50);
    std::printf("%-8s floor %6.1fus  hello %6.1fus  added %7.1fus = %5.2fx floor\n", key, floor,
                hello ? recorder().get(series_name("hello", "any", 1)).percentile(50) : 0.0, added, added / floor);
  }
  std::printf(
      "\ngoals: rsa2048 p50 kd/dir <= 1.10 at 1 client; p256 added <= 4x floor;\n"
      "       ops/s at 32 clients >= 0.85x ser for rsa2048 and p256\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (const char* ops = std::getenv("KORTTI_BENCH_OPS")) g_ops = std::max(64, std::atoi(ops));
  // The machine's speed drifts over seconds (shared CPUs); slices of both
  // sides are shuffled together so the drift falls on both alike.
  std::vector<char*> args(argv, argv + argc);
  std::string interleave = "--benchmark_enable_random_interleaving=true";
  args.push_back(interleave.data());
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  setup();
  for (const char* key : kKeys) {
    for (int n : kClients) {
      const auto per_thread = std::max(8, g_ops / kRepeats / n);
      benchmark::RegisterBenchmark(("direct/" + std::string(key)).c_str(), BM_Direct, std::string(key))
          ->Threads(n)
          ->Iterations(per_thread)
          ->Repetitions(kRepeats)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("serialised/" + std::string(key)).c_str(), BM_DirectSerialised, std::string(key))
          ->Threads(n)
          ->Iterations(per_thread)
          ->Repetitions(kRepeats)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("korttid/" + std::string(key)).c_str(), BM_Korttid, std::string(key))
          ->Threads(n)
          ->Iterations(per_thread)
          ->Repetitions(kRepeats)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("raw/" + std::string(key)).c_str(), BM_KorttidRaw, std::string(key))
          ->Threads(n)
          ->Iterations(per_thread)
          ->Repetitions(kRepeats)
          ->UseRealTime();
    }
    benchmark::RegisterBenchmark(("floor/" + std::string(key)).c_str(), BM_Floor, std::string(key))
        ->Iterations(std::max(64, g_ops / kRepeats))
        ->Repetitions(kRepeats)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark("hello/any", BM_Hello)
      ->Iterations(std::max(64, g_ops / kRepeats))
      ->Repetitions(kRepeats)
      ->UseRealTime();
  benchmark::RunSpecifiedBenchmarks();
  print_table();
  benchmark::Shutdown();
  g_setup.reset();  // stops korttid
  return 0;
}
