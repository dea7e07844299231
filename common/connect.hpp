#pragma once
// A TCP connection made within a deadline, name lookup included: for the
// revocation checks' responders and CRL hosts and for the TLS upstreams;
// and the bounded wait on a socket its users share.

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

namespace kortti {

// A non-blocking socket connected to host:port by `deadline`, or -1 with
// `error` set. An address is used as it is; a name is looked up on a thread
// of its own, since getaddrinfo has no time limit of its own (a name server
// that does not answer holds it for the resolver's timeout times its
// attempts, per server), and a lookup still going at the deadline is left
// to end there, unwaited for. At most kMaxLookups lookups run at a time,
// waited for or not: past that, names are not looked up until one ends.
// `stopped`, if given, is asked every 200 ms, and ends the wait at once.
int connect_within(const std::string& host, const std::string& port, std::chrono::steady_clock::time_point deadline,
                   std::string& error, const std::function<bool()>& stopped = {});

inline constexpr std::size_t kMaxLookups = 16;

// Milliseconds left until `deadline`: 0 or less once it has passed.
long ms_left(std::chrono::steady_clock::time_point deadline);

// poll() for `events` on `fd` for at most 200 ms and never past `deadline`,
// so that a caller can look at its stop flag between waits: poll()'s
// result, 0 at once when the deadline has passed.
int poll_slice(int fd, short events, std::chrono::steady_clock::time_point deadline);

}  // namespace kortti
