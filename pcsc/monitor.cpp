#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <deque>
#include <map>
#include <thread>
#include <utility>

#include "pcsc/aside.hpp"
#include "pcsc/pcsc.hpp"

namespace kortti::pcsc {

namespace asio = boost::asio;

std::string_view name_of(Event::Type type) noexcept {
  switch (type) {
    case Event::Type::reader_added:
      return "added";
    case Event::Type::reader_removed:
      return "removed";
    case Event::Type::card_inserted:
      return "inserted";
    case Event::Type::card_removed:
      return "removed";
    case Event::Type::service_up:
      return "service_up";
    case Event::Type::service_down:
      return "service_down";
  }
  return "";
}

namespace {

constexpr const char* kPnp = R"(\\?PnP?\Notification)";
// What one SCardGetStatusChange takes (pcsc-lite refuses more: "Invalid
// parameter given"), and the most readers pcscd serves.
constexpr std::size_t kMaxStates = PCSCLITE_MAX_READERS_CONTEXTS;

// pcsc-lite counts insertions and removals of each reader in the upper 16
// bits of dwEventState.
DWORD event_count(DWORD state) { return (state >> 16) & 0xFFFF; }

// How many times a list of readers is taken again while it keeps changing
// (readers coming one after another); the next look catches the rest.
constexpr int kMaxRelists = 8;

// How long the monitor waits for a new reader's PIN-pad probe.
constexpr std::chrono::milliseconds kProbePatience{1000};

}  // namespace

class Monitor::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::io_context& io_context, MonitorOptions monitor_options)
      : io(io_context), options(std::move(monitor_options)) {}

  asio::io_context& io;
  MonitorOptions options;
  std::vector<Handler> handlers;  // io thread

  mutable std::mutex mutex;  // guards what other threads read, and context
  struct Known {
    ReaderState state;
    std::optional<DWORD> events;  // pcsc-lite's counter at the last look
  };
  std::map<std::string, Known> readers;
  // Readers whose PIN-pad probe has not answered, and whether each was
  // plugged in again meanwhile.
  std::map<std::string, bool> probing;
  bool available = false;
  const Context* context = nullptr;
  std::condition_variable wake;
  std::atomic<bool> stopping{false};
  bool looked = false;     // a look at the readers worked since the last wait (the thread's own)
  bool announced = false;  // service_up sent since pcscd became available (the thread's own)
  bool ended = false;      // the thread's run() has returned (under `mutex`)
  std::thread thread;

  void emit(Event::Type type, const std::string& reader, const Bytes& atr = {},
            std::optional<std::string> card_type = std::nullopt) {
    Event e{type, reader, atr, std::move(card_type), std::chrono::system_clock::now()};
    asio::post(io, [self = shared_from_this(), e = std::move(e)] {
      for (auto& h : self->handlers) h(e);
    });
  }

  void run() {
    auto backoff = options.min_backoff;
    while (!stopping) {
      bool service_gone = true;
      try {
        const Context ctx;
        // Unpublished before ctx ends, also when watch() throws: stop()
        // cancels, under the mutex, only a context that is still there.
        struct Unpublish {
          Impl& self;
          ~Unpublish() {
            std::lock_guard lock(self.mutex);
            self.context = nullptr;
          }
        } const unpublish{*this};
        {
          std::lock_guard lock(mutex);
          context = &ctx;
        }
        if (!stopping) {
          set_available(true);
          watch(ctx);
        }
      } catch (const Error& e) {
        // Anything but pcscd going away: start over on a new context; the
        // readers stay as they are and the next look reports any change.
        service_gone = e.service_gone();
        if (!service_gone) spdlog::warn("PC/SC: {}; starting over", e.what());
      } catch (const std::exception& e) {
        service_gone = false;
        spdlog::error("PC/SC monitor: {}; starting over", e.what());
      }
      if (stopping) break;
      if (service_gone) set_available(false);
      // The wait grows while pcscd fails, also one that takes a context
      // and then fails at once (a socket-activated pcscd that crashes at
      // start); it is short again once a look has worked.
      if (std::exchange(looked, false)) backoff = options.min_backoff;
      std::unique_lock lock(mutex);
      wake.wait_for(lock, backoff, [this] { return stopping.load(); });
      backoff = std::min(backoff * 2, options.max_backoff);
    }
  }

  // Whether pcscd answers (system.status). Its return is announced to the
  // handlers later, by watch(): service_up.
  void set_available(bool up) {
    std::vector<std::string> gone;
    {
      std::lock_guard lock(mutex);
      if (available == up) return;
      available = up;
      if (!up)
        for (auto& [name, known] : readers) gone.push_back(name);
    }
    if (up) {
      spdlog::info("PC/SC: pcscd is available");
      return;
    }
    announced = false;
    spdlog::warn("PC/SC: pcscd is not available; retrying");
    // Without pcscd no reader or card can be used: say so, one by one.
    for (const auto& name : gone) remove_reader(name);
    emit(Event::Type::service_down, "");
  }

  // What the reader's own answer makes of it, unless the configuration
  // says otherwise.
  bool pinpad_of(const std::string& name, bool answered) const {
    for (const auto& o : options.overrides)
      if (name.rfind(o.name_prefix, 0) == 0 && o.pinpad) return *o.pinpad;
    return answered;
  }

  // Asks a reader whether it is a PIN pad, aside (pcsc/aside.hpp): the
  // connection waits while another program holds the reader's card. An
  // answer that comes after the reader was added goes to late_answer().
  // None when the reader's last probe is still waiting (the reader plugged
  // in again meanwhile): that one asks once more when it is done, for the
  // reader as it is then, and waiting probes do not gather.
  std::optional<Aside<bool>> start_probe(const std::string& name) {
    {
      std::lock_guard lock(mutex);
      auto [it, added] = probing.try_emplace(name, false);
      if (!added) {
        it->second = true;
        return std::nullopt;
      }
    }
    auto self = shared_from_this();
    auto ask = [self, name] {
      for (;;) {
        const bool answered = probe_pinpad(name).pinpad();
        std::lock_guard lock(self->mutex);
        auto it = self->probing.find(name);
        if (!std::exchange(it->second, false)) {
          self->probing.erase(it);
          return answered;
        }
      }
    };
    try {
      return Aside<bool>("pcsc-probe", ask, [self, name](bool answered) { self->late_answer(name, answered); });
    } catch (...) {
      std::lock_guard lock(mutex);
      probing.erase(name);
      throw;
    }
  }

  // An answer that came after its reader was added without it.
  void late_answer(const std::string& name, bool answered) {
    if (stopping) return;
    std::lock_guard lock(mutex);
    auto it = readers.find(name);
    if (it == readers.end()) return;
    it->second.state.pinpad = pinpad_of(name, answered);
    if (it->second.state.pinpad) spdlog::info("PC/SC: reader {} has a PIN pad", name);
  }

  // New readers, asked whether they are PIN pads together (their
  // connections one at a time: pcsc.hpp, Card): the answers that come within
  // kProbePatience are taken; a reader whose card another program holds is
  // added without, and gets its answer when it comes.
  void add_readers(const std::vector<std::string>& added) {
    std::vector<std::optional<Aside<bool>>> probes;
    for (const auto& name : added) probes.push_back(start_probe(name));
    // Known before their probes are waited for: an answer that comes after
    // the wait finds its reader.
    {
      std::lock_guard lock(mutex);
      for (const auto& name : added) {
        Known known;
        known.state.name = name;
        known.state.pinpad = pinpad_of(name, false);
        readers[name] = known;
      }
    }
    const auto deadline = std::chrono::steady_clock::now() + kProbePatience;
    for (std::size_t i = 0; i < added.size(); ++i) {
      const std::string& name = added[i];
      const std::optional<bool> answered = probes[i] ? probes[i]->wait_until(deadline) : std::nullopt;
      if (!answered)
        spdlog::info(
            "PC/SC: reader {} has not said whether it has a PIN pad (a card another program holds, in it or "
            "in a reader asked before it); it is known when it answers",
            name);
      bool pinpad = false;
      {
        std::lock_guard lock(mutex);
        ReaderState& state = readers[name].state;
        if (answered) state.pinpad = pinpad_of(name, *answered);
        pinpad = state.pinpad;
      }
      spdlog::info("PC/SC: reader added: {}{}", name, pinpad ? " (PIN pad)" : "");
      emit(Event::Type::reader_added, name);
    }
  }

  void remove_reader(const std::string& name) {
    bool had_card = false;
    {
      std::lock_guard lock(mutex);
      auto it = readers.find(name);
      if (it == readers.end()) return;
      had_card = it->second.state.card_present;
      readers.erase(it);
    }
    if (had_card) emit(Event::Type::card_removed, name);
    spdlog::info("PC/SC: reader removed: {}", name);
    emit(Event::Type::reader_removed, name);
  }

  // The transition table: (known presence, new presence, counter moved) -> events.
  void update(const SCARD_READERSTATE& s) {
    const std::string name = s.szReader;
    const bool present = (s.dwEventState & SCARD_STATE_PRESENT) != 0;
    const DWORD count = event_count(s.dwEventState);
    const Bytes atr(s.rgbAtr, s.rgbAtr + std::min<DWORD>(s.cbAtr, sizeof s.rgbAtr));
    std::optional<std::string> card_type;
    if (present)
      if (auto p = options.atrs.match(atr)) card_type = p->card_type;
    // A reader in trouble (unplugged, a USB error) is only UNAVAILABLE:
    // pcsc-lite then gives no counter (0), which says nothing of cards.
    const bool counted = (s.dwEventState & SCARD_STATE_UNAVAILABLE) == 0;
    bool was_present = false;
    bool moved = false;
    {
      std::lock_guard lock(mutex);
      auto it = readers.find(name);
      if (it == readers.end()) return;
      Known& known = it->second;
      was_present = known.state.card_present;
      // Without a baseline ("never seen") the first look sets it.
      moved = counted && known.events && *known.events != count;
      if (counted) known.events = count;
      known.state.card_present = present;
      known.state.atr = present ? atr : Bytes{};
      known.state.card_type = card_type;
    }
    if (!was_present && present) {
      inserted(name, atr, card_type);
    } else if (was_present && !present) {
      removed(name);
    } else if (present && moved) {  // pulled and put back between two looks
      removed(name);
      inserted(name, atr, card_type);
    } else if (!present && moved) {  // put in and pulled between two looks
      inserted(name, {}, std::nullopt);
      removed(name);
    }
  }

  void inserted(const std::string& reader, const Bytes& atr, const std::optional<std::string>& card_type) {
    spdlog::info("PC/SC: card inserted in {} ({})", reader, card_type.value_or("unknown card"));
    emit(Event::Type::card_inserted, reader, atr, card_type);
  }

  void removed(const std::string& reader) {
    spdlog::info("PC/SC: card removed from {}", reader);
    emit(Event::Type::card_removed, reader);
  }

  // Blocks in SCardGetStatusChange until pcscd goes away or stop().
  void watch(const Context& ctx) {
    std::deque<std::string> names;  // stable c_str() for the reader states
    std::vector<SCARD_READERSTATE> states;
    std::size_t first = 1;  // states[0] is PnP's, but with 16 readers
    DWORD pnp_state = 0;
    bool warned_of_many = false;
    auto relist = [&] {
      // pcsc-lite 1.9 (Debian 12's) notices a reader that comes during a
      // look only: one that came after the list was taken, while a new
      // reader's PIN pad was asked (a second slot of the same device), would
      // not be seen until another reader came or went. So the list is taken
      // again until it holds still; what comes between the last list and
      // the next look's start (microseconds) can still be missed.
      std::vector<std::string> current = ctx.readers();
      for (int round = 0;; ++round) {
        std::vector<std::string> known_names;
        {
          std::lock_guard lock(mutex);
          for (auto& [name, k] : readers) known_names.push_back(name);
        }
        if (stopping) return;
        for (const auto& name : known_names)
          if (std::find(current.begin(), current.end(), name) == current.end()) remove_reader(name);
        std::vector<std::string> added;
        for (const auto& name : current)
          if (std::find(known_names.begin(), known_names.end(), name) == known_names.end()) added.push_back(name);
        add_readers(added);
        std::vector<std::string> now = ctx.readers();
        if (now == current || round == kMaxRelists) break;
        current = std::move(now);
      }
      names.assign(current.begin(), current.end());
      if (names.size() > kMaxStates) {
        if (!std::exchange(warned_of_many, true))
          spdlog::warn("PC/SC: {} readers; card events are watched in the first {} only", names.size(), kMaxStates);
        names.resize(kMaxStates);
      }
      // pcsc-lite takes at most 16 states a call, and pcscd serves at most 16
      // readers: with that many, PnP is left out. No reader can come then,
      // and one that goes shows in its own state.
      first = names.size() < kMaxStates ? 1 : 0;
      states.assign(first + names.size(), SCARD_READERSTATE{});
      if (first == 1) {
        states[0].szReader = kPnp;
        states[0].dwCurrentState = pnp_state;
      }
      for (std::size_t i = 0; i < names.size(); ++i) {
        states[first + i].szReader = names[i].c_str();
        states[first + i].dwCurrentState = SCARD_STATE_UNAWARE;
      }
    };
    relist();
    // pcscd's return is announced (service_up, whose handler has the
    // modules look for tokens) once its readers and cards are reported:
    // else a module's scan could find a card the monitor has not reported
    // yet, and "token present" would come before "reader added" and "card
    // inserted" (docs/protocol.md promises the order). So the first look
    // does not wait: with no reader there is nothing to report. (A new
    // context after another error is no return.)
    auto announce = [&] {
      if (!std::exchange(announced, true)) emit(Event::Type::service_up, "");
    };
    while (!stopping) {
      const LONG rv = SCardGetStatusChange(ctx.handle(), announced ? INFINITE : 0, states.data(),
                                           static_cast<DWORD>(states.size()));
      if (rv == static_cast<LONG>(SCARD_E_CANCELLED)) {
        if (stopping) return;
        continue;
      }
      if (rv == static_cast<LONG>(SCARD_E_TIMEOUT)) {
        // Only the look that does not wait times out. A reader that came
        // during it is in the next look's count of readers (pcsc-lite 1.9.9
        // takes it at each call's start), where PnP would never tell of it:
        // list again first.
        std::vector<std::string> now = ctx.readers();
        now.resize(std::min(now.size(), kMaxStates));
        if (!std::equal(now.begin(), now.end(), names.begin(), names.end())) {
          relist();
          continue;
        }
        announce();
        continue;
      }
      if (rv == static_cast<LONG>(SCARD_E_UNKNOWN_READER)) {
        relist();
        continue;
      }
      check(rv, "SCardGetStatusChange");
      looked = true;
      bool again = false;
      for (std::size_t i = first; i < states.size(); ++i) {
        SCARD_READERSTATE& s = states[i];
        if ((s.dwEventState & (SCARD_STATE_UNKNOWN | SCARD_STATE_IGNORE)) != 0) {
          again = true;
          continue;
        }
        if ((s.dwEventState & SCARD_STATE_CHANGED) != 0) update(s);
        s.dwCurrentState = s.dwEventState & ~static_cast<DWORD>(SCARD_STATE_CHANGED);
      }
      if (first == 1) {
        pnp_state = states[0].dwEventState & ~static_cast<DWORD>(SCARD_STATE_CHANGED);
        if ((states[0].dwEventState & SCARD_STATE_CHANGED) != 0) again = true;
      }
      // A reader that came or went during this look is listed again and
      // looked at before pcscd's return is announced.
      if (again)
        relist();
      else
        announce();
    }
  }
};

Monitor::Monitor(asio::io_context& io, MonitorOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {}

Monitor::~Monitor() { stop(); }

void Monitor::on_event(Handler handler) { impl_->handlers.push_back(std::move(handler)); }

void Monitor::start() {
  if (impl_->thread.joinable()) return;
  impl_->thread = std::thread([impl = impl_] {
    pthread_setname_np(pthread_self(), "pcsc-monitor");
    impl->run();
    std::lock_guard lock(impl->mutex);
    impl->ended = true;
    impl->wake.notify_all();
  });
}

void Monitor::stop() {
  impl_->stopping = true;
  if (!impl_->thread.joinable()) return;
  // SCardCancel ends a look under way only: one the thread was entering as
  // the flag was set would miss it and wait for ever. So, until the thread
  // has ended, cancel again every 50 ms.
  std::unique_lock lock(impl_->mutex);
  while (!impl_->ended) {
    if (impl_->context != nullptr) impl_->context->cancel();
    impl_->wake.notify_all();
    impl_->wake.wait_for(lock, std::chrono::milliseconds(50), [this] { return impl_->ended; });
  }
  lock.unlock();
  impl_->thread.join();
}

bool Monitor::available() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->available;
}

std::vector<ReaderState> Monitor::readers() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<ReaderState> out;
  for (const auto& [name, known] : impl_->readers) out.push_back(known.state);
  return out;
}

}  // namespace kortti::pcsc
