#pragma once

// A link-time stand-in for libpcsclite: the test binary that links it has no
// real PC/SC. It is used only for what real parts cannot show: PIN-pad
// feature answers, injected SCARD_* errors, and reader states changing in
// ways pcscd's polling cannot be made to produce on cue. SCardGetStatusChange
// answers as pcsc-lite 1.9.9 (Debian 12's) does: the PnP reader changes when
// the number of readers changes during the call (its dwCurrentState is not
// looked at); a reader unknown at the start is SCARD_E_UNKNOWN_READER, one
// removed during the call UNKNOWN|UNAVAILABLE; a reader in trouble is
// UNAVAILABLE with no counter. Its SCardConnect waits while another program
// holds a transaction on the card, as pcscd's does, and it counts what in
// pcsc-lite's client library is a crash (list_clashes()).

#include <PCSC/winscard.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.hpp"

namespace kortti::pcsc_fake {

struct Reader {
  std::string name;
  bool present = false;
  Bytes atr;
  DWORD events = 0;               // pcsc-lite's insert/remove counter
  std::optional<Bytes> features;  // CM_IOCTL_GET_FEATURE_REQUEST answer
  LONG control_error = SCARD_S_SUCCESS;
  std::map<Bytes, Bytes, BytesLess> apdus;  // command -> response
  bool unavailable = false;                 // pcscd lost it (unplugged, a USB error)
  // Another program holds a transaction on its card: SCardConnect waits,
  // as pcscd's does, until release_transaction().
  bool transaction_held = false;
  // A reader that comes when this one is first connected to: the second
  // slot of a device, appearing while the first is being looked at.
  std::shared_ptr<Reader> brings;

  static Reader named(std::string name) {
    Reader r;
    r.name = std::move(name);
    return r;
  }
  Reader&& card(Bytes card_atr) && {
    present = true;
    atr = std::move(card_atr);
    events = 1;
    return std::move(*this);
  }
  Reader&& with_features(Bytes tlv) && {
    features = std::move(tlv);
    return std::move(*this);
  }
  Reader&& failing_control(LONG code) && {
    control_error = code;
    return std::move(*this);
  }
  Reader&& held_by_another() && {
    transaction_held = true;
    return std::move(*this);
  }
  Reader&& bringing(Reader other) && {
    brings = std::make_shared<Reader>(std::move(other));
    return std::move(*this);
  }
  Reader&& answering(Bytes command, Bytes response) && {
    apdus[std::move(command)] = std::move(response);
    return std::move(*this);
  }
};

void reset();
void add_reader(Reader reader);
void remove_reader(const std::string& name);
void insert(const std::string& name, Bytes atr);
void remove(const std::string& name);
// Pulled and put back between two looks: still present, counter moved by 2.
void swap(const std::string& name, Bytes atr);
// pcscd running or not; contexts made before it went fail SCardConnect.
void service(bool up);
void set_unavailable(const std::string& name, bool unavailable);
void release_transaction(const std::string& name);
// SCardEstablishContext works, and every call after it fails with
// SCARD_E_NO_SERVICE: a pcscd that dies as it starts.
void fail_after_connect(bool fail);
int contexts();  // SCardEstablishContext calls that succeeded
int looks();     // SCardGetStatusChange calls that told of a change
// Times a connection was made or ended as another thread called on a handle
// (pcsc-lite's client library can crash then: fake.cpp, Lists).
int list_clashes();
int connects(const std::string& reader);  // SCardConnect calls for it
int cancels();                            // SCardCancel calls so far
int blocked();                            // threads blocked in SCardGetStatusChange now
// The next SCardGetStatusChange waits at its entry, before a cancel can
// reach it, until release_wait(): a thread about to look, as pcsc-lite's
// SCardCancel misses it (it ends a call under way only).
void hold_next_wait();
bool wait_held();  // a call waits at the entry now
void release_wait();

}  // namespace kortti::pcsc_fake
