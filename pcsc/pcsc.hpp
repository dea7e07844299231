#pragma once

// pcsc/: readers and cards over PC/SC (pcsc-lite).
//
// RAII handles for context, card and transaction; one call wrapper that turns
// SCARD_* codes into typed errors naming the call and the call site; the table
// of known ATRs; PIN-pad detection; the reader and card monitor (one thread
// blocked in SCardGetStatusChange); and the FinEID PIN counter query.

#include <PCSC/winscard.h>
#include <PCSC/wintypes.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <source_location>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/bytes.hpp"
#include "common/time.hpp"

namespace kortti::pcsc {

// The name pcsc-lite gives a code ("SCARD_E_NO_SERVICE"), or its hex value.
std::string code_name(LONG code);

// A PC/SC call that failed: its SCARD_* code, the function, and where.
class Error : public std::runtime_error {
 public:
  Error(LONG code, const char* call, std::source_location where);
  [[nodiscard]] LONG code() const noexcept { return code_; }
  [[nodiscard]] const std::string& call() const noexcept { return call_; }
  // pcscd is not running, or went away.
  [[nodiscard]] bool service_gone() const noexcept;
  // The card left, lost its power, or its reader went (not a reset by
  // another program: the card is still there).
  [[nodiscard]] bool card_gone() const noexcept;

 private:
  LONG code_;
  std::string call_;
};

// Every SCard* call goes through here.
void check(LONG code, const char* call, std::source_location where = std::source_location::current());

class Context {
 public:
  Context();  // SCardEstablishContext(SCARD_SCOPE_SYSTEM)
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  [[nodiscard]] SCARDCONTEXT handle() const noexcept { return handle_; }
  [[nodiscard]] std::vector<std::string> readers() const;  // empty when there are none
  // Wakes a thread blocked in SCardGetStatusChange on this context. Safe to
  // call from another thread.
  void cancel() const noexcept;

 private:
  SCARDCONTEXT handle_ = 0;
};

// A connection of korttid's own (the PIN-pad probe, the PIN counter; OpenSC
// and other modules make theirs), on a context of its own, made one at a
// time. pcsc-lite's client library (1.9.9; 2.x still) links a connection
// into its context's list of handles, and unlinks it, under that context's
// lock only, while a call on a handle, on any thread, walks the lists of the
// contexts from the oldest to its own: a walk that meets a connection being
// linked can follow a half-linked element (CI saw SCardControl read address
// 0 as the PIN-pad probes of several readers ran at once). One at a time,
// korttid's connections never meet; on the newest context, each is past the
// end of other threads' walks. What this leaves to the library:
// docs/cards-and-readers.md. One that waits (another program holds the card)
// makes the next wait: their users wait aside (pcsc/aside.hpp).
class Card {
 public:
  // SCARD_SHARE_SHARED with T=0/T=1, or SCARD_SHARE_DIRECT (no card needed).
  explicit Card(const std::string& reader, bool direct = false);
  ~Card();
  Card(const Card&) = delete;
  Card& operator=(const Card&) = delete;

  [[nodiscard]] SCARDHANDLE handle() const noexcept { return handle_; }
  // One APDU; follows 61xx with GET RESPONSE and 6Cxx with the right Le.
  [[nodiscard]] Bytes transmit(ByteView apdu) const;
  [[nodiscard]] Bytes control(DWORD code, ByteView input) const;

 private:
  std::unique_lock<std::mutex> turn_;  // first: taken before the context, let go after it
  Context context_;
  SCARDHANDLE handle_ = 0;
  DWORD protocol_ = 0;
};

// Exclusive use of the card for a few APDUs, so they do not interleave with
// another application's (OpenSC's) sequence.
class Transaction {
 public:
  explicit Transaction(const Card& card);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

 private:
  SCARDHANDLE card_;
};

// --- ATRs ---

struct AtrPattern {
  Bytes atr;
  Bytes mask;  // same length as atr; 0xFF bytes must match exactly
  std::string card_type;
  std::string description;
};

// Known cards by ATR. Unknown cards are still cards: match() just says nothing.
class AtrTable {
 public:
  AtrTable();                    // the Finnish cards of finland.md
  void add(AtrPattern pattern);  // consulted before the built-in ones
  [[nodiscard]] std::optional<AtrPattern> match(ByteView atr) const;

 private:
  std::vector<AtrPattern> patterns_;
};

// Parses "3B DF 96 ..." or "3bdf96..." (spaces and colons ignored).
std::optional<Bytes> parse_hex(std::string_view text);

// --- PIN pads ---

struct PinPadFeatures {
  bool verify_pin_direct = false;
  bool verify_pin_start = false;
  bool verify_pin_finish = false;
  bool modify_pin_direct = false;
  [[nodiscard]] bool pinpad() const noexcept { return verify_pin_direct || (verify_pin_start && verify_pin_finish); }
};

// The answer to CM_IOCTL_GET_FEATURE_REQUEST: a list of PCSC_TLV_STRUCTURE
// (tag, length 4, big-endian control code). Malformed tails are ignored.
PinPadFeatures parse_features(ByteView tlv);
// Asks the reader (SCARD_SHARE_DIRECT, no card needed). Any error while
// probing means "no PIN pad".
PinPadFeatures probe_pinpad(const std::string& reader) noexcept;

// --- the monitor ---

struct ReaderOverride {
  std::string name_prefix;
  std::optional<bool> pinpad;  // readers that lie about their features
};

struct ReaderState {
  std::string name;
  bool card_present = false;
  Bytes atr;
  std::optional<std::string> card_type;
  bool pinpad = false;
};

struct Event {
  enum class Type { reader_added, reader_removed, card_inserted, card_removed, service_up, service_down };
  Type type;
  std::string reader;
  Bytes atr;
  std::optional<std::string> card_type;
  SystemTime time;
};
std::string_view name_of(Event::Type type) noexcept;

struct MonitorOptions {
  AtrTable atrs;
  std::vector<ReaderOverride> overrides;
  std::chrono::milliseconds min_backoff{100};
  std::chrono::milliseconds max_backoff{2000};
};

// One thread blocked in SCardGetStatusChange over every reader and the PnP
// notification, on its own context, stopped with SCardCancel. Events go to
// the io_context. When pcscd goes away every card and reader is reported gone,
// the thread retries with backoff, and on pcscd's return it reports what is
// there again, then service_up. (available() is true from the moment pcscd
// answers, before its readers are reported.)
class Monitor {
 public:
  Monitor(boost::asio::io_context& io, MonitorOptions options);
  ~Monitor();  // stops the thread
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  using Handler = std::function<void(const Event&)>;
  void on_event(Handler handler);  // before start(); called on the io thread
  void start();
  void stop();

  // Thread-safe snapshots.
  [[nodiscard]] bool available() const;
  [[nodiscard]] std::vector<ReaderState> readers() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

// --- card-level PIN information ---

// The remaining tries of a card PIN, asked directly through PC/SC inside a
// transaction (no side effects on the card). Known for FinEID-family cards
// (GET DATA 00 CB 00 FF, PIN info DF21); PIN reference 0x11 (PIN1) or 0x82
// (PIN2). nullopt when the card does not say, or not within a second (a
// card another program holds; the read goes on, one per reader at a time).
std::optional<int> read_fineid_pin_tries(const std::string& reader, std::uint8_t pin_reference) noexcept;

}  // namespace kortti::pcsc
