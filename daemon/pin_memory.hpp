#pragma once

// Internal to daemon/ (docs/architecture.md, Layering).
#if !defined(KORTTI_COMPONENT_DAEMON) && !defined(KORTTI_WHITE_BOX)
#error "daemon/pin_memory.hpp is internal to daemon/"
#endif

// The locked memory PINs live in while a request uses them (OpenSSL's secure
// heap), sized for the requests with PINs the limits let run at once:
// ipc.max_connections x ipc.max_pin_requests_per_uid (docs/operations.md).

#include <cstddef>

namespace kortti::daemon {

struct PinMemory {
  std::size_t wanted = 0;  // what the limits need
  std::size_t bytes = 0;   // what was made; 0: none, PINs are in ordinary memory (wiped after use)
  bool locked = false;     // false: the kernel would not lock even 64 KiB, so it may be swapped out
};

// For `requests` holding up to three secrets each (pin, puk, new_pin), twice
// over for what else OpenSSL keeps there: a power of two from 1 to 64 MiB.
[[nodiscard]] std::size_t pin_memory_for(std::size_t requests) noexcept;
// How many such requests `bytes` hold at most, with nothing else in them.
[[nodiscard]] std::size_t requests_in(std::size_t bytes) noexcept;

// Makes it, once per process, and logs what it got: what `requests` need if
// the kernel locks that much (RLIMIT_MEMLOCK), else the largest power of two
// down to 64 KiB that it locks; if it locks none, 64 KiB unlocked (still
// between guard pages and out of core dumps).
PinMemory make_pin_memory(std::size_t requests);

}  // namespace kortti::daemon
