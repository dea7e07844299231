// The Web eID native-messaging host's input: what a browser writes to
// kortti-webeid's standard input, frames of a 32-bit length and JSON
// (webeid::read_message), read from the input as a file until one fails, and
// each message run as a command (webeid::run_command) up to where korttid
// would be asked: the harness's korttid is a marker thrown at the first call.
// A bad frame or command is a Failure; the answer to it is written as the
// host writes it. Anything else is a finding.

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "common/owned_fd.hpp"
#include "fuzz/support.hpp"
#include "webeid/commands.hpp"
#include "webeid/messages.hpp"

namespace {

// Thrown where the host would connect to korttid: every check of the
// command's own arguments has passed by then.
struct KorttidAsked {};

// An open the harness cannot go on without.
int opened(int fd) {
  if (fd < 0) {
    std::perror("fuzz webeid: open");
    std::abort();
  }
  return fd;
}

// The host's answer to a failed command, written where nobody reads it.
void answer_failure(const kortti::webeid::Failure& failure, int out) {
  try {
    kortti::webeid::write_message(out, kortti::webeid::error_message(failure.code(), failure.what()));
  } catch (const std::exception& e) {
    kortti::fuzz::unexpected_exception("webeid", e);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kortti::webeid;
  const kortti::fuzz::MemoryFile file(data, size);
  // A second open of the memory file reads it from its start.
  const kortti::OwnedFd in(opened(::open(file.path().c_str(), O_RDONLY | O_CLOEXEC)));
  static const kortti::OwnedFd out(opened(::open("/dev/null", O_WRONLY | O_CLOEXEC)));
  const Connect korttid = []() -> kortti::client::Client& { throw KorttidAsked{}; };
  for (;;) {
    kortti::Json message;
    try {
      message = read_message(in.get());
    } catch (const Failure& f) {
      answer_failure(f, out.get());
      return 0;
    } catch (const std::exception& e) {
      kortti::fuzz::unexpected_exception("webeid", e);
    }
    try {
      (void)run_command(message, korttid);
    } catch (const KorttidAsked&) {
    } catch (const Failure& f) {
      answer_failure(f, out.get());
    } catch (const std::exception& e) {
      kortti::fuzz::unexpected_exception("webeid", e);
    }
  }
}
