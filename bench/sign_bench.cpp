// Sign latency and throughput: korttid (over its socket) against direct libp11
// calls in this process, on the same SoftHSM2 token, RSA-2048 and P-256, with
// 1, 8 and 32 concurrent clients. Both sides run in the same process run; the
// table at the end prints korttid's numbers as ratios of the direct ones.
//
// Goals (issue 2): p50 latency <= 1.10x direct; throughput at 32 clients
// >= 0.85x direct multi-threaded.

#include <benchmark/benchmark.h>
#include <libp11.h>
#include <openssl/evp.h>

#include <cstdio>
#include <mutex>
#include <thread>

#include "bench/recorder.hpp"
#include "bench/token.hpp"
#include "common/encoding.hpp"
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

void sign_direct(EVP_PKEY* key) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(key, nullptr);
  unsigned char sig[512];
  std::size_t len = sizeof sig;
  if (EVP_PKEY_sign_init(ctx) != 1 || EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1 ||
      EVP_PKEY_sign(ctx, sig, &len, g_setup->digest.data(), g_setup->digest.size()) != 1)
    throw std::runtime_error("direct EVP_PKEY_sign failed");
  EVP_PKEY_CTX_free(ctx);
}

std::string series_name(const std::string& side, const std::string& key, int clients) {
  return side + "/" + key + "/clients:" + std::to_string(clients);
}

void BM_Direct(benchmark::State& state, std::string key) {
  EVP_PKEY* pkey = g_setup->direct_keys.at(key);
  Sampler sampler(series_name("direct", key, state.threads()));
  for (auto _ : state) sampler.time([&] { sign_direct(pkey); });
  state.SetItemsProcessed(state.iterations());
}

// libp11 used the way korttid uses a card: one operation at a time per token.
std::mutex g_token_mutex;
void BM_DirectSerialised(benchmark::State& state, std::string key) {
  EVP_PKEY* pkey = g_setup->direct_keys.at(key);
  Sampler sampler(series_name("serialised", key, state.threads()));
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
  const Json params = {{"cert_id", wstr(g_setup->cert_ids.at(key))},
                       {"digest_algorithm", "sha256"},
                       {"digest", wstr(base64_encode(g_setup->digest))}};
  Sampler sampler(series_name("korttid", key, state.threads()));
  for (auto _ : state) sampler.time([&] { client->call("sign.digest", params); });
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
  std::printf("\ngoals: p50 ratio <= 1.10 at 1 client; ops/s ratio at 32 clients >= 0.85 (vs dir)\n");
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
    }
  }
  ThroughputReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  print_table();
  benchmark::Shutdown();
  g_setup.reset();  // stops korttid
  return 0;
}
