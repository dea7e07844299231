#pragma once

// Internal to tests/support/: the harnesses there share one way of starting
// and reaping processes; the tests go through tests/support/support.hpp.
#ifndef KORTTI_TEST_SUPPORT
#error "tests/support/process.hpp is internal to tests/support/; include tests/support/support.hpp"
#endif

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace kortti::test {

// A background process whose output goes to `log`.
pid_t spawn_logged(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                   const std::filesystem::path& log);
int decode_status(int status);
// Leaves `pid` at -1, so that an explicit stop and the destructor after it
// do not signal a pid the system may have handed to someone else.
void reap(pid_t& pid, int signo);
// Whether a TCP socket listens on `port` on this machine, read from
// /proc/net without connecting (single-threaded openssl servers wedge on a probe).
bool listening(int port);
// spawn_logged(), then waits up to 2 s for `port` to listen; if it does not,
// stops the process and throws with its log.
pid_t spawn_listening(const std::vector<std::string>& argv, const std::filesystem::path& log, int port);

}  // namespace kortti::test
