// Event latency: from the virtual card connecting to vpcd (the card going in)
// to the `card inserted` event at a subscribed korttid client, next to a bare
// SCardGetStatusChange watcher on the same reader in the same run. Both are
// measured from the same moment, so their difference is what korttid adds.
//
// Goal (issue 3): korttid adds at most 50 ms (p99) over the bare watcher.
// pcscd itself polls the virtual reader about three times a second, so the
// absolute latencies of both sides spread over ~0-400 ms.

#include <PCSC/winscard.h>
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <optional>
#include <thread>

#include "bench/recorder.hpp"
#include "tests/support/support.hpp"

namespace {

using namespace kortti;
using namespace kortti::bench;
using namespace std::chrono_literals;

// Sees card presence change on one reader with nothing in between.
class BareWatcher {
 public:
  explicit BareWatcher(std::string reader) : reader_(std::move(reader)) {
    thread_ = std::thread([this] { run(); });
  }
  ~BareWatcher() {
    stopping_ = true;
    SCardCancel(context_);
    thread_.join();
    SCardReleaseContext(context_);
  }
  // The time presence last became `present`, waiting up to 5 s for it.
  std::optional<Clock::time_point> wait(bool present, Clock::time_point after) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, 5s, [&] { return present_ == present && when_ >= after; })) return std::nullopt;
    return when_;
  }

 private:
  void run() {
    SCardEstablishContext(SCARD_SCOPE_SYSTEM, nullptr, nullptr, &context_);
    SCARD_READERSTATE state{};
    state.szReader = reader_.c_str();
    state.dwCurrentState = SCARD_STATE_UNAWARE;
    while (!stopping_) {
      if (SCardGetStatusChange(context_, INFINITE, &state, 1) != SCARD_S_SUCCESS) continue;
      const auto now = Clock::now();
      {
        std::lock_guard lock(mutex_);
        present_ = (state.dwEventState & SCARD_STATE_PRESENT) != 0;
        when_ = now;
      }
      changed_.notify_all();
      state.dwCurrentState = state.dwEventState & ~static_cast<DWORD>(SCARD_STATE_CHANGED);
    }
  }

  std::string reader_;
  SCARDCONTEXT context_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool present_ = false;
  Clock::time_point when_{};
};

struct Setup {
  test::Pcscd pcscd;
  std::unique_ptr<test::Daemon> daemon;
  std::unique_ptr<client::Client> subscriber;
  std::unique_ptr<BareWatcher> bare;
};
std::unique_ptr<Setup> g;

void BM_CardInsertedEvent(benchmark::State& state) {
  for (auto _ : state) {
    const auto t0 = Clock::now();
    std::optional<Clock::time_point> seen;
    {
      test::VirtualCard card(g->pcscd, test::CardOptions{});
      for (;;) {
        auto e = g->subscriber->next_event(5000ms);
        if (!e) break;
        if ((*e)["params"]["topic"] == "card" && (*e)["params"]["type"] == "inserted") {
          seen = Clock::now();
          break;
        }
      }
      const auto bare = g->bare->wait(true, t0);
      if (!seen || !bare) {
        state.SkipWithError("an insertion was not seen");
        return;
      }
      const double kd = std::chrono::duration<double, std::micro>(*seen - t0).count();
      const double bw = std::chrono::duration<double, std::micro>(*bare - t0).count();
      recorder().add("korttid", {kd});
      recorder().add("bare", {bw});
      recorder().add("added", {kd - bw});
      state.SetIterationTime(kd / 1e6);
    }  // the card is pulled here
    // Wait until both have seen it go before the next insertion.
    for (;;) {
      auto e = g->subscriber->next_event(5000ms);
      if (!e || ((*e)["params"]["topic"] == "card" && (*e)["params"]["type"] == "removed")) break;
    }
    g->bare->wait(false, t0);
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  g = std::make_unique<Setup>();
  test::DaemonOptions options;
  options.modules = {};  // the event path only: PC/SC, no PKCS#11 module
  options.pcsc = true;
  options.log_level = "info";
  options.env = g->pcscd.env();
  g->daemon = std::make_unique<test::Daemon>(options);
  g->subscriber = g->daemon->connect();
  g->subscriber->call("events.subscribe", {{"topics", Json::array({"card"})}});
  g->bare = std::make_unique<BareWatcher>("Virtual PCD 00 00");
  const int insertions =
      std::getenv("KORTTI_BENCH_INSERTIONS") ? std::atoi(std::getenv("KORTTI_BENCH_INSERTIONS")) : 40;
  benchmark::RegisterBenchmark("card_inserted_event", BM_CardInsertedEvent)->Iterations(insertions)->UseManualTime();
  benchmark::RunSpecifiedBenchmarks();
  const auto& kd = recorder().get("korttid");
  const auto& bw = recorder().get("bare");
  const auto& added = recorder().get("added");
  std::printf("\nevent latency: virtual card connects -> card inserted seen; same run (%zu insertions)\n\n",
              kd.latencies_us.size());
  std::printf("%-28s %10s %10s %10s\n", "", "p50", "p99", "max");
  auto row = [](const char* name, const Series& s) {
    const double max = *std::max_element(s.latencies_us.begin(), s.latencies_us.end());
    std::printf("%-28s %8.1fms %8.1fms %8.1fms\n", name, s.percentile(50) / 1000, s.percentile(99) / 1000, max / 1000);
  };
  row("bare SCardGetStatusChange", bw);
  row("korttid event at client", kd);
  row("added by korttid", added);
  std::printf("\ngoal: added by korttid <= 50 ms at p99\n");
  benchmark::Shutdown();
  g.reset();
  return 0;
}
