// The workers' queues: bounded, and a job whose request is over is not run.

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <stdexcept>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "common/task.hpp"

namespace kortti {
namespace {

namespace asio = boost::asio;

// Runs the io_context until `done` says so (bounded).
template <class Pred>
void run_until(asio::io_context& io, Pred done) {
  for (int i = 0; i < 500 && !done(); ++i) {
    io.run_for(std::chrono::milliseconds(10));
    io.restart();
  }
}

// Awaits on(worker, ticket, fn) in a coroutine of its own, as an operation does.
template <class Fn>
void submit_to(asio::io_context& io, Worker& worker, Ticket ticket, Fn fn, std::function<void(Result<int>)> done) {
  asio::co_spawn(
      io, [&worker, ticket, fn, done]() -> Task<void> { done(co_await attempt(on(worker, ticket, fn))); },
      asio::detached);
}

class WorkerQueue : public ::testing::Test {
 protected:
  // Occupies the worker until release() (a card, a responder, a big document).
  void block(Worker& worker) {
    worker.post([f = gate_.get_future().share()] { f.wait(); });
  }
  void release() { gate_.set_value(); }

  asio::io_context io_;
  // run_for() then waits for the worker's post instead of returning at once.
  asio::executor_work_guard<asio::io_context::executor_type> guard_ = asio::make_work_guard(io_);
  std::promise<void> gate_;
};

// korttid's main() returns only once every worker thread has ended: exit-time
// cleanup once freed OpenSSL's thread state under a worker still ending in
// OPENSSL_thread_stop, after a failed start (a segfault about once in 500).
TEST_F(WorkerQueue, AllEndedWaitsForAWorkerDroppedWhileBusy) {
  auto worker = std::make_unique<Worker>("stuck");
  block(*worker);
  worker.reset();  // as a token's worker is when its card is pulled mid-command
  EXPECT_FALSE(Worker::all_ended(std::chrono::milliseconds(100)));
  release();
  EXPECT_TRUE(Worker::all_ended(std::chrono::seconds(5)));
}

TEST_F(WorkerQueue, AJobWhoseRequestIsOverIsNotRun) {
  Worker worker("test");
  block(worker);
  std::stop_source request;
  std::atomic<bool> ran{false};
  std::optional<Result<int>> result;
  submit_to(
      io_, worker, Ticket{request.get_token(), 10},
      [&] {
        ran = true;
        return 1;
      },
      [&](Result<int> r) { result = std::move(r); });
  io_.poll();              // the job is queued behind the blocker
  request.request_stop();  // its deadline passed while it waited
  release();
  run_until(io_, [&] { return result.has_value(); });
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(ran);
  ASSERT_FALSE(result->ok());
  EXPECT_EQ(result->error().code(), Errc::token_busy);
}

TEST_F(WorkerQueue, BytesAndJobsPastTheLimitsAreRefusedAtOnceAndFreedWhenRun) {
  Worker worker("documents", Worker::Limits{3, 1000});
  std::vector<Result<int>> results;
  auto submit = [&](std::size_t bytes) {
    submit_to(
        io_, worker, Ticket{{}, bytes}, [] { return 7; }, [&](Result<int> r) { results.push_back(std::move(r)); });
  };
  block(worker);  // not counted: posted around the limits
  submit(600);    // in: the queue was empty of counted jobs
  submit(600);    // out: 1200 bytes > 1000
  submit(300);    // in
  submit(10);     // in: 3 jobs
  submit(10);     // out: a fourth job
  run_until(io_, [&] { return results.size() >= 2; });
  ASSERT_EQ(results.size(), 2U) << "the refusals come at once, before the worker is free";
  for (const auto& r : results) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), Errc::service_unavailable);
    EXPECT_NE(std::string(r.error().what()).find("documents worker"), std::string::npos);
  }
  release();
  run_until(io_, [&] { return results.size() >= 5; });
  ASSERT_EQ(results.size(), 5U);
  for (std::size_t i = 2; i < 5; ++i) EXPECT_TRUE(results[i].ok());
  // Run and gone: the queue takes a big job again.
  submit(900);
  run_until(io_, [&] { return results.size() >= 6; });
  ASSERT_EQ(results.size(), 6U);
  EXPECT_TRUE(results[5].ok());
}

// One uid's flood leaves room for everyone else's work: each owner has a
// share of the queue, in jobs and in bytes, and gets its first job in.
TEST_F(WorkerQueue, EachOwnerHasAShareOfTheQueue) {
  Worker worker("documents", Worker::Limits{10, 0, 2, 1000});
  std::map<int, Result<int>> results;
  int next = 0;
  auto submit = [&](Worker::Owner owner, std::size_t bytes) {
    const int id = next++;
    submit_to(
        io_, worker, Ticket{{}, bytes, owner}, [] { return 7; },
        [&results, id](Result<int> r) { results.emplace(id, std::move(r)); });
    return id;
  };
  block(worker);
  const int first = submit(1000, 500);          // in
  const int second = submit(1000, 0);           // in: 2 jobs
  const int third = submit(1000, 0);            // out: past its share of jobs
  const int other = submit(1001, 900);          // in: another uid's share
  const int over = submit(1001, 200);           // out: 1100 bytes > its 1000
  const int big = submit(1002, 5000);           // in: its first job, however big
  const int korttid = submit(std::nullopt, 0);  // in: nobody's share
  run_until(io_, [&] { return results.size() >= 2; });
  ASSERT_EQ(results.size(), 2U) << "the refusals come at once";
  for (int refused : {third, over}) {
    ASSERT_TRUE(results.count(refused)) << refused;
    ASSERT_FALSE(results.at(refused).ok());
    EXPECT_EQ(results.at(refused).error().code(), Errc::service_unavailable);
    EXPECT_NE(std::string(results.at(refused).error().what()).find("has its share"), std::string::npos);
  }
  EXPECT_NE(std::string(results.at(third).error().what()).find("uid 1000"), std::string::npos);
  release();
  run_until(io_, [&] { return results.size() >= 7; });
  for (int in : {first, second, other, big, korttid}) EXPECT_TRUE(results.at(in).ok()) << in;
  // Its jobs run, the owner's share is free again.
  const int again = submit(1000, 0);
  run_until(io_, [&] { return results.size() >= 8; });
  EXPECT_TRUE(results.at(again).ok());
}

// A client that has its answer and asks again at once finds its earlier
// job gone from its share: the answer leaves only once the job no longer
// counts (it used to be uncounted after, and a document bigger than half
// the share got 1060 when the client was quick).
TEST_F(WorkerQueue, AnAnswerLeavesOnlyOnceItsJobNoLongerCounts) {
  Worker worker("documents", Worker::Limits{0, 0, 0, 1000});
  // The first job holds 600 of its owner's 1000 bytes; when its answer
  // arrives, a second of 600 must fit. Many times, as the race is narrow.
  for (int i = 0; i < 300; ++i) {
    std::optional<Worker::Admission> next;
    auto second_ran = std::make_shared<std::promise<void>>();
    submit_to(
        io_, worker, Ticket{{}, 600, 1000}, [] { return 1; },
        [&worker, &next, second_ran](Result<int> answer) {
          EXPECT_TRUE(answer.ok());
          next = worker.admit(600, 1000);
          if (*next == Worker::Admission::admitted)
            worker.post_admitted([second_ran] { return Worker::Delivery([second_ran] { second_ran->set_value(); }); },
                                 600, 1000);
        });
    run_until(io_, [&] { return next.has_value(); });
    ASSERT_TRUE(next.has_value());
    ASSERT_EQ(*next, Worker::Admission::admitted) << "try " << i;
    // The second job is uncounted by the time it delivers: the next try starts clean.
    ASSERT_EQ(second_ran->get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  }
}

// A job that throws (a bug: the worker logs it and goes on) gives back its
// place and its owner's share, or they would stay taken for good.
TEST_F(WorkerQueue, AJobThatThrowsGivesItsPlaceBack) {
  auto held = std::make_unique<Worker>("documents", Worker::Limits{1, 0, 1, 0});
  Worker& worker = *held;
  ASSERT_EQ(worker.admit(0, 1000), Worker::Admission::admitted);
  std::promise<void> ran;
  worker.post_admitted(
      [&ran]() -> Worker::Delivery {
        ran.set_value();
        throw std::runtime_error("a bug");
      },
      0, 1000);
  ran.get_future().wait();
  Worker::Admission again = Worker::Admission::queue_full;
  for (int i = 0; i < 500 && again != Worker::Admission::admitted; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    again = worker.admit(0, 1000);  // a refusal counts nothing
  }
  EXPECT_EQ(again, Worker::Admission::admitted);
  // The place came back while the throw unwound; the thread then logs it.
  // A job after it runs once that is done: the test ends no sooner, or
  // exit-time cleanup could pull the logger from under the thread.
  std::promise<void> after;
  worker.post_admitted(
      [&after] {
        after.set_value();
        return Worker::Delivery{};
      },
      0, 1000);
  after.get_future().wait();
  // Its thread ends, its OpenSSL state given back, before the test does.
  held.reset();
  EXPECT_TRUE(Worker::all_ended(std::chrono::seconds(5)));
}

TEST_F(WorkerQueue, OneJobAlwaysGetsIntoAnEmptyQueue) {
  Worker worker("documents", Worker::Limits{1, 100});
  std::optional<Result<int>> result;
  submit_to(
      io_, worker, Ticket{{}, 5000}, [] { return 3; }, [&](Result<int> r) { result = std::move(r); });
  run_until(io_, [&] { return result.has_value(); });
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->ok());
  release();
}

TEST_F(WorkerQueue, WhatAJobThrowsReachesTheAwaitingOperationAsItsError) {
  Worker worker("test");
  std::vector<Result<int>> results;
  auto keep = [&](Result<int> r) { results.push_back(std::move(r)); };
  submit_to(
      io_, worker, Ticket{}, []() -> int { throw Error(Errc::document_invalid, "bad"); }, keep);
  submit_to(
      io_, worker, Ticket{}, []() -> int { throw std::runtime_error("secret internals"); }, keep);
  run_until(io_, [&] { return results.size() >= 2; });
  ASSERT_EQ(results.size(), 2U);
  ASSERT_FALSE(results[0].ok());
  EXPECT_EQ(results[0].error().code(), Errc::document_invalid);
  ASSERT_FALSE(results[1].ok());
  EXPECT_EQ(results[1].error().code(), Errc::internal_error);
  EXPECT_EQ(std::string(results[1].error().what()).find("secret internals"), std::string::npos)
      << "internal text must not reach a client";
  // The thread ends before the process does: OpenSSL's exit-time cleanup
  // must not race a worker still releasing what internal_error() used.
  EXPECT_TRUE(worker.stop_and_wait(std::chrono::seconds(5)));
}

TEST_F(WorkerQueue, AnOperationReportedThroughACompletionIsAwaited) {
  std::optional<Result<int>> ok;
  std::optional<Result<int>> failed;
  asio::co_spawn(
      io_,
      [&]() -> Task<void> {
        // As the token service reports: once, from another thread.
        auto later = [](int v) {
          return [v](Completion<int> done) {
            std::thread([done, v] {
              if (v < 0)
                done(Error(Errc::card_removed, "gone"));
              else
                done(v);
            }).detach();
          };
        };
        auto seven = later(7);
        ok = co_await attempt(completion<int>(seven));
        auto gone = later(-1);
        failed = co_await attempt(completion<int>(gone));
      },
      asio::detached);
  run_until(io_, [&] { return failed.has_value(); });
  ASSERT_TRUE(ok.has_value());
  ASSERT_TRUE(ok->ok());
  EXPECT_EQ(ok->value(), 7);
  ASSERT_TRUE(failed.has_value());
  ASSERT_FALSE(failed->ok());
  EXPECT_EQ(failed->error().code(), Errc::card_removed);
}

}  // namespace
// Work started before it is awaited: its result is there whether it came
// before the await (the audit line was faster than the card) or after it,
// and either way the operation resumes with it.
TEST_F(WorkerQueue, StartedWorkIsAwaitedWhetherItEndedBeforeOrAfter) {
  std::promise<void> release_late;
  auto late_gate = release_late.get_future().share();
  std::optional<Result<int>> early;
  std::optional<Result<int>> late;
  std::atomic<bool> late_running{false};
  asio::co_spawn(
      io_,
      [&]() -> Task<void> {
        Started<int> done_first([](Completion<int> done) { done(1); });
        Started<int> done_later([&](Completion<int> done) {
          std::thread([done, late_gate, &late_running] {
            late_running = true;
            late_gate.wait();
            done(Error(Errc::card_removed, "gone"));
          }).detach();
        });
        early = co_await attempt(done_first.result());
        late = co_await attempt(done_later.result());
      },
      asio::detached);
  run_until(io_, [&] { return early.has_value() && late_running.load(); });
  ASSERT_TRUE(early.has_value());
  EXPECT_FALSE(late.has_value()) << "resumed before its work ended";
  release_late.set_value();
  run_until(io_, [&] { return late.has_value(); });
  ASSERT_TRUE(early->ok());
  EXPECT_EQ(early->value(), 1);
  ASSERT_TRUE(late.has_value());
  ASSERT_FALSE(late->ok());
  EXPECT_EQ(late->error().code(), Errc::card_removed);
}

}  // namespace kortti
