#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "common/log_budget.hpp"

namespace kortti {
namespace {

using namespace std::chrono_literals;

// The warnings the budget writes, caught from spdlog's default logger.
class LogBudgetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_ = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("budget", sink_));
  }
  void TearDown() override { spdlog::set_default_logger(previous_); }
  std::vector<std::string> warnings() { return sink_->last_formatted(); }

  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_ = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(16);
  std::shared_ptr<spdlog::logger> previous_;
};

std::size_t allowed(LogBudget& budget, uid_t uid, int lines, LogBudget::Clock::time_point at) {
  std::size_t n = 0;
  for (int i = 0; i < lines; ++i) n += budget.allow(uid, at) ? 1 : 0;
  return n;
}

TEST_F(LogBudgetTest, AUidPastItsBudgetIsCountedAndTheCountIsLoggedWhenItsWindowEnds) {
  LogBudget budget(2);  // 20 lines in 10 s
  const auto t0 = LogBudget::Clock::now();
  EXPECT_EQ(allowed(budget, 1000, 50, t0), 20U);
  EXPECT_TRUE(warnings().empty()) << "nothing said while the window runs";
  // Another uid has a budget of its own.
  EXPECT_EQ(allowed(budget, 1001, 5, t0 + 1s), 5U);
  // The next window: the count of the last one first, then lines again.
  EXPECT_TRUE(budget.allow(1000, t0 + 11s));
  const auto said = warnings();
  ASSERT_EQ(said.size(), 1U);
  EXPECT_NE(said[0].find("uid=1000: 30 request and connection log lines left out"), std::string::npos) << said[0];
}

TEST_F(LogBudgetTest, AUidThatFallsSilentHasItsCountLoggedWithAnotherUidsNextLine) {
  LogBudget budget(1);
  const auto t0 = LogBudget::Clock::now();
  EXPECT_EQ(allowed(budget, 65534, 15, t0), 10U);
  EXPECT_TRUE(budget.allow(0, t0 + 12s));
  const auto said = warnings();
  ASSERT_EQ(said.size(), 1U);
  EXPECT_NE(said[0].find("uid=65534: 5 request"), std::string::npos) << said[0];
}

// The audit trail's budget of denials reports to a line of its own.
TEST_F(LogBudgetTest, AReportOfItsOwnTakesTheCountInsteadOfTheLog) {
  std::vector<std::pair<uid_t, std::size_t>> reports;
  LogBudget budget(
      1, [&](uid_t uid, std::size_t left_out, LogBudget::Clock::duration) { reports.emplace_back(uid, left_out); });
  const auto t0 = LogBudget::Clock::now();
  EXPECT_EQ(allowed(budget, 4242, 12, t0), 10U);
  EXPECT_TRUE(budget.allow(4242, t0 + 10s));
  ASSERT_EQ(reports.size(), 1U);
  EXPECT_EQ(reports[0], std::make_pair(uid_t{4242}, std::size_t{2}));
  EXPECT_TRUE(warnings().empty());
  // korttid stopping: what the open windows left out is reported once.
  EXPECT_EQ(allowed(budget, 4242, 13, t0 + 10s), 9U);
  budget.flush(t0 + 11s);
  budget.flush(t0 + 12s);
  ASSERT_EQ(reports.size(), 2U);
  EXPECT_EQ(reports[1], std::make_pair(uid_t{4242}, std::size_t{4}));
}

TEST_F(LogBudgetTest, ZeroMeansNoLimit) {
  LogBudget budget(0);
  EXPECT_EQ(allowed(budget, 1000, 100000, LogBudget::Clock::now()), 100000U);
  EXPECT_TRUE(warnings().empty());
}

}  // namespace
}  // namespace kortti
