#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>

#include <boost/asio/io_context.hpp>

#include "common/error.hpp"

namespace kortti {

// One thread that runs posted jobs in order. A token's card operations run on
// its own Worker, so they are serialised per card and never block the socket
// loop or another card.
//
// A job may be stuck in a card call when its Worker is dropped (the card was
// pulled mid-command). The destructor therefore never joins: the thread keeps
// the shared state alive, finishes what it is doing and exits on its own.
class Worker {
 public:
  // Bounds on what may wait in the queue (0: none). A job that would pass
  // one is refused, so a worker busy with one client's costly work cannot
  // make korttid hold every later request's document in memory.
  // The `_per_owner` bounds are one owner's (a uid's) share of the queue,
  // so that one user's flood leaves room for everyone else's work.
  struct Limits {
    std::size_t max_jobs = 0;
    std::size_t max_bytes = 0;
    std::size_t max_jobs_per_owner = 0;
    std::size_t max_bytes_per_owner = 0;
  };
  // Whose job it is; none: nobody's share (korttid's own work).
  using Owner = std::optional<uid_t>;
  explicit Worker(std::string name);
  Worker(std::string name, Limits limits);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void post(std::function<void()> job);
  // Counts a job of `bytes` by `owner` in the queue if the limits allow it (a
  // single job is always let into an empty queue) and says which one did
  // not; post_admitted() queues it and uncounts it when it has run.
  enum class Admission { admitted, queue_full, share_full };
  [[nodiscard]] Admission admit(std::size_t bytes, Owner owner = std::nullopt);
  // A job returns how its result is delivered (or nothing), which runs once
  // the job no longer counts: a client that has its answer and asks again
  // at once must not find its earlier job still taking its share.
  using Delivery = std::function<void()>;
  void post_admitted(std::function<Delivery()> job, std::size_t bytes, Owner owner = std::nullopt);
  [[nodiscard]] const std::string& name() const noexcept;
  [[nodiscard]] boost::asio::io_context::executor_type executor();

  // Lets queued jobs finish, then waits up to `timeout` for the thread to end.
  // Returns false if it is still busy (stuck in a call) when time runs out.
  bool stop_and_wait(std::chrono::milliseconds timeout);

  // Waits up to `timeout` for every Worker thread in the process, and every
  // CountedThread, to end, its last access to shared state included. main()
  // asks before it returns: exit-time cleanup (OpenSSL's atexit handler,
  // static destructors) must not run under a thread that is still ending.
  // False: one is still running.
  [[nodiscard]] static bool all_ended(std::chrono::milliseconds timeout);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Counts a thread that is no Worker's (one started detached, as pcsc/'s
// probes are) among those Worker::all_ended() waits for: made before the
// thread starts, destroyed as the thread's last act.
class CountedThread {
 public:
  CountedThread();
  ~CountedThread();
  CountedThread(const CountedThread&) = delete;
  CountedThread& operator=(const CountedThread&) = delete;
};

// What a queued job is to the queue: the request's stop token (its deadline
// passed, or its client left) and the bytes it holds while it waits.
// (A constructor, not an aggregate: GCC 12 destroys an aggregate temporary
// in a co_await expression twice; common/task.hpp.)
struct Ticket {
  Ticket() = default;
  explicit Ticket(std::stop_token request_stop, std::size_t request_bytes = 0, Worker::Owner request_owner = {})
      : stop(std::move(request_stop)), bytes(request_bytes), owner(request_owner) {}
  std::stop_token stop;
  std::size_t bytes = 0;
  Worker::Owner owner;  // the uid whose request it is
};

// The error of a job the worker's queue (or `owner`'s share of it) has no
// room for.
Error queue_full(const Worker& worker, Worker::Admission why = Worker::Admission::queue_full,
                 Worker::Owner owner = std::nullopt);
// The error of a job dropped before it ran (nobody waits for its result).
Error dropped_before_running();

}  // namespace kortti
