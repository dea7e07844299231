#pragma once

// pinentry/: korttid asks the card holder for a PIN itself, through GnuPG's
// pinentry (pinentry-gnome3, -qt, -gtk2, -curses, -tty), so the client
// system that asked for a signature never sees the PIN. The program speaks
// the Assuan protocol on its stdin and stdout; korttid starts one per
// dialog, in the user's session (the per-user instance).

#include <chrono>
#include <optional>
#include <stop_token>
#include <string>

#include <boost/asio/io_context.hpp>

#include "common/secret.hpp"
#include "common/task.hpp"

namespace kortti::pinentry {

struct Options {
  std::string program = "pinentry";  // looked up in PATH when it names no directory
  // A terminal for pinentry-tty and -curses (OPTION ttyname); empty: the
  // program's own choice (a graphical one uses DISPLAY or WAYLAND_DISPLAY).
  std::string tty;
  std::chrono::seconds timeout{60};  // the user's time to answer one dialog
};

// One dialog's words, as the user reads them (escaped for Assuan here).
// A terminal pinentry does not show the title.
class Dialog {
 public:
  Dialog() = default;
  Dialog(std::string title_text, std::string description_text, std::string prompt_text)
      : title(std::move(title_text)), description(std::move(description_text)), prompt(std::move(prompt_text)) {}
  std::string title;
  std::string description;
  std::string prompt;
  std::string error;  // why the user is asked again (a wrong PIN and its tries left)
  std::string ok = "OK";
  std::string cancel = "Cancel";
  // A new PIN: typed twice, the second time after `repeat` (SETREPEAT); the
  // program itself asks again while the two differ.
  std::string repeat;
};

class PinEntry {
 public:
  PinEntry(boost::asio::io_context& io, Options options);
  ~PinEntry();
  PinEntry(const PinEntry&) = delete;
  PinEntry& operator=(const PinEntry&) = delete;

  // Why this korttid has nowhere to show a dialog — no display, no
  // terminal — or nothing: a system instance has no user session.
  [[nodiscard]] std::optional<std::string> unavailable() const;

  // The PIN the user typed, on the secure heap. Error pin_entry_cancelled
  // when the user cancels, the time runs out or `stop` fires (the request is
  // over: the dialog closes); service_unavailable when the program cannot be
  // started or breaks the protocol. One dialog at a time: the user answers
  // one; later ones wait their turn, at most kMaxWaiting of them.
  Task<SecretString> ask(Dialog dialog, std::stop_token stop);

  // A question without a PIN (CONFIRM): returns when the user pressed OK;
  // pin_entry_cancelled, service_unavailable and the waiting as for ask().
  Task<Unit> confirm(Dialog dialog, std::stop_token stop);

  static constexpr std::size_t kMaxWaiting = 8;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Assuan's escaping of a command's argument: '%', CR and LF as %XX.
std::string assuan_escape(std::string_view text);

}  // namespace kortti::pinentry
