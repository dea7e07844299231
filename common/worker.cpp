#include "common/worker.hpp"

#include <pthread.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <optional>
#include <thread>

namespace kortti {

namespace asio = boost::asio;

struct Worker::State {
  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard{io.get_executor()};
  std::promise<void> finished;
  std::shared_future<void> finished_future = finished.get_future().share();
};

Worker::Worker(std::string name) : state_(std::make_shared<State>()) {
  std::thread thread([state = state_, name = std::move(name)] {
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    // Jobs catch their own errors (capture); one that escapes is a bug, and
    // it must cost its own request, not the thread and everyone queued here.
    for (;;) {
      try {
        state->io.run();
        break;
      } catch (const std::exception& e) {
        (void)internal_error("worker " + name, e.what());
      } catch (...) {
        (void)internal_error("worker " + name, "an exception of unknown type");
      }
    }
    state->finished.set_value();
  });
  thread.detach();
}

// Handlers posted here capture the state by plain pointer: they only ever
// run on the worker thread, which owns a reference while it runs. A strong
// capture would leak the state (and its queue) in a cycle when the thread has
// already ended and the handler is never run.
Worker::~Worker() {
  asio::post(state_->io, [state = state_.get()] { state->guard.reset(); });
}

void Worker::post(std::function<void()> job) { asio::post(state_->io, std::move(job)); }

asio::io_context::executor_type Worker::executor() { return state_->io.get_executor(); }

bool Worker::stop_and_wait(std::chrono::milliseconds timeout) {
  asio::post(state_->io, [state = state_.get()] { state->guard.reset(); });
  return state_->finished_future.wait_for(timeout) == std::future_status::ready;
}

}  // namespace kortti
