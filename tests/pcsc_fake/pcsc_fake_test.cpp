// pcsc/ against the link-time PC/SC fake (tests/pcsc_fake/fake.hpp): what
// vpcd and pcscd cannot be made to show.

#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cmath>
#include <deque>
#include <thread>

#include "common/worker.hpp"
#include "pcsc/pcsc.hpp"
#include "tests/pcsc_fake/fake.hpp"

namespace kortti::pcsc {
namespace {

using namespace std::chrono_literals;
const Bytes kHealthcareAtr = *parse_hex("3BDF96008031FE450031B8640429ECC173940180829000DA");
const Bytes kOtherAtr = *parse_hex("3B8F8001804F0CA000000306030001000000006A");

// --- PIN-pad features ---

TEST(PinPadFeatures, VerifyPinDirectMakesAPinPad) {
  const Bytes tlv = {0x06, 0x04, 0x42, 0x33, 0x00, 0x12, 0x0A, 0x04, 0x42, 0x33, 0x00, 0x1A};
  const auto f = parse_features(tlv);
  EXPECT_TRUE(f.verify_pin_direct);
  EXPECT_TRUE(f.pinpad());
}

TEST(PinPadFeatures, StartAndFinishTogetherMakeAPinPad) {
  EXPECT_TRUE(parse_features(Bytes{0x01, 0x04, 0, 0, 0, 1, 0x02, 0x04, 0, 0, 0, 2}).pinpad());
  EXPECT_FALSE(parse_features(Bytes{0x01, 0x04, 0, 0, 0, 1}).pinpad());
  EXPECT_FALSE(parse_features(Bytes{0x07, 0x04, 0, 0, 0, 1}).pinpad()) << "modify alone is no verify";
}

TEST(PinPadFeatures, MalformedAnswersAreIgnoredNotTrusted) {
  EXPECT_FALSE(parse_features(Bytes{0x06, 0x04, 0x42}).pinpad());        // truncated
  EXPECT_FALSE(parse_features(Bytes{0x06, 0x02, 0x42, 0x33}).pinpad());  // wrong length
  EXPECT_FALSE(parse_features(Bytes{}).pinpad());
}

// FINEID "PIN information" GET DATA for PIN1 (pcsc/pin_counter.cpp).
const Bytes kPin1Query = {0x00, 0xCB, 0x00, 0xFF, 0x05, 0xA0, 0x03, 0x83, 0x01, 0x11, 0x00};

// A reader with a healthcare card whose PIN1 has `tries` left.
pcsc_fake::Reader counting(const std::string& name, std::uint8_t tries) {
  return pcsc_fake::Reader::named(name)
      .card(kHealthcareAtr)
      .answering(kPin1Query, {0xA0, 0x0A, 0x83, 0x01, 0x11, 0xDF, 0x21, 0x04, tries, 0xFF, 0xA5, 0x00, 0x90, 0x00});
}

class Fake : public ::testing::Test {
 protected:
  void SetUp() override { pcsc_fake::reset(); }
  // Whatever a test did, korttid never connected or disconnected as another
  // of its threads called on a handle: pcsc-lite's client library can crash
  // then (tests/pcsc_fake/fake.cpp, Lists).
  // And no probe or count a test started is left running, to call in on
  // the next test's readers or log as the program exits.
  void TearDown() override {
    EXPECT_EQ(pcsc_fake::list_clashes(), 0);
    EXPECT_TRUE(Worker::all_ended(5s)) << "a probe or count still runs";
  }
};

TEST_F(Fake, ProbeAsksTheReaderAndErrorsMeanNoPinPad) {
  pcsc_fake::add_reader(pcsc_fake::Reader::named("Pinpad Reader").with_features({0x06, 0x04, 0x42, 0x33, 0x00, 0x12}));
  pcsc_fake::add_reader(
      pcsc_fake::Reader::named("Broken Reader").failing_control(static_cast<LONG>(SCARD_F_COMM_ERROR)));
  pcsc_fake::add_reader(pcsc_fake::Reader::named("Plain Reader"));
  EXPECT_TRUE(probe_pinpad("Pinpad Reader").pinpad());
  EXPECT_FALSE(probe_pinpad("Broken Reader").pinpad());
  EXPECT_FALSE(probe_pinpad("Plain Reader").pinpad());
  EXPECT_FALSE(probe_pinpad("No Such Reader").pinpad());
}

// --- errors ---

TEST_F(Fake, ErrorsNameTheCodeTheCallAndTheSite) {
  pcsc_fake::service(false);
  try {
    const Context context;
    FAIL() << "no pcscd, no context";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), static_cast<LONG>(SCARD_E_NO_SERVICE));
    EXPECT_EQ(e.call(), "SCardEstablishContext");
    EXPECT_TRUE(e.service_gone());
    EXPECT_NE(std::string(e.what()).find("SCARD_E_NO_SERVICE"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("handles.cpp:"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(
      Error(static_cast<LONG>(SCARD_W_REMOVED_CARD), "SCardTransmit", std::source_location::current()).card_gone());
}

// --- FinEID PIN counter ---

TEST_F(Fake, FineidPinCounterReadsDf21) {
  const Bytes query2 = {0x00, 0xCB, 0x00, 0xFF, 0x05, 0xA0, 0x03, 0x83, 0x01, 0x82, 0x00};
  pcsc_fake::add_reader(counting("R", 4).answering(query2, {0x6A, 0x88}));
  EXPECT_EQ(read_fineid_pin_tries("R", 0x11), 4);
  EXPECT_EQ(read_fineid_pin_tries("R", 0x82), std::nullopt) << "an error status is no count";
  EXPECT_EQ(read_fineid_pin_tries("No such reader", 0x11), std::nullopt);
}

// A pcscd that went and came back: korttid's own connections work again.
TEST_F(Fake, ConnectionsWorkAgainWhenPcscdComesBack) {
  pcsc_fake::add_reader(counting("R", 4));
  EXPECT_EQ(read_fineid_pin_tries("R", 0x11), 4);
  pcsc_fake::service(false);
  EXPECT_EQ(read_fineid_pin_tries("R", 0x11), std::nullopt);
  pcsc_fake::service(true);
  EXPECT_EQ(read_fineid_pin_tries("R", 0x11), 4);
  pcsc_fake::service(false);
  pcsc_fake::service(true);
  EXPECT_EQ(read_fineid_pin_tries("R", 0x11), 4);
}

// A card another program holds a transaction on (a PIN typed on the pad):
// pcscd's SCardConnect waits for it, and the token's worker, which asks for
// the count after a login, must not wait with it.
TEST_F(Fake, APinCounterOfACardAnotherProgramHoldsIsUnknownAndDoesNotWait) {
  pcsc_fake::add_reader(counting("R", 3).held_by_another());
  struct Release {
    ~Release() { pcsc_fake::release_transaction("R"); }
  } const release;
  auto asked = std::async(std::launch::async, [] { return read_fineid_pin_tries("R", 0x11); });
  ASSERT_EQ(asked.wait_for(10s), std::future_status::ready) << "the read waited for the other program";
  EXPECT_EQ(asked.get(), std::nullopt);
  // A second read while the first still waits does not start another.
  EXPECT_EQ(read_fineid_pin_tries("R", 0x11), std::nullopt);
  pcsc_fake::release_transaction("R");
  std::optional<int> tries;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!tries && std::chrono::steady_clock::now() < deadline) tries = read_fineid_pin_tries("R", 0x11);
  EXPECT_EQ(tries, 3) << "known once the card is free";
}

// --- the monitor ---

class MonitorTest : public Fake {
 protected:
  // Runs the io_context until `n` more events have arrived (or 5 s pass).
  std::vector<std::string> next(Monitor& m, std::size_t n) {
    if (!subscribed_) {
      m.on_event([this](const Event& e) {
        std::string what = std::string(name_of(e.type));
        if (e.type == Event::Type::reader_added || e.type == Event::Type::reader_removed) what = "reader " + what;
        if (e.type == Event::Type::card_inserted || e.type == Event::Type::card_removed) what = "card " + what;
        if (!e.reader.empty()) what += " " + e.reader;
        if (e.card_type) what += " " + *e.card_type;
        seen_.push_back(what);
      });
      subscribed_ = true;
      m.start();
    }
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (seen_.size() < n && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_for(20ms);
    }
    std::vector<std::string> out(seen_.begin(), seen_.begin() + static_cast<long>(std::min(n, seen_.size())));
    seen_.erase(seen_.begin(), seen_.begin() + static_cast<long>(out.size()));
    return out;
  }

  // Whether the monitor has `name` as a PIN pad; waits up to `patience`
  // for the answer of a probe that comes late.
  static bool pinpad(const Monitor& m, const std::string& name, std::chrono::milliseconds patience = 0ms) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    for (;;) {
      for (const auto& r : m.readers())
        if (r.name == name && r.pinpad) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
  }

  // Whether the monitor waits in a look now (within 5 s): what changes from
  // here on comes during a look.
  static bool looking() {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (pcsc_fake::blocked() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    return pcsc_fake::blocked() == 1;
  }

  boost::asio::io_context io_;
  std::deque<std::string> seen_;
  bool subscribed_ = false;
};

TEST_F(MonitorTest, ReportsWhatIsThereAtStartThenEachChange) {
  pcsc_fake::add_reader(pcsc_fake::Reader::named("R0").card(kHealthcareAtr));
  pcsc_fake::add_reader(pcsc_fake::Reader::named("R1"));
  Monitor m(io_, {});
  EXPECT_EQ(next(m, 4), (std::vector<std::string>{"reader added R0", "reader added R1",
                                                  "card inserted R0 dvv_healthcare", "service_up"}));
  EXPECT_TRUE(m.available());
  pcsc_fake::insert("R1", kOtherAtr);
  EXPECT_EQ(next(m, 1), std::vector<std::string>{"card inserted R1"});
  pcsc_fake::remove("R0");
  EXPECT_EQ(next(m, 1), std::vector<std::string>{"card removed R0"});
  const auto readers = m.readers();
  ASSERT_EQ(readers.size(), 2U);
  EXPECT_FALSE(readers[0].card_present);
  EXPECT_TRUE(readers[1].card_present);
  EXPECT_FALSE(readers[1].card_type.has_value()) << "unknown cards have no type but are still listed";
}

TEST_F(MonitorTest, ACardSwappedBetweenTwoLooksIsRemovedThenInserted) {
  pcsc_fake::add_reader(pcsc_fake::Reader::named("R0").card(kOtherAtr));
  Monitor m(io_, {});
  next(m, 3);
  pcsc_fake::swap("R0", kHealthcareAtr);
  EXPECT_EQ(next(m, 2), (std::vector<std::string>{"card removed R0", "card inserted R0 dvv_healthcare"}));
}

TEST_F(MonitorTest, ReadersComingAndGoingThroughPnp) {
  pcsc_fake::add_reader(pcsc_fake::Reader::named("R0"));
  Monitor m(io_, {});
  next(m, 2);
  ASSERT_TRUE(looking());
  pcsc_fake::add_reader(pcsc_fake::Reader::named("USB Reader").card(kOtherAtr));
  EXPECT_EQ(next(m, 2), (std::vector<std::string>{"reader added USB Reader", "card inserted USB Reader"}));
  pcsc_fake::remove_reader("USB Reader");
  EXPECT_EQ(next(m, 2), (std::vector<std::string>{"card removed USB Reader", "reader removed USB Reader"}));
}

TEST_F(MonitorTest, PcscdGoneAndBackReportsEverythingGoneThenBack) {
  pcsc_fake::add_reader(pcsc_fake::Reader::named("R0").card(kHealthcareAtr));
  MonitorOptions quick;
  quick.min_backoff = 10ms;
  quick.max_backoff = 40ms;
  Monitor m(io_, std::move(quick));
  next(m, 3);
  pcsc_fake::service(false);
  EXPECT_EQ(next(m, 3), (std::vector<std::string>{"card removed R0", "reader removed R0", "service_down"}));
  EXPECT_FALSE(m.available());
  EXPECT_TRUE(m.readers().empty());
  pcsc_fake::service(true);
  EXPECT_EQ(next(m, 3), (std::vector<std::string>{"reader added R0", "card inserted R0 dvv_healthcare", "service_up"}));
}

// pcscd's return is announced (service_up) once what it has is reported: a
// module's scan for tokens, which that event starts, cannot find a card
// before the card's own event. With no reader there is nothing to report
// first.
TEST_F(MonitorTest, APcscdWithoutReadersIsAnnouncedAtOnce) {
  Monitor m(io_, {});
  EXPECT_EQ(next(m, 1), std::vector<std::string>{"service_up"});
  EXPECT_TRUE(m.available());
  ASSERT_TRUE(looking());
  pcsc_fake::add_reader(pcsc_fake::Reader::named("R0").card(kHealthcareAtr));
  EXPECT_EQ(next(m, 2), (std::vector<std::string>{"reader added R0", "card inserted R0 dvv_healthcare"}));
}

// pcsc-lite 1.9.9 counts the readers at each look's start and tells of a
// reader that comes against that count only: one that came during the
// first look (which does not wait) would be in the next look's count, and
// never told of.
TEST_F(MonitorTest, AReaderThatComesDuringTheFirstLookIsReported) {
  Monitor m(io_, {});
  pcsc_fake::hold_next_wait();  // the first look
  EXPECT_TRUE(next(m, 0).empty());
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!pcsc_fake::wait_held() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(pcsc_fake::wait_held());
  pcsc_fake::add_reader(pcsc_fake::Reader::named("R0"));
  pcsc_fake::release_wait();
  EXPECT_EQ(next(m, 2), (std::vector<std::string>{"reader added R0", "service_up"}));
}

// pcscd gone during the first look, before its return was announced: it
// answered (available), so its readers and its going are reported; no
// service_up comes for it.
TEST_F(MonitorTest, APcscdGoneDuringItsFirstLookIsReportedGoneNotAnnounced) {
  pcsc_fake::add_reader(pcsc_fake::Reader::named("R0").card(kHealthcareAtr));
  MonitorOptions slow;
  slow.min_backoff = 60s;  // no second try within the test
  Monitor m(io_, std::move(slow));
  pcsc_fake::hold_next_wait();  // the first look
  EXPECT_EQ(next(m, 1), std::vector<std::string>{"reader added R0"});
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!pcsc_fake::wait_held() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(pcsc_fake::wait_held());
  EXPECT_TRUE(m.available()) << "pcscd answers";
  pcsc_fake::service(false);
  pcsc_fake::release_wait();
  EXPECT_EQ(next(m, 2), (std::vector<std::string>{"reader removed R0", "service_down"}));
  EXPECT_FALSE(m.available());
  EXPECT_TRUE(m.readers().empty());
  io_.restart();
  io_.run_for(200ms);
  EXPECT_TRUE(seen_.empty()) << seen_.front();
}

// A reader in trouble (unplugged before pcscd's hot-plug notices, a USB
// error) is UNAVAILABLE with no counter: that 0 is not a card that came and
// went while nobody looked.
TEST_F(MonitorTest, AReaderThatIsUnavailableForAWhileMakesNoCardEvents) {
  pcsc_fake::add_reader(pcsc_fake::Reader::named("R0"));
  Monitor m(io_, {});
  next(m, 2);
  // The first look has been taken (the counter's baseline) before the card
  // comes and goes.
  ASSERT_TRUE(looking());
  pcsc_fake::insert("R0", kOtherAtr);
  pcsc_fake::remove("R0");
  EXPECT_EQ(next(m, 2), (std::vector<std::string>{"card inserted R0", "card removed R0"}));
  // Each state is looked at before the next comes.
  for (const bool trouble : {true, false}) {
    const int looked = pcsc_fake::looks();
    pcsc_fake::set_unavailable("R0", trouble);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (pcsc_fake::looks() == looked && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_for(20ms);
    }
    ASSERT_GT(pcsc_fake::looks(), looked);
  }
  // The first event after the trouble is the card that now comes.
  pcsc_fake::insert("R0", kHealthcareAtr);
  EXPECT_EQ(next(m, 1), std::vector<std::string>{"card inserted R0 dvv_healthcare"});
}

// The second slot of a device appears while korttid asks the first whether
// it has a PIN pad: pcsc-lite 1.9 tells of a reader that comes during a
// look only, so one that came before the look began must be found by
// listing again.
TEST_F(MonitorTest, ASecondSlotThatComesWhileTheFirstIsAskedIsSeen) {
  pcsc_fake::add_reader(pcsc_fake::Reader::named("Dual 00").bringing(pcsc_fake::Reader::named("Dual 01")));
  Monitor m(io_, {});
  EXPECT_EQ(next(m, 3), (std::vector<std::string>{"reader added Dual 00", "reader added Dual 01", "service_up"}));
  pcsc_fake::insert("Dual 01", kOtherAtr);
  EXPECT_EQ(next(m, 1), std::vector<std::string>{"card inserted Dual 01"});
}

// Another program holds a transaction on a card (a PIN typed on the
// reader's pad) as the reader is first seen: pcscd's SCardConnect waits for
// it, even a direct one. The monitor does not: the reader and its card are
// reported, and whether it has a PIN pad when the transaction ends.
TEST_F(MonitorTest, AReaderHeldByAnotherProgramDoesNotStopTheEvents) {
  pcsc_fake::add_reader(
      pcsc_fake::Reader::named("R0").card(kHealthcareAtr).with_features({0x06, 0x04, 0, 0, 0, 1}).held_by_another());
  pcsc_fake::add_reader(pcsc_fake::Reader::named("R1"));
  struct Release {
    ~Release() { pcsc_fake::release_transaction("R0"); }
  };
  Monitor m(io_, {});
  const Release release;  // before the monitor goes, whatever happened
  EXPECT_EQ(next(m, 4), (std::vector<std::string>{"reader added R0", "reader added R1",
                                                  "card inserted R0 dvv_healthcare", "service_up"}));
  pcsc_fake::insert("R1", kOtherAtr);
  EXPECT_EQ(next(m, 1), std::vector<std::string>{"card inserted R1"});
  EXPECT_FALSE(pinpad(m, "R0"));
  // korttid's exit waits for it (and then exits without its cleanup).
  EXPECT_FALSE(Worker::all_ended(100ms)) << "the waiting probe is counted among korttid's threads";
  pcsc_fake::release_transaction("R0");
  EXPECT_TRUE(pinpad(m, "R0", 5s)) << "the probe's answer, once the card was free";
}

// Readers asked all at once whether they are PIN pads (korttid starting
// with several readers; seen crashing pcsc-lite's client library under CI),
// while a token's worker reads a PIN counter: korttid's connections are made,
// used and ended one at a time.
TEST_F(MonitorTest, ReadersAskedAtOnceAreAskedOneConnectionAtATime) {
  std::vector<std::string> expected;
  for (int i = 0; i < 6; ++i) {
    const std::string name = "R" + std::to_string(i);
    pcsc_fake::add_reader(pcsc_fake::Reader::named(name).with_features({0x06, 0x04, 0, 0, 0, 1}));
    expected.push_back("reader added " + name);
  }
  pcsc_fake::add_reader(counting("Card reader", 5));
  expected.insert(expected.end(),
                  {"reader added Card reader", "card inserted Card reader dvv_healthcare", "service_up"});
  Monitor m(io_, {});
  std::atomic<bool> done = false;
  auto counts = std::async(std::launch::async, [&done] {
    std::vector<std::optional<int>> read;
    while (!done) read.push_back(read_fineid_pin_tries("Card reader", 0x11));
    return read;
  });
  EXPECT_EQ(next(m, expected.size()), expected);
  done = true;
  for (const auto& tries : counts.get()) EXPECT_EQ(tries, 5);
  for (const auto& r : m.readers()) EXPECT_EQ(r.pinpad, r.name != "Card reader") << r.name;
  EXPECT_EQ(pcsc_fake::list_clashes(), 0) << "a connection made or ended as another thread called on a handle";
}

// While another program holds the card in one reader, a second reader is
// plugged in again and again: its probe waits behind the first reader's,
// and one waits, not one per plug; it asks once more when it is done, for
// the reader as it is then.
TEST_F(MonitorTest, AReaderPluggedAgainWhileItsProbeWaitsIsAskedOnceMoreNotOncePerPlug) {
  pcsc_fake::add_reader(pcsc_fake::Reader::named("R0").card(kHealthcareAtr).held_by_another());
  const auto r1 = [] { return pcsc_fake::Reader::named("R1").with_features({0x06, 0x04, 0, 0, 0, 1}); };
  struct Release {
    ~Release() { pcsc_fake::release_transaction("R0"); }
  };
  Monitor m(io_, {});
  const Release release;
  EXPECT_EQ(next(m, 3), (std::vector<std::string>{"reader added R0", "card inserted R0 dvv_healthcare", "service_up"}));
  // Each change during a look: pcsc-lite 1.9.9 tells of those only.
  ASSERT_TRUE(looking());
  pcsc_fake::add_reader(r1());
  EXPECT_EQ(next(m, 1), std::vector<std::string>{"reader added R1"});
  for (int plug = 0; plug < 5; ++plug) {
    ASSERT_TRUE(looking());
    pcsc_fake::remove_reader("R1");
    EXPECT_EQ(next(m, 1), std::vector<std::string>{"reader removed R1"});
    ASSERT_TRUE(looking());
    pcsc_fake::add_reader(r1());
    EXPECT_EQ(next(m, 1), std::vector<std::string>{"reader added R1"});
  }
  pcsc_fake::release_transaction("R0");
  EXPECT_TRUE(pinpad(m, "R1", 5s)) << "the waiting probe's answer";
  // Probes queued behind it would connect at once.
  const auto settle = std::chrono::steady_clock::now() + 500ms;
  while (pcsc_fake::connects("R1") < 3 && std::chrono::steady_clock::now() < settle) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(pcsc_fake::connects("R1"), 2) << "the probe that waited, and once more";
}

// A pcscd that gives a context and then fails at once (one that crashes as
// it starts): the monitor's waits between tries still grow.
TEST_F(MonitorTest, AServiceThatFailsRightAfterEachConnectIsTriedLessAndLessOften) {
  pcsc_fake::add_reader(pcsc_fake::Reader::named("R0"));
  pcsc_fake::fail_after_connect(true);
  MonitorOptions o;
  o.min_backoff = 10ms;
  o.max_backoff = 600s;  // no cap within the test: the bound below holds
  Monitor m(io_, std::move(o));
  const auto began = std::chrono::steady_clock::now();
  m.start();
  std::this_thread::sleep_for(1s);
  m.stop();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began);
  // Waits of 10, 20, 40 ... ms: a try at 0, 10, 30, 70 ... ms, so in T ms at
  // most 2 + log2(T / 10 + 1) tries, however slow the machine (8 in a
  // second; a wait of 10 ms after each try would make 50 or more).
  const int most = 2 + static_cast<int>(std::log2(static_cast<double>(ms.count()) / 10.0 + 1.0));
  EXPECT_LE(pcsc_fake::contexts(), most) << ms.count() << " ms";
  EXPECT_GE(pcsc_fake::contexts(), 2);
}

TEST_F(MonitorTest, PinPadOverridesWinOverTheReadersOwnAnswer) {
  pcsc_fake::add_reader(pcsc_fake::Reader::named("Lying Reader 1").with_features({0x06, 0x04, 0, 0, 0, 1}));
  pcsc_fake::add_reader(pcsc_fake::Reader::named("Honest Reader"));
  MonitorOptions o;
  o.overrides.push_back({"Lying Reader", false});
  o.overrides.push_back({"Honest", true});
  Monitor m(io_, std::move(o));
  next(m, 3);
  std::map<std::string, bool> pinpad;
  for (const auto& r : m.readers()) pinpad[r.name] = r.pinpad;
  EXPECT_FALSE(pinpad.at("Lying Reader 1"));
  EXPECT_TRUE(pinpad.at("Honest Reader"));
}

TEST_F(MonitorTest, StopCancelsTheBlockedWait) {
  pcsc_fake::add_reader(pcsc_fake::Reader::named("R0"));
  Monitor m(io_, {});
  next(m, 2);
  // Only a wait under way needs cancelling: a monitor between two looks sees
  // the stop flag itself.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (pcsc_fake::blocked() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  ASSERT_EQ(pcsc_fake::blocked(), 1);
  m.stop();
  EXPECT_GE(pcsc_fake::cancels(), 1);
  EXPECT_EQ(pcsc_fake::blocked(), 0);
}

// The race a stop can meet: the monitor has seen no stop yet and is
// entering its next look when stop() sets the flag and cancels. That cancel
// finds no call under way and is lost (pcsc-lite's SCardCancel ends a call
// under way only), so the look would wait for ever and stop() with it.
TEST_F(MonitorTest, StopEndsALookTheMonitorWasEnteringAsItCancelled) {
  pcsc_fake::add_reader(pcsc_fake::Reader::named("R0"));
  Monitor m(io_, {});
  next(m, 2);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (pcsc_fake::blocked() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  ASSERT_EQ(pcsc_fake::blocked(), 1);
  pcsc_fake::hold_next_wait();         // the look after this one
  pcsc_fake::insert("R0", kOtherAtr);  // ends this one
  EXPECT_EQ(next(m, 1), std::vector<std::string>{"card inserted R0"});
  deadline = std::chrono::steady_clock::now() + 5s;
  while (!pcsc_fake::wait_held() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(pcsc_fake::wait_held());
  auto stopped = std::async(std::launch::async, [&m] { m.stop(); });
  deadline = std::chrono::steady_clock::now() + 5s;
  while (pcsc_fake::cancels() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_GE(pcsc_fake::cancels(), 1);
  pcsc_fake::release_wait();  // the look goes on, its cancel missed
  const bool ended = stopped.wait_for(5s) == std::future_status::ready;
  EXPECT_TRUE(ended) << "stop() waits for a look nobody cancels";
  if (!ended) pcsc_fake::service(false);  // ends the look, so that the test can end
  stopped.wait();
}

TEST(AtrTable, ConfiguredPatternsWithMasksComeFirst) {
  AtrTable t;
  EXPECT_EQ(t.match(kHealthcareAtr)->card_type, "dvv_healthcare");
  EXPECT_FALSE(t.match(kOtherAtr).has_value());
  Bytes mask(kOtherAtr.size(), 0xFF);
  mask[5] = 0x00;  // any value of byte 5
  t.add({kOtherAtr, mask, "test_card", "a test card"});
  Bytes variant = kOtherAtr;
  variant[5] = 0x42;
  EXPECT_EQ(t.match(variant)->card_type, "test_card");
  variant[6] ^= 1;
  EXPECT_FALSE(t.match(variant).has_value());
  EXPECT_FALSE(parse_hex("3B D").has_value());
  EXPECT_EQ(parse_hex("3b:df 96"), (Bytes{0x3B, 0xDF, 0x96}));
}

}  // namespace
}  // namespace kortti::pcsc
