#include "common/worker.hpp"

#include <openssl/crypto.h>
#include <pthread.h>

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

namespace kortti {

namespace asio = boost::asio;

namespace {

// The Worker threads still running. Never destroyed: a thread may end after
// static destructors have begun.
struct Running {
  std::mutex mutex;
  std::condition_variable ended;
  std::size_t threads = 0;
};

Running& running() {
  static auto* r = new Running;
  return *r;
}

}  // namespace

struct Worker::State {
  std::string name;
  Limits limits;
  std::atomic<std::size_t> jobs{0};
  std::atomic<std::size_t> bytes{0};
  struct Share {
    std::size_t jobs = 0;
    std::size_t bytes = 0;
  };
  std::mutex owners_mutex;
  std::map<uid_t, Share> shares;  // queued or running, by owner; guarded by owners_mutex
  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard{io.get_executor()};
  std::promise<void> finished;
  std::shared_future<void> finished_future = finished.get_future().share();

  // A job admitted with `bytes` for `owner` has run (or thrown).
  void uncount(std::size_t job_bytes, Owner owner) {
    jobs -= 1;
    bytes -= job_bytes;
    if (!owner) return;
    const std::lock_guard lock(owners_mutex);
    auto it = shares.find(*owner);
    if (it == shares.end()) return;
    it->second.jobs -= 1;
    it->second.bytes -= job_bytes;
    if (it->second.jobs == 0) shares.erase(it);
  }
};

Worker::Worker(std::string name) : Worker(std::move(name), Limits{}) {}

CountedThread::CountedThread() {
  const std::lock_guard lock(running().mutex);
  ++running().threads;
}

CountedThread::~CountedThread() {
  Running& r = running();
  const std::lock_guard lock(r.mutex);
  --r.threads;
  r.ended.notify_all();
}

Worker::Worker(std::string name, Limits limits) : state_(std::make_shared<State>()) {
  state_->name = name;
  state_->limits = limits;
  // Uncounted with the lambda if no thread starts.
  auto counted = std::make_unique<CountedThread>();
  std::thread thread([state = state_, name = std::move(name), counted = std::move(counted)]() mutable {
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
    // OpenSSL keeps state per thread (error queue, random generators): give
    // it back now, not at a process exit that may come while others run.
    OPENSSL_thread_stop();
    state->finished.set_value();
    state.reset();
    counted.reset();
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

Worker::Admission Worker::admit(std::size_t bytes, Owner owner) {
  const Limits& l = state_->limits;
  const std::size_t jobs = state_->jobs.load();
  if (jobs > 0 &&
      ((l.max_jobs != 0 && jobs >= l.max_jobs) || (l.max_bytes != 0 && state_->bytes.load() + bytes > l.max_bytes)))
    return Admission::queue_full;
  if (owner) {
    // As for the whole queue, an owner's first job always gets in.
    const std::lock_guard lock(state_->owners_mutex);
    State::Share& mine = state_->shares[*owner];
    if (mine.jobs > 0 && ((l.max_jobs_per_owner != 0 && mine.jobs >= l.max_jobs_per_owner) ||
                          (l.max_bytes_per_owner != 0 && mine.bytes + bytes > l.max_bytes_per_owner)))
      return Admission::share_full;
    mine.jobs += 1;
    mine.bytes += bytes;
  }
  state_->jobs += 1;
  state_->bytes += bytes;
  return Admission::admitted;
}

void Worker::post_admitted(std::function<Delivery()> job, std::size_t bytes, Owner owner) {
  asio::post(state_->io, [state = state_.get(), job = std::move(job), bytes, owner]() mutable {
    Delivery deliver;
    {
      // Uncounted however the job ends: one that throws (a bug; the thread
      // logs it and goes on) must not keep its place, or its owner's share,
      // for as long as korttid runs.
      struct Uncount {
        State* state;
        std::size_t bytes;
        Owner owner;
        ~Uncount() { state->uncount(bytes, owner); }
      } uncount{state, bytes, owner};
      deliver = job();
      job = nullptr;  // what it held goes now, not when the queue is next used
    }
    if (deliver) deliver();
  });
}

const std::string& Worker::name() const noexcept { return state_->name; }

Error queue_full(const Worker& worker, Worker::Admission why, Worker::Owner owner) {
  if (why == Worker::Admission::share_full && owner)
    return Error(Errc::service_unavailable, "uid " + std::to_string(*owner) + " has its share of korttid's " +
                                                worker.name() + " worker's queue waiting; try again shortly");
  return Error(Errc::service_unavailable,
               "korttid's " + worker.name() + " worker has too much work queued; try again shortly");
}

Error dropped_before_running() {
  spdlog::debug("a queued job was dropped before it ran: its deadline passed or its client left");
  return Error(Errc::token_busy, "dropped before it ran: the request's deadline passed or its client left");
}

asio::io_context::executor_type Worker::executor() { return state_->io.get_executor(); }

bool Worker::stop_and_wait(std::chrono::milliseconds timeout) {
  asio::post(state_->io, [state = state_.get()] { state->guard.reset(); });
  return state_->finished_future.wait_for(timeout) == std::future_status::ready;
}

bool Worker::all_ended(std::chrono::milliseconds timeout) {
  Running& r = running();
  std::unique_lock lock(r.mutex);
  return r.ended.wait_for(lock, timeout, [&] { return r.threads == 0; });
}

}  // namespace kortti
