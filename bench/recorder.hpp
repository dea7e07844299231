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

#include "bench/timing.hpp"

namespace kortti::bench {

struct Series {
  std::vector<double> latencies_us;
  std::vector<double> run_throughputs;  // items per second of each repetition, by wall clock

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
  // One thread's part of a run: when it started and ended, and how many.
  // When all `threads` of the run have reported, its throughput is every
  // item over the wall-clock time from the first start to the last end.
  // (Google Benchmark's own items_per_second divides by the mean per-thread
  // time, which threads that finish early behind an unfair mutex inflate.)
  void add_span(const std::string& name, Clock::time_point start, Clock::time_point end, std::size_t items,
                int threads) {
    std::lock_guard lock(mutex_);
    Span& open = open_[name];
    if (open.parts == 0 || start < open.start) open.start = start;
    if (open.parts == 0 || end > open.end) open.end = end;
    open.items += items;
    if (++open.parts < threads) return;
    const double seconds = std::chrono::duration<double>(open.end - open.start).count();
    if (seconds > 0) series_[name].run_throughputs.push_back(static_cast<double>(open.items) / seconds);
    open_.erase(name);
  }
  [[nodiscard]] const Series& get(const std::string& name) const { return series_.at(name); }
  [[nodiscard]] bool has(const std::string& name) const { return series_.count(name) != 0; }

 private:
  struct Span {
    Clock::time_point start;
    Clock::time_point end;
    std::size_t items = 0;
    int parts = 0;  // threads that have reported
  };
  std::mutex mutex_;
  std::map<std::string, Series> series_;
  std::map<std::string, Span> open_;  // runs whose threads are still reporting
};

inline Recorder& recorder() {
  static Recorder r;
  return r;
}

// Times one operation per iteration of a Google Benchmark loop and hands the
// samples to the recorder at the end.
class Sampler {
 public:
  // `threads`: how many Samplers time the same run (benchmark::State::threads()).
  explicit Sampler(std::string name, int threads = 1) : name_(std::move(name)), threads_(threads) {
    samples_.reserve(4096);
  }
  template <class Fn>
  void time(Fn&& fn) {
    const auto t0 = Clock::now();
    fn();
    const auto t1 = Clock::now();
    if (samples_.empty()) first_ = t0;
    last_ = t1;
    samples_.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  ~Sampler() {
    recorder().add(name_, samples_);
    if (!samples_.empty()) recorder().add_span(name_, first_, last_, samples_.size(), threads_);
  }

 private:
  std::string name_;
  int threads_;
  std::vector<double> samples_;
  Clock::time_point first_;
  Clock::time_point last_;
};

}  // namespace kortti::bench
