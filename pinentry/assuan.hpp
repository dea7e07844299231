#pragma once

// Internal to pinentry/ (docs/architecture.md, Layering); include pinentry/pinentry.hpp.
#if !defined(KORTTI_COMPONENT_PINENTRY) && !defined(KORTTI_WHITE_BOX)
#error "pinentry/assuan.hpp is internal to pinentry/; include pinentry/pinentry.hpp"
#endif

#include <chrono>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "common/secret.hpp"

namespace kortti::pinentry {

using Clock = std::chrono::steady_clock;

// The client side of one Assuan conversation with a pinentry program over
// two pipes. Blocking, with a deadline on every read; meant for a worker
// thread. Errors are kortti::Errors: pin_entry_cancelled for the user's (or
// the request's) end, service_unavailable for a program that misbehaves.
class Conversation {
 public:
  // Takes the parent's ends of the program's stdin (`to`) and stdout (`from`).
  Conversation(int to, int from, std::stop_token stop);
  ~Conversation();
  Conversation(const Conversation&) = delete;
  Conversation& operator=(const Conversation&) = delete;

  // The program's "OK Pleased to meet you".
  void greeting(Clock::time_point deadline);
  // A command that must be answered OK; an OPTION that the program does
  // not know may be refused (`optional`), as gpg-agent allows.
  void command(std::string_view verb, std::string_view argument, Clock::time_point deadline, bool optional = false);
  // GETPIN: the PIN typed, or pin_entry_cancelled. `repeated`: the
  // program must have confirmed it was typed twice alike (SETREPEAT).
  SecretString getpin(Clock::time_point deadline, bool repeated = false);
  // CONFIRM: returns when the user pressed OK; pin_entry_cancelled when
  // they cancelled or the time ran out.
  void confirm(Clock::time_point deadline);
  // BYE, without waiting long for its answer.
  void bye() noexcept;

 private:
  struct Reply {
    bool ok = false;
    unsigned code = 0;  // of an ERR
  };
  // Reads up to the end of the reply (OK or ERR); data lines go to `data`
  // (decoded, wiped by the caller), comments and status lines are skipped.
  Reply reply(Clock::time_point deadline, std::string* data);
  // One line without its LF, into line_ (wiped when it is replaced).
  void read_line(Clock::time_point deadline);
  void write_all(std::string_view text);

  int to_;
  int from_;
  std::stop_token stop_;
  std::string line_;
  std::string pending_;     // read past the end of the last line
  bool confirmed_ = false;  // "S PIN_REPEATED" came with the last reply
};

}  // namespace kortti::pinentry
