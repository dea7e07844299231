#pragma once

#include <chrono>
#include <functional>
#include <memory>
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
  explicit Worker(std::string name);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void post(std::function<void()> job);
  [[nodiscard]] boost::asio::io_context::executor_type executor();

  // Lets queued jobs finish, then waits up to `timeout` for the thread to end.
  // Returns false if it is still busy (stuck in a call) when time runs out.
  bool stop_and_wait(std::chrono::milliseconds timeout);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Runs `fn` on `worker` and hands its result (or the error it threw) to
// `done` on `io`. `keep_alive` holds what `fn` uses until it has run.
template <class T, class Fn>
void run_then_post(Worker& worker, boost::asio::io_context& io, std::shared_ptr<const void> keep_alive, Fn fn,
                   Completion<T> done) {
  worker.post([&io, keep = std::move(keep_alive), fn = std::move(fn), done = std::move(done)]() mutable {
    Result<T> result = capture(fn);
    boost::asio::post(io, [done = std::move(done), result = std::move(result)]() mutable { done(std::move(result)); });
  });
}

}  // namespace kortti
