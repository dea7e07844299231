#include "common/log_budget.hpp"

#include <spdlog/spdlog.h>

namespace kortti {

namespace {

void warn(uid_t uid, std::size_t left_out, std::chrono::steady_clock::duration over) {
  spdlog::warn("uid={}: {} request and connection log lines left out in {} s (ipc.log_lines_per_second_per_uid)", uid,
               left_out, std::chrono::duration_cast<std::chrono::seconds>(over).count());
}

}  // namespace

LogBudget::LogBudget(std::size_t per_second, Report report)
    : per_window_(per_second * kWindow.count()), report_(report ? std::move(report) : Report(warn)) {}

void LogBudget::report(uid_t uid, std::size_t left_out, Clock::duration over) const {
  if (left_out > 0) report_(uid, left_out, over);
}

bool LogBudget::allow(uid_t uid, Clock::time_point now) {
  if (per_window_ == 0) return true;
  if (now - last_sweep_ >= kWindow) {
    close_windows(now);
    last_sweep_ = now;
  }
  auto [it, fresh] = windows_.try_emplace(uid, Window{now});
  Window& w = it->second;
  if (!fresh && now - w.began >= kWindow) {
    report(uid, w.left_out, now - w.began);
    w = Window{now};
  }
  if (w.written < per_window_) {
    ++w.written;
    return true;
  }
  ++w.left_out;
  return false;
}

void LogBudget::flush(Clock::time_point now) {
  for (const auto& [uid, w] : windows_) report(uid, w.left_out, now - w.began);
  windows_.clear();
}

void LogBudget::close_windows(Clock::time_point now) {
  for (auto it = windows_.begin(); it != windows_.end();) {
    const Window& w = it->second;
    if (now - w.began < kWindow) {
      ++it;
      continue;
    }
    report(it->first, w.left_out, now - w.began);
    it = windows_.erase(it);
  }
}

}  // namespace kortti
