// main() of every test program: gtest, plus what each test that runs
// korttid gets without asking — its problems (an unexpected exit, a status
// other than 0 at SIGTERM, a sanitizer report) fail the test, and when a
// test fails, the logs of the daemons it had running are printed.

#include <gtest/gtest.h>

#include <iostream>

#include "tests/support/support.hpp"

namespace {

class DaemonLogPrinter : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo&) override { printed_ = false; }

  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed() || printed_) return;
    printed_ = true;  // once per test, at the first failure
    kortti::test::for_each_daemon_log([](const std::string& log) {
      std::cerr << "---- korttid log ----\n" << log << "---------------------\n";
    });
  }

 private:
  bool printed_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  kortti::test::set_problem_reporter([](const std::string& problem) { ADD_FAILURE() << problem; });
  ::testing::UnitTest::GetInstance()->listeners().Append(new DaemonLogPrinter);
  return RUN_ALL_TESTS();
}
