#pragma once

// Wall-clock spans and their medians, for the benchmarks that time whole
// steps themselves.

#include <algorithm>
#include <chrono>
#include <vector>

namespace kortti::bench {

using Clock = std::chrono::steady_clock;

inline double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

inline double us_since(Clock::time_point start) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

// The middle sample (the upper of two); 0 with none.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace kortti::bench
