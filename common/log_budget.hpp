#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <map>

namespace kortti {

// The request and connection lines one uid may put in the log: of korttid's
// socket (ipc/) and of the TLS tunnels' listeners (tls/), each its own
// budget. A client that floods korttid with requests or connections would
// otherwise flood the journal, and
// journald's own rate limit would then drop everyone's lines, the audit
// trail's too where it goes to the log. Past a uid's budget for a window
// its lines are counted instead, and one line says how many were left out
// (when that uid's next line is due, or another window of anyone's ends).
// Audit lines never pass through here. Used on the io thread only.
class LogBudget {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kWindow{10};

  // `per_second` 0: no budget.
  explicit LogBudget(std::size_t per_second) : per_window_(per_second * kWindow.count()) {}

  // Whether `uid`'s next line may be written now.
  [[nodiscard]] bool allow(uid_t uid, Clock::time_point now = Clock::now());

 private:
  struct Window {
    Clock::time_point began;
    std::size_t written = 0;
    std::size_t left_out = 0;
  };
  // Logs what ended windows left out, and forgets them.
  void close_windows(Clock::time_point now);

  std::size_t per_window_;
  std::map<uid_t, Window> windows_;
  Clock::time_point last_sweep_{};
};

}  // namespace kortti
