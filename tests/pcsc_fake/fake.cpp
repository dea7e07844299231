#include "tests/pcsc_fake/fake.hpp"

#include <PCSC/reader.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

namespace kortti::pcsc_fake {
namespace {

struct World {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<Reader> readers;
  bool service = true;
  int generation = 0;  // readers added or removed
  int cancels = 0;
  bool cancelled = false;
  int blocked = 0;
  bool fail_after_connect = false;
  int contexts = 0;
  SCARDCONTEXT epoch = 1;               // a context of an earlier one is of a pcscd gone since
  std::map<std::string, int> connects;  // SCardConnect calls, by reader
  int looks = 0;
  bool hold = false;  // hold_next_wait()
  bool held = false;  // a call waits at the entry
};

World& world() {
  static World w;
  return w;
}

// pcsc-lite's client library (1.9.9; 2.x still) links a new connection into
// its context's list of handles, and takes it out, under that context's lock
// only, while every call on a handle walks the contexts' lists under another:
// the two at once, on two threads, can be a crash in the real library
// (pcsc/pcsc.hpp, Card). The fake makes each take a moment, outside the
// world's lock, and counts the times they met, whatever the contexts' ages
// (stricter than the library).
struct Lists {
  std::atomic<int> changing{0};
  std::atomic<int> walking{0};
  std::atomic<int> clashes{0};
};
Lists& lists() {
  static Lists l;
  return l;
}

class ListUse {
 public:
  explicit ListUse(bool change) : mine_(change ? lists().changing : lists().walking) {
    ++mine_;
    if ((change ? lists().walking : lists().changing) > 0) ++lists().clashes;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ~ListUse() { --mine_; }
  ListUse(const ListUse&) = delete;
  ListUse& operator=(const ListUse&) = delete;

 private:
  std::atomic<int>& mine_;
};
const bool kChange = true;
const bool kWalk = false;

void touch(World& w) { w.changed.notify_all(); }

Reader* find(World& w, const std::string& name) {
  for (auto& r : w.readers)
    if (r.name == name) return &r;
  return nullptr;
}

DWORD state_of(const Reader& r) {
  if (r.unavailable) return SCARD_STATE_UNAVAILABLE;
  DWORD s = r.present ? SCARD_STATE_PRESENT : SCARD_STATE_EMPTY;
  return s | (r.events << 16);
}

}  // namespace

void reset() {
  World& w = world();
  std::lock_guard lock(w.mutex);
  w.readers.clear();
  w.service = true;
  w.generation = 0;
  w.cancels = 0;
  w.cancelled = false;
  w.hold = false;
  w.fail_after_connect = false;
  w.contexts = 0;
  w.looks = 0;
  w.connects.clear();
  lists().clashes = 0;
  touch(w);
}

void add_reader(Reader reader) {
  World& w = world();
  std::lock_guard lock(w.mutex);
  w.readers.push_back(std::move(reader));
  ++w.generation;
  touch(w);
}

void remove_reader(const std::string& name) {
  World& w = world();
  std::lock_guard lock(w.mutex);
  std::erase_if(w.readers, [&](const Reader& r) { return r.name == name; });
  ++w.generation;
  touch(w);
}

void insert(const std::string& name, Bytes atr) {
  World& w = world();
  std::lock_guard lock(w.mutex);
  Reader* r = find(w, name);
  r->present = true;
  r->atr = std::move(atr);
  ++r->events;
  touch(w);
}

void remove(const std::string& name) {
  World& w = world();
  std::lock_guard lock(w.mutex);
  Reader* r = find(w, name);
  r->present = false;
  r->atr.clear();
  ++r->events;
  touch(w);
}

void swap(const std::string& name, Bytes atr) {
  World& w = world();
  std::lock_guard lock(w.mutex);
  Reader* r = find(w, name);
  r->atr = std::move(atr);
  r->events += 2;
  touch(w);
}

void set_unavailable(const std::string& name, bool unavailable) {
  World& w = world();
  std::lock_guard lock(w.mutex);
  find(w, name)->unavailable = unavailable;
  touch(w);
}

void release_transaction(const std::string& name) {
  World& w = world();
  std::lock_guard lock(w.mutex);
  if (Reader* r = find(w, name)) r->transaction_held = false;
  touch(w);
}

void fail_after_connect(bool fail) {
  World& w = world();
  std::lock_guard lock(w.mutex);
  w.fail_after_connect = fail;
}

int contexts() {
  World& w = world();
  std::lock_guard lock(w.mutex);
  return w.contexts;
}

int looks() {
  World& w = world();
  std::lock_guard lock(w.mutex);
  return w.looks;
}

int list_clashes() { return lists().clashes; }

int connects(const std::string& reader) {
  World& w = world();
  std::lock_guard lock(w.mutex);
  auto it = w.connects.find(reader);
  return it == w.connects.end() ? 0 : it->second;
}

void service(bool up) {
  World& w = world();
  std::lock_guard lock(w.mutex);
  w.service = up;
  if (!up) ++w.epoch;
  touch(w);
}

int cancels() {
  World& w = world();
  std::lock_guard lock(w.mutex);
  return w.cancels;
}

int blocked() {
  World& w = world();
  std::lock_guard lock(w.mutex);
  return w.blocked;
}

void hold_next_wait() {
  World& w = world();
  std::lock_guard lock(w.mutex);
  w.hold = true;
}

bool wait_held() {
  World& w = world();
  std::lock_guard lock(w.mutex);
  return w.held;
}

void release_wait() {
  World& w = world();
  std::lock_guard lock(w.mutex);
  w.hold = false;
  touch(w);
}

}  // namespace kortti::pcsc_fake

using namespace kortti::pcsc_fake;

extern "C" {

const SCARD_IO_REQUEST g_rgSCardT0Pci = {SCARD_PROTOCOL_T0, sizeof(SCARD_IO_REQUEST)};
const SCARD_IO_REQUEST g_rgSCardT1Pci = {SCARD_PROTOCOL_T1, sizeof(SCARD_IO_REQUEST)};
const SCARD_IO_REQUEST g_rgSCardRawPci = {SCARD_PROTOCOL_RAW, sizeof(SCARD_IO_REQUEST)};

const char* pcsc_stringify_error(LONG) { return "fake PC/SC"; }

LONG SCardEstablishContext(DWORD, LPCVOID, LPCVOID, LPSCARDCONTEXT context) {
  World& w = world();
  std::lock_guard lock(w.mutex);
  if (!w.service) return SCARD_E_NO_SERVICE;
  *context = w.epoch;
  ++w.contexts;
  return SCARD_S_SUCCESS;
}

LONG SCardReleaseContext(SCARDCONTEXT) { return SCARD_S_SUCCESS; }

LONG SCardCancel(SCARDCONTEXT) {
  World& w = world();
  std::lock_guard lock(w.mutex);
  ++w.cancels;
  // As pcsc-lite: only a call under way is cancelled; otherwise nothing.
  if (w.blocked > 0) w.cancelled = true;
  touch(w);
  return SCARD_S_SUCCESS;
}

LONG SCardListReaders(SCARDCONTEXT, LPCSTR, LPSTR out, LPDWORD size) {
  World& w = world();
  std::lock_guard lock(w.mutex);
  if (!w.service || w.fail_after_connect) return SCARD_E_NO_SERVICE;
  if (w.readers.empty()) return SCARD_E_NO_READERS_AVAILABLE;
  std::string multi;
  for (const auto& r : w.readers) multi += r.name + '\0';
  multi += '\0';
  if (out == nullptr) {
    *size = static_cast<DWORD>(multi.size());
    return SCARD_S_SUCCESS;
  }
  if (*size < multi.size()) return SCARD_E_INSUFFICIENT_BUFFER;
  std::memcpy(out, multi.data(), multi.size());
  *size = static_cast<DWORD>(multi.size());
  return SCARD_S_SUCCESS;
}

LONG SCardGetStatusChange(SCARDCONTEXT, DWORD timeout, SCARD_READERSTATE* states, DWORD count) {
  World& w = world();
  std::unique_lock lock(w.mutex);
  if (w.hold) {
    w.held = true;
    w.changed.wait(lock, [&w] { return !w.hold; });
    w.held = false;
  }
  constexpr const char* kPnp = R"(\\?PnP?\Notification)";
  if (!w.service) return SCARD_E_NO_SERVICE;
  for (DWORD i = 0; i < count; ++i)
    if (std::strcmp(states[i].szReader, kPnp) != 0 && find(w, states[i].szReader) == nullptr)
      return SCARD_E_UNKNOWN_READER;
  for (DWORD i = 0; i < count; ++i) states[i].dwEventState = 0;
  const std::size_t readers_at_start = w.readers.size();
  for (;;) {
    if (!w.service) return SCARD_E_NO_SERVICE;
    if (w.cancelled) {
      w.cancelled = false;
      return SCARD_E_CANCELLED;
    }
    bool any = false;
    for (DWORD i = 0; i < count; ++i) {
      SCARD_READERSTATE& s = states[i];
      if (std::strcmp(s.szReader, kPnp) == 0) {
        if (w.readers.size() != readers_at_start) {
          s.dwEventState |= SCARD_STATE_CHANGED;
          any = true;
        }
        continue;
      }
      const Reader* r = find(w, s.szReader);
      if (r == nullptr) {
        s.dwEventState = SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE;
        if ((s.dwCurrentState & SCARD_STATE_UNKNOWN) == 0) {
          s.dwEventState |= SCARD_STATE_CHANGED;
          any = true;
        }
        continue;
      }
      const DWORD now = state_of(*r);
      s.dwEventState = now;
      s.cbAtr = static_cast<DWORD>(r->atr.size());
      if (!r->atr.empty()) std::memcpy(s.rgbAtr, r->atr.data(), r->atr.size());
      if (s.dwCurrentState == SCARD_STATE_UNAWARE || (s.dwCurrentState & ~SCARD_STATE_CHANGED) != now) {
        s.dwEventState |= SCARD_STATE_CHANGED;
        any = true;
      }
    }
    if (any) {
      ++w.looks;
      return SCARD_S_SUCCESS;
    }
    if (timeout == 0) return SCARD_E_TIMEOUT;  // pcsc-lite: a look that does not wait
    ++w.blocked;
    w.changed.wait(lock);
    --w.blocked;
  }
}

LONG SCardConnect(SCARDCONTEXT context, LPCSTR reader, DWORD, DWORD, LPSCARDHANDLE card, LPDWORD protocol) {
  const LONG rv = [&]() -> LONG {
    World& w = world();
    std::unique_lock lock(w.mutex);
    ++w.connects[reader];
    w.changed.wait(lock, [&] {
      const Reader* r = find(w, reader);
      return r == nullptr || !r->transaction_held || !w.service;
    });
    if (!w.service) return SCARD_E_NO_SERVICE;
    // As pcsc-lite's client: the socket to a pcscd gone since is closed.
    if (context != w.epoch) return SCARD_F_COMM_ERROR;
    for (std::size_t i = 0; i < w.readers.size(); ++i) {
      if (w.readers[i].name == reader) {
        if (auto more = std::move(w.readers[i].brings)) {
          w.readers.push_back(std::move(*more));
          ++w.generation;
          touch(w);
        }
        *card = static_cast<SCARDHANDLE>(i + 1);
        *protocol = SCARD_PROTOCOL_T1;
        return SCARD_S_SUCCESS;
      }
    }
    return SCARD_E_UNKNOWN_READER;
  }();
  // The new handle goes into the context's list.
  if (rv == SCARD_S_SUCCESS) {
    const ListUse change(kChange);
  }
  return rv;
}

LONG SCardDisconnect(SCARDHANDLE, DWORD) {
  const ListUse change(kChange);
  return SCARD_S_SUCCESS;
}
LONG SCardBeginTransaction(SCARDHANDLE) {
  const ListUse walk(kWalk);
  return SCARD_S_SUCCESS;
}
LONG SCardEndTransaction(SCARDHANDLE, DWORD) {
  const ListUse walk(kWalk);
  return SCARD_S_SUCCESS;
}

LONG SCardControl(SCARDHANDLE card, DWORD code, LPCVOID, DWORD, LPVOID out, DWORD out_size, LPDWORD length) {
  const ListUse walk(kWalk);
  World& w = world();
  std::lock_guard lock(w.mutex);
  const Reader& r = w.readers.at(card - 1);
  if (r.control_error != SCARD_S_SUCCESS) return r.control_error;
  if (code != CM_IOCTL_GET_FEATURE_REQUEST || !r.features) return SCARD_E_UNSUPPORTED_FEATURE;
  if (out_size < r.features->size()) return SCARD_E_INSUFFICIENT_BUFFER;
  std::memcpy(out, r.features->data(), r.features->size());
  *length = static_cast<DWORD>(r.features->size());
  return SCARD_S_SUCCESS;
}

LONG SCardTransmit(SCARDHANDLE card, const SCARD_IO_REQUEST*, LPCBYTE apdu, DWORD apdu_length, SCARD_IO_REQUEST*,
                   LPBYTE out, LPDWORD out_length) {
  const ListUse walk(kWalk);
  World& w = world();
  std::lock_guard lock(w.mutex);
  const Reader& r = w.readers.at(card - 1);
  if (!r.present) return SCARD_W_REMOVED_CARD;
  auto it = r.apdus.find(kortti::Bytes(apdu, apdu + apdu_length));
  const kortti::Bytes response = it != r.apdus.end() ? it->second : kortti::Bytes{0x6D, 0x00};
  std::memcpy(out, response.data(), response.size());
  *out_length = static_cast<DWORD>(response.size());
  return SCARD_S_SUCCESS;
}

}  // extern "C"
