#pragma once

// Asynchronous work as C++20 coroutines on Boost.Asio. Everything that waits
// for a worker thread awaits it through on() below, so an operation reads top
// to bottom on the io thread: each co_await leaves it, the work runs where it
// belongs, and the operation resumes on the io thread with the value or the
// Error that the work threw.

#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without including it

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/result.hpp"
#include "common/worker.hpp"

// GCC 12 (Debian 12's compiler) destroys twice a lambda or a braced
// aggregate temporary that is created inside a co_await expression
// (`co_await f([p] {...})`, `co_await f(Agg{x})`): name it first, then pass
// the name. Values returned by functions are safe. Nor may a conditional
// expression have a co_await in one arm (`x ? co_await f() : T()`): its
// temporary is destroyed twice too; write an if. The ASan build catches a
// slip as a heap-use-after-free.

namespace kortti {

template <class T = void>
using Task = boost::asio::awaitable<T>;

namespace detail {

// The awaiting coroutine's continuation as a copyable Completion that resumes
// it on its own executor (the io thread), whichever thread calls it.
template <class T, class Handler>
Completion<T> resumer(Handler handler) {
  auto held = std::make_shared<Handler>(std::move(handler));
  auto executor = boost::asio::get_associated_executor(*held);
  return [held, executor](Result<T> result) {
    boost::asio::post(executor, [held, result = std::move(result)]() mutable { (*held)(std::move(result)); });
  };
}

template <class T>
T value_or_throw(Result<T>&& result) {
  if (!result.ok()) throw result.error();
  return std::move(result).value();
}

}  // namespace detail

// Runs `fn` on `worker` and resumes the caller with what it returned, or
// throws what it threw (anything but a kortti::Error becomes internal_error).
// A job the worker's queue has no room for is refused at once
// (service_unavailable); one whose ticket is stopped before its turn is not
// run (token_busy): nobody waits for it any more.
template <class Fn>
Task<std::invoke_result_t<Fn&>> on(Worker& worker, Ticket ticket, Fn fn) {
  using T = std::invoke_result_t<Fn&>;
  Result<T> result = co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(Result<T>)>(
      [&](auto handler) {
        Completion<T> resume = detail::resumer<T>(std::move(handler));
        const Worker::Admission admission = worker.admit(ticket.bytes, ticket.owner);
        if (admission != Worker::Admission::admitted) return resume(queue_full(worker, admission, ticket.owner));
        worker.post_admitted(
            [fn = std::move(fn), stop = ticket.stop, resume]() mutable -> Worker::Delivery {
              auto answer = std::make_shared<Result<T>>(stop.stop_requested() ? Result<T>(dropped_before_running())
                                                                              : capture(fn));
              return [resume, answer] { resume(std::move(*answer)); };
            },
            ticket.bytes, ticket.owner);
      },
      boost::asio::use_awaitable);
  co_return detail::value_or_throw(std::move(result));
}

// Awaits an operation that reports once through a Completion: `start` is
// called with it. For the token service, whose operations can also be ended
// from outside (a card pulled mid-command).
template <class T, class Start>
Task<T> completion(Start start) {
  Result<T> result = co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(Result<T>)>(
      [&](auto handler) { start(detail::resumer<T>(std::move(handler))); }, boost::asio::use_awaitable);
  co_return detail::value_or_throw(std::move(result));
}

// Work that starts at once and is awaited later, so that it runs while the
// awaiting operation does something else (an audit line made durable while
// the card signs). `start` is called at construction with the Completion the
// work reports to, from any thread; result() may be awaited once.
template <class T>
class Started {
 public:
  template <class Start>
  explicit Started(Start start) : state_(std::make_shared<State>()) {
    start(Completion<T>([state = state_](Result<T> r) { state->settle(std::move(r)); }));
  }

  Task<T> result() {
    return completion<T>([state = state_](Completion<T> resume) { state->wait(std::move(resume)); });
  }

 private:
  struct State {
    std::mutex mutex;
    std::optional<Result<T>> value;
    Completion<T> waiter;

    void settle(Result<T> r) {
      Completion<T> resume;
      {
        std::lock_guard lock(mutex);
        if (!waiter) return void(value.emplace(std::move(r)));
        resume = std::move(waiter);
      }
      resume(std::move(r));
    }
    void wait(Completion<T> resume) {
      std::optional<Result<T>> ready;
      {
        std::lock_guard lock(mutex);
        if (!value) return void(waiter = std::move(resume));
        ready = std::move(value);
      }
      resume(std::move(*ready));
    }
  };
  std::shared_ptr<State> state_;
};

// The outcome of `task` as a value: for the steps whose failure is itself
// recorded (an audit line) before it is passed on.
template <class T>
Task<Result<T>> attempt(Task<T> task) {
  try {
    co_return Result<T>(co_await std::move(task));
  } catch (const Error& e) {
    co_return Result<T>(e);
  }
}

}  // namespace kortti
