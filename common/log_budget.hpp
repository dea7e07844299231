#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>

namespace kortti {

// The lines one uid may cause: the request and connection lines of
// korttid's socket (ipc/) and of the TLS tunnels' listeners (tls/), each
// its own budget. A client that floods korttid with requests or connections
// would otherwise flood the journal, and journald's own rate limit would
// then drop everyone's lines, the audit trail's too where it goes to the
// log. The audit lines of policy denials have one too (service/): any uid
// can ask for what the policy refuses, and a full disk would stop every
// signature. Past a uid's budget for a window its lines are counted
// instead, and the report says how many were left out (when that uid's
// next line is due, or another window of anyone's ends). Used on the io
// thread only.
class LogBudget {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kWindow{10};
  // `left_out` lines of `uid` over `over`; by default a warning in the log.
  using Report = std::function<void(uid_t uid, std::size_t left_out, Clock::duration over)>;

  // `per_second` 0: no budget.
  explicit LogBudget(std::size_t per_second, Report report = {});

  // Whether `uid`'s next line may be written now.
  [[nodiscard]] bool allow(uid_t uid, Clock::time_point now = Clock::now());
  // Reports what every window has left out so far, and forgets them:
  // korttid is stopping, and no later line would bring the count.
  void flush(Clock::time_point now = Clock::now());

 private:
  struct Window {
    Clock::time_point began;
    std::size_t written = 0;
    std::size_t left_out = 0;
  };
  // Reports what ended windows left out, and forgets them.
  void close_windows(Clock::time_point now);
  void report(uid_t uid, std::size_t left_out, Clock::duration over) const;

  std::size_t per_window_;
  Report report_;
  std::map<uid_t, Window> windows_;
  Clock::time_point last_sweep_{};
};

}  // namespace kortti
