#pragma once

// Internal to pcsc/ (docs/architecture.md, Layering).
#if !defined(KORTTI_COMPONENT_PCSC) && !defined(KORTTI_WHITE_BOX)
#error "pcsc/aside.hpp is internal to pcsc/"
#endif

// PC/SC work that may wait on another program, done aside: pcscd's
// SCardConnect, even a direct one, waits for as long as another program
// holds a transaction on the reader's card (a PIN typed on its pad), and
// korttid's monitor and token workers must not wait with it. The work runs
// on a detached thread of its own; the caller takes its answer if it comes
// by a deadline. The thread counts among those korttid waits for before its
// exit-time cleanup (Worker::all_ended): one that logged as spdlog's logger
// was destroyed would crash korttid's exit. Work still waiting then ends
// with korttid, which exits without that cleanup.

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "common/worker.hpp"

namespace kortti::pcsc {

template <class T>
class Aside {
 public:
  // Starts `work` on a thread named `name`; `late` is called there with the
  // answer if the caller gave up waiting for it before it came.
  Aside(const char* name, std::function<T()> work, std::function<void(T)> late = {})
      : shared_(std::make_shared<Shared>()) {
    // Uncounted with the lambda if no thread starts.
    auto counted = std::make_unique<CountedThread>();
    std::thread([name, work = std::move(work), late = std::move(late), shared = shared_,
                 counted = std::move(counted)]() mutable {
      pthread_setname_np(pthread_self(), name);
      T answer = work();
      bool abandoned = false;
      {
        std::lock_guard lock(shared->mutex);
        shared->answer = answer;
        abandoned = shared->abandoned;
      }
      shared->ready.notify_all();
      if (abandoned && late) late(std::move(answer));
      // What they hold (the monitor) goes before the count.
      work = nullptr;
      late = nullptr;
      counted.reset();
    }).detach();
  }

  // The answer if it came by `deadline`; nullopt, and the work's answer
  // goes to `late`, if not.
  std::optional<T> wait_until(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(shared_->mutex);
    if (shared_->ready.wait_until(lock, deadline, [this] { return shared_->answer.has_value(); }))
      return shared_->answer;
    shared_->abandoned = true;
    return std::nullopt;
  }

 private:
  struct Shared {
    std::mutex mutex;
    std::condition_variable ready;
    std::optional<T> answer;
    bool abandoned = false;
  };
  std::shared_ptr<Shared> shared_;
};

}  // namespace kortti::pcsc
