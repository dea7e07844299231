#pragma once

// Internal to ipc/ (docs/architecture.md, Layering); include ipc/ipc.hpp.
#if !defined(KORTTI_COMPONENT_IPC) && !defined(KORTTI_WHITE_BOX)
#error "ipc/pin_gate.hpp is internal to ipc/; include ipc/ipc.hpp"
#endif

#include <sys/types.h>

#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>

#include <boost/asio/io_context.hpp>

namespace kortti::ipc {

class Call;

// Requests that carry a PIN, per uid: at most `limit` of them run at once
// (their PINs then sit in the small locked heap every user shares); the rest
// wait in order, their PIN still in the request's wiped memory. So one uid
// cannot fill the locked heap and lock everyone else out of signing, and a
// burst of legitimate requests still gets through, only later. What waits
// holds its request (a document of up to the message limit): at most
// `max_waiting_bytes` of them per uid (one always may), beyond that 1060 at
// once.
class PinGate : public std::enable_shared_from_this<PinGate> {
 public:
  using Run = std::function<void(const std::shared_ptr<Call>&)>;
  PinGate(boost::asio::io_context& io, std::size_t limit, std::size_t max_waiting_bytes, Run run)
      : io_(io), limit_(limit), max_waiting_bytes_(max_waiting_bytes), run_(std::move(run)) {}

  void set_limit(std::size_t limit) { limit_ = limit; }
  // Runs `call` now if its uid has a free slot; else it waits for one.
  void admit(const std::shared_ptr<Call>& call);
  // A call that held a slot of `uid` is gone: the uid's next waiting call runs.
  void release(uid_t uid);
  [[nodiscard]] std::size_t running(uid_t uid) const;
  [[nodiscard]] std::size_t waiting(uid_t uid) const;

 private:
  struct Waiting {
    std::weak_ptr<Call> call;
    std::size_t bytes = 0;
  };
  struct PerUid {
    std::size_t running = 0;
    std::deque<Waiting> waiting;
    std::size_t waiting_bytes = 0;  // of every entry, answered or not, until it is taken off
  };
  void run_next(uid_t uid);

  boost::asio::io_context& io_;
  std::size_t limit_;
  std::size_t max_waiting_bytes_;
  Run run_;
  std::map<uid_t, PerUid> uids_;
};

}  // namespace kortti::ipc
