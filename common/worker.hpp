#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "common/result.hpp"

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
  struct Limits {
    std::size_t max_jobs = 0;
    std::size_t max_bytes = 0;
  };
  explicit Worker(std::string name);
  Worker(std::string name, Limits limits);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void post(std::function<void()> job);
  // Counts a job of `bytes` in the queue if the limits allow it (a single job
  // is always let into an empty queue); post_admitted() queues it and uncounts
  // it when it has run.
  [[nodiscard]] bool admit(std::size_t bytes);
  void post_admitted(std::function<void()> job, std::size_t bytes);
  [[nodiscard]] const std::string& name() const noexcept;
  [[nodiscard]] boost::asio::io_context::executor_type executor();

  // Lets queued jobs finish, then waits up to `timeout` for the thread to end.
  // Returns false if it is still busy (stuck in a call) when time runs out.
  bool stop_and_wait(std::chrono::milliseconds timeout);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// What a queued job is to the queue: the request's stop token (its deadline
// passed, or its client left) and the bytes it holds while it waits.
struct Ticket {
  std::stop_token stop;
  std::size_t bytes = 0;
};

// The error of a job the worker's queue has no room for.
Error queue_full(const Worker& worker);
// The error of a job dropped before it ran (nobody waits for its result).
Error dropped_before_running();

// Runs `fn` on `worker` and hands its result (or the error it threw) to
// `done` on `io`. `keep_alive` holds what `fn` uses until it has run. A job
// whose ticket has been stopped by the time its turn comes is not run; one the
// queue has no room for is refused at once (service_unavailable).
template <class T, class Fn>
void run_then_post(Worker& worker, boost::asio::io_context& io, std::shared_ptr<const void> keep_alive, Fn fn,
                   Completion<T> done, Ticket ticket = {}) {
  if (!worker.admit(ticket.bytes)) {
    boost::asio::post(io, [done = std::move(done), error = queue_full(worker)]() mutable { done(std::move(error)); });
    return;
  }
  worker.post_admitted(
      [&io, keep = std::move(keep_alive), fn = std::move(fn), done = std::move(done),
       stop = std::move(ticket.stop)]() mutable {
        Result<T> result = stop.stop_requested() ? Result<T>(dropped_before_running()) : capture(fn);
        boost::asio::post(io,
                          [done = std::move(done), result = std::move(result)]() mutable { done(std::move(result)); });
      },
      ticket.bytes);
}

}  // namespace kortti
