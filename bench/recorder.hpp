#pragma once

// Latency samples and wall-clock spans collected across threads, and the
// ratio tables the benchmarks print at the end of a run.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace kortti::bench {

using Clock = std::chrono::steady_clock;

struct Series {
  std::vector<double> latencies_us;
  std::vector<double> run_throughputs;  // items per second of each repetition

  [[nodiscard]] double percentile(double p) const {
    if (latencies_us.empty()) return 0;
    std::vector<double> v = latencies_us;
    const auto k = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
  }
  // The median over repetitions, which were interleaved with the other side's.
  [[nodiscard]] double throughput() const {
    if (run_throughputs.empty()) return 0;
    std::vector<double> v = run_throughputs;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }
};

// One Series per configuration; every repetition's threads add their
// samples when they finish, and the reporter adds each run's throughput.
class Recorder {
 public:
  void add(const std::string& name, const std::vector<double>& samples) {
    std::lock_guard lock(mutex_);
    Series& s = series_[name];
    s.latencies_us.insert(s.latencies_us.end(), samples.begin(), samples.end());
  }
  void add_throughput(const std::string& name, double items_per_second) {
    std::lock_guard lock(mutex_);
    series_[name].run_throughputs.push_back(items_per_second);
  }
  [[nodiscard]] const Series& get(const std::string& name) const { return series_.at(name); }
  [[nodiscard]] bool has(const std::string& name) const { return series_.count(name) != 0; }

 private:
  std::mutex mutex_;
  std::map<std::string, Series> series_;
};

inline Recorder& recorder() {
  static Recorder r;
  return r;
}

// Times one operation per iteration of a Google Benchmark loop and hands the
// samples to the recorder at the end.
class Sampler {
 public:
  explicit Sampler(std::string name) : name_(std::move(name)) { samples_.reserve(4096); }
  template <class Fn>
  void time(Fn&& fn) {
    const auto t0 = Clock::now();
    fn();
    samples_.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  ~Sampler() { recorder().add(name_, samples_); }

 private:
  std::string name_;
  std::vector<double> samples_;
};

// Passes every run to the console as usual and keeps its throughput.
class ThroughputReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) {
      if (run.run_type != Run::RT_Iteration) continue;
      auto it = run.counters.find("items_per_second");
      if (it != run.counters.end())
        recorder().add_throughput(run.run_name.function_name + "/clients:" + std::to_string(run.threads),
                                  it->second.value);
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace kortti::bench
