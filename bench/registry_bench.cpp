// The Valvira registry, against bare SQLite in the same run.
//
// 1. Import: `korttid registry import` of N synthetic professionals (JSON
//    Lines: parse, validate, store) versus the sqlite3 shell importing the
//    same rows, already in the stored form, as CSV into the same schema.
//    Goal (issue 4): at most 2x the shell's time.
// 2. Decision latency: what the daemon's policy worker does for one
//    policy.check by registration number (registry lookup + the rules),
//    versus a bare indexed SELECT of the same record with a prepared
//    statement. Goal: p99 at most 3x. The same check through korttid's
//    socket is printed alongside, for what a client sees.
//
//   KORTTI_BENCH_PROFESSIONALS (default 500000), KORTTI_BENCH_LOOKUPS (20000)

#include <benchmark/benchmark.h>
#include <sqlite3.h>

#include <cstdio>
#include <fstream>
#include <random>

#include "bench/recorder.hpp"
#include "ipc/convert.hpp"
#include "policy/policy.hpp"
#include "tests/support/support.hpp"

namespace {

using namespace kortti;
using namespace kortti::bench;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::atoi(v) : fallback;
}

std::string number_of(int i) { return std::to_string(10000000 + i); }

// A plausible record: one or two rights, now and then a restriction.
policy::Professional synthetic(int i) {
  policy::Professional p;
  p.registration_number = number_of(i);
  p.prescriber_id = i % 3 == 0 ? std::to_string(900000 + i) : "";
  p.given_name = "Etunimi" + std::to_string(i % 997);
  p.family_name = "Sukunimi" + std::to_string(i % 7919);
  p.satu = std::to_string(900000000 + i) + "X";
  p.hetu = "010180-9" + std::to_string(100 + i % 900).substr(1) + "X";
  p.rights.push_back({"001", {"2001-06-01", std::nullopt}, ""});
  if (i % 4 == 0) p.rights.push_back({"034", {"2010-01-01", std::nullopt}, ""});
  if (i % 50 == 0) p.restrictions.push_back({"10", "ATC", "N02A", std::nullopt, {"2020-01-01", std::nullopt}, ""});
  if (i % 10 == 0) p.specialties.push_back("Yleislääketiede");
  return p;
}

std::string csv_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

constexpr const char* kSchema =
    "CREATE TABLE professional(registration_number TEXT PRIMARY KEY, satu TEXT, record TEXT NOT NULL) WITHOUT ROWID;\n"
    "CREATE INDEX professional_satu ON professional(satu);\n";

struct Files {
  test::TempDir dir;
  int count = 0;
  std::filesystem::path jsonl() const { return dir / "extract.jsonl"; }
  std::filesystem::path csv() const { return dir / "extract.csv"; }
};

void write_files(Files& f) {
  std::ofstream jsonl(f.jsonl()), csv(f.csv());
  for (int i = 0; i < f.count; ++i) {
    const std::string record = to_std(ipc::to_json(synthetic(i)).dump());
    jsonl << record << '\n';
    const auto p = synthetic(i);
    csv << p.registration_number << ',' << p.satu << ',' << csv_quote(record) << '\n';
  }
}

double seconds_of(const std::function<void()>& fn) {
  const auto t0 = Clock::now();
  fn();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct ImportTimes {
  std::vector<double> korttid, shell;
};

// Each repetition imports into fresh files, korttid and the shell in turn.
ImportTimes time_imports(const Files& f, int repetitions) {
  ImportTimes t;
  for (int r = 0; r < repetitions; ++r) {
    test::TempDir work;
    test::write_file(work / "korttid.toml", "[registry]\ndatabase = \"" + (work / "korttid.sqlite").string() + "\"\n");
    test::write_file(work / "shell.sql", std::string("PRAGMA journal_mode=WAL;\n") + kSchema + ".import --csv " +
                                             f.csv().string() + " professional\n");
    t.korttid.push_back(seconds_of([&] {
      auto out = test::run({test::korttid_binary().string(), "--config", (work / "korttid.toml").string(), "registry",
                            "import", f.jsonl().string()});
      if (out.status != 0) throw std::runtime_error("korttid registry import: " + out.err);
    }));
    t.shell.push_back(seconds_of([&] {
      auto out = test::run(
          {"sh", "-c", "sqlite3 '" + (work / "shell.sqlite").string() + "' < '" + (work / "shell.sql").string() + "'"});
      if (out.status != 0) throw std::runtime_error("sqlite3: " + out.err);
    }));
    std::printf("  import %d: korttid %.2f s, sqlite3 shell %.2f s\n", r + 1, t.korttid.back(), t.shell.back());
  }
  return t;
}

// The bare side: one prepared statement, the record's text fetched.
class BareLookup {
 public:
  explicit BareLookup(const std::string& path) {
    sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_prepare_v2(db_, "SELECT record FROM professional WHERE registration_number = ?", -1, &stmt_, nullptr);
  }
  ~BareLookup() {
    sqlite3_finalize(stmt_);
    sqlite3_close(db_);
  }
  std::size_t find(const std::string& number) {
    sqlite3_bind_text(stmt_, 1, number.data(), static_cast<int>(number.size()), SQLITE_STATIC);
    std::size_t n = 0;
    if (sqlite3_step(stmt_) == SQLITE_ROW) n = static_cast<std::size_t>(sqlite3_column_bytes(stmt_, 0));
    sqlite3_reset(stmt_);
    return n;
  }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

struct Setup {
  Files files;
  std::string database;
  std::unique_ptr<BareLookup> bare;
  std::unique_ptr<policy::Registry> registry;
  std::unique_ptr<test::Daemon> daemon;
  std::unique_ptr<client::Client> client;
  policy::Rules rules;
  std::vector<std::string> numbers;
};
std::unique_ptr<Setup> g;

policy::Context prescription() {
  policy::Context c;
  c.atc_codes = {"J01CA04"};
  return c;
}

// Bare lookup and decision alternate per iteration, on the same numbers.
void BM_Lookup(benchmark::State& state) {
  Sampler bare("bare"), decision("decision");
  std::size_t i = 0, sink = 0;
  const auto context = prescription();
  for (auto _ : state) {
    const std::string& n = g->numbers[i++ % g->numbers.size()];
    bare.time([&] { sink += g->bare->find(n); });
    decision.time([&] {
      const auto now = std::chrono::system_clock::now();
      const auto lookup = g->registry->by_registration_number(n);
      const auto d = policy::evaluate(g->rules, policy::Action::sign_prescription, std::nullopt, std::nullopt, lookup,
                                      context, now, "2026-11-22");
      sink += d.allowed ? 1 : 0;
    });
  }
  benchmark::DoNotOptimize(sink);
}

void BM_SocketCheck(benchmark::State& state) {
  Sampler socket("socket");
  std::size_t i = 0;
  for (auto _ : state) {
    const std::string& n = g->numbers[i++ % g->numbers.size()];
    socket.time([&] {
      benchmark::DoNotOptimize(
          g->client->call("policy.check", {{"registration_number", wstr(n)},
                                           {"action", "sign.prescription"},
                                           {"context", {{"atc_codes", Json::array({"J01CA04"})}}}}));
    });
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  g = std::make_unique<Setup>();
  g->files.count = env_int("KORTTI_BENCH_PROFESSIONALS", 500000);
  const int lookups = env_int("KORTTI_BENCH_LOOKUPS", 20000);
  std::printf("writing %d synthetic professionals as JSON Lines and CSV...\n", g->files.count);
  write_files(g->files);

  const ImportTimes imports = time_imports(g->files, 3);

  // The decision side reads the daemon's own file.
  test::DaemonOptions options;
  options.modules = {};
  options.log_level = "warn";
  options.extra = "[policy.prescription]\nrights = [\"001\", \"034\"]\n";
  g->daemon = std::make_unique<test::Daemon>(options);
  auto r = test::registry_command(*g->daemon, {"import", g->files.jsonl().string()});
  if (r.status != 0) throw std::runtime_error(r.err);
  g->database = g->daemon->registry().string();
  g->bare = std::make_unique<BareLookup>(g->database);
  g->registry = std::make_unique<policy::Registry>(g->database, true);
  g->client = g->daemon->connect();
  g->rules.prescription.rights = {"001", "034"};
  std::mt19937 rng(4);
  std::uniform_int_distribution<int> pick(0, g->files.count - 1);
  for (int i = 0; i < 4096; ++i) g->numbers.push_back(number_of(pick(rng)));

  benchmark::RegisterBenchmark("lookup_and_decision", BM_Lookup)->Iterations(lookups);
  benchmark::RegisterBenchmark("policy_check_socket", BM_SocketCheck)->Iterations(lookups / 4);
  benchmark::RunSpecifiedBenchmarks();

  const double korttid = median(imports.korttid), shell = median(imports.shell);
  std::printf("\nregistry: %d professionals; same run\n\n", g->files.count);
  std::printf("%-44s %10s %10s\n", "import (median of 3)", "seconds", "ratio");
  std::printf("%-44s %10.2f %10s\n", "sqlite3 shell, CSV .import (baseline)", shell, "1.00x");
  std::printf("%-44s %10.2f %9.2fx\n", "korttid registry import, JSON Lines", korttid, korttid / shell);
  std::printf("goal: <= 2x\n\n");

  const auto& bare = recorder().get("bare");
  const auto& decision = recorder().get("decision");
  const auto& socket = recorder().get("socket");
  std::printf("%-44s %10s %10s %10s %10s\n", "per check (us)", "p50", "p99", "p50 x", "p99 x");
  auto row = [&](const char* name, const Series& s) {
    std::printf("%-44s %10.1f %10.1f %9.2fx %9.2fx\n", name, s.percentile(50), s.percentile(99),
                s.percentile(50) / bare.percentile(50), s.percentile(99) / bare.percentile(99));
  };
  row("bare indexed SELECT (baseline)", bare);
  row("registry lookup + rules (policy worker)", decision);
  row("policy.check through the socket", socket);
  std::printf("goal: registry lookup + rules <= 3x at p99\n");
  benchmark::Shutdown();
  g.reset();
  return 0;
}
