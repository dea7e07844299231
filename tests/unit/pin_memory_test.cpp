#include "daemon/pin_memory.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "common/secret.hpp"

namespace kortti::daemon {
namespace {

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * KiB;

TEST(PinMemory, IsSizedForTheRequestsWithPinsTheLimitsLetRunAtOnce) {
  EXPECT_EQ(pin_memory_for(64 * 4), 1 * MiB);       // the defaults: 1 MiB at least
  EXPECT_EQ(pin_memory_for(1024 * 4), 4 * MiB);     // 4,096 x 3 blocks of 128 bytes, twice over: 3 MiB
  EXPECT_EQ(pin_memory_for(4096 * 256), 64 * MiB);  // the schema's largest limits: 64 MiB at most
  for (const std::size_t requests : {1, 256, 2731, 4096, 40000})
    EXPECT_GE(requests_in(pin_memory_for(requests)), requests) << requests;
}

// The memory the kernel has locked for this process, from /proc.
std::size_t locked_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmLck:", 0) == 0) return std::stoul(line.substr(6));
  return 0;
}

// In a process of its own (the heap is made once per process), as an account
// without CAP_IPC_LOCK, under a real RLIMIT_MEMLOCK (set first: an account
// may only lower it). OpenSSL makes a heap it could not lock without
// failing: that must not pass for locked memory.
int pin_memory_under(rlim_t limit, std::size_t expected_bytes, bool expected_locked) {
  const rlimit low{limit, limit};
  if (::setrlimit(RLIMIT_MEMLOCK, &low) != 0) return 10;
  if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) return 11;
  const PinMemory memory = make_pin_memory(64 * 4);
  if (memory.wanted != 1 * MiB || memory.bytes != expected_bytes || memory.locked != expected_locked) return 12;
  if (locked_kib() != (expected_locked ? expected_bytes / KiB : 0)) return 13;
  SecretString pin("246810");
  return pin.view() == "246810" ? 0 : 14;
}

// Whether this process may set RLIMIT_MEMLOCK to `limit`.
bool may_set_memlock(rlim_t limit) {
  rlimit now{};
  return ::getrlimit(RLIMIT_MEMLOCK, &now) == 0 &&
         (::geteuid() == 0 || now.rlim_max == RLIM_INFINITY || now.rlim_max >= limit);
}

TEST(PinMemoryDeathTest, UnderALowMemlockLimitItShrinksToWhatTheKernelLocks) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::pair<rlim_t, std::size_t> cases[] = {{2 * MiB, 1 * MiB}, {300 * KiB, 256 * KiB}, {64 * KiB, 64 * KiB}};
  for (const auto& [limit, expected] : cases) {
    if (!may_set_memlock(limit)) GTEST_SKIP() << "RLIMIT_MEMLOCK's hard limit is below " << limit;
    EXPECT_EXIT(::_exit(pin_memory_under(limit, expected, true)), ::testing::ExitedWithCode(0), "") << limit;
  }
}

TEST(PinMemoryDeathTest, BelowTheLeastItMakesAnUnlockedHeapAndSaysSo) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  if (!may_set_memlock(32 * KiB)) GTEST_SKIP() << "RLIMIT_MEMLOCK's hard limit is below 32 KiB";
  EXPECT_EXIT(::_exit(pin_memory_under(32 * KiB, 64 * KiB, false)), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace kortti::daemon
