#include "daemon/pin_memory.hpp"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <bit>
#include <string>

namespace kortti::daemon {

namespace {

// A secret is at most 64 bytes (ipc/params.cpp); with its NUL, the secure
// heap's buddy allocator gives it a block of 128.
constexpr std::size_t kSecretBlock = 128;
constexpr std::size_t kRequestBytes = 3 * kSecretBlock;
constexpr std::size_t kLeast = std::size_t{1} << 20;
constexpr std::size_t kMost = std::size_t{64} << 20;
// The smallest RLIMIT_MEMLOCK a Linux system gives by default.
constexpr std::size_t kFloor = std::size_t{64} << 10;

std::string memlock_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_MEMLOCK, &limit) != 0) return "unknown";
  if (limit.rlim_cur == RLIM_INFINITY) return "unlimited";
  return std::to_string(limit.rlim_cur / 1024) + " KiB";
}

}  // namespace

std::size_t pin_memory_for(std::size_t requests) noexcept {
  if (requests >= kMost / (2 * kRequestBytes)) return kMost;
  return std::max(kLeast, std::bit_ceil(2 * kRequestBytes * requests));
}

std::size_t requests_in(std::size_t bytes) noexcept { return bytes / kRequestBytes; }

PinMemory make_pin_memory(std::size_t requests) {
  PinMemory memory{pin_memory_for(requests), 0, false};
  // OpenSSL answers 1 for a heap made and locked, 2 for one made that the
  // kernel would not lock (RLIMIT_MEMLOCK, or its guard pages refused):
  // undone, and a smaller one tried, while nothing is in it yet.
  for (std::size_t bytes = memory.wanted; bytes >= kFloor; bytes /= 2) {
    const int answer = CRYPTO_secure_malloc_init(bytes, 16);
    if (answer == 1) {
      memory.bytes = bytes;
      memory.locked = true;
      break;
    }
    if (answer == 2 && CRYPTO_secure_malloc_done() == 0) {
      memory.bytes = bytes;  // cannot be undone: used as it is, unlocked
      break;
    }
  }
  if (memory.bytes == 0 && CRYPTO_secure_malloc_init(kFloor, 16) != 0) memory.bytes = kFloor;
  if (memory.bytes == 0)
    spdlog::warn("no secure heap could be made for PINs: they live in ordinary memory, wiped after use");
  else if (!memory.locked)
    spdlog::warn(
        "PIN memory: {} KiB that the kernel would not lock (RLIMIT_MEMLOCK {}; at least {} KiB are needed): PINs "
        "may be swapped out; they are still wiped after use and left out of core dumps; raise LimitMEMLOCK",
        memory.bytes / 1024, memlock_limit(), kFloor / 1024);
  else if (memory.bytes < memory.wanted)
    spdlog::warn(
        "PIN memory: {} KiB locked of the {} KiB that {} requests with PINs at once need (ipc.max_connections x "
        "ipc.max_pin_requests_per_uid; RLIMIT_MEMLOCK {}): past about {} at once they get 1060; raise LimitMEMLOCK",
        memory.bytes / 1024, memory.wanted / 1024, requests, memlock_limit(), requests_in(memory.bytes));
  else
    spdlog::info("PIN memory: {} KiB locked, for {} requests with PINs at once", memory.bytes / 1024, requests);
  return memory;
}

}  // namespace kortti::daemon
