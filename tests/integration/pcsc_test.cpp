// Readers and cards over real PC/SC: a private pcscd, vpcd's virtual readers,
// the kortti-vcard virtual card, OpenSC's PKCS#11 module. No mocks.

#include <algorithm>
#include <array>
#include <atomic>
#include <functional>
#include <thread>

#include "tests/support/pcsc_fixture.hpp"

namespace kortti::test {
namespace {

using namespace std::chrono_literals;
using Pcsc = PcscDaemonTest;

// `n` sign.batch items, each a fresh SHA-256 digest.
Json digest_items(int n) {
  Json items = Json::array();
  for (int i = 0; i < n; ++i)
    items.push_back({{"method", "sign.digest"},
                     {"params", {{"digest_algorithm", "sha256"}, {"digest", wstr(base64_encode(random_bytes(32)))}}}});
  return items;
}

TEST_F(Pcsc, InsertAndRemoveGiveReaderCardTokenEventsInOrderWithinASecond) {
  auto w = watcher();
  auto t0 = Clock::now();
  auto card = std::make_unique<VirtualCard>(pcscd_, CardOptions{});
  const Json inserted = expect_event(*w, "card", "inserted", 1000ms);
  EXPECT_EQ(inserted["reader"], "Virtual PCD 00 00");
  EXPECT_EQ(inserted["atr"], "3BDF96008031FE450031B8640429ECC173940180829000DA");
  EXPECT_EQ(inserted["card_type"], "dvv_healthcare");
  const Json present = expect_event(*w, "token", "present", 1000ms);
  EXPECT_LT(Clock::now() - t0, 1000ms + 1000ms);
  EXPECT_EQ(present["token_id"], wstr(card->token_id()));
  EXPECT_EQ(present["reader"], "Virtual PCD 00 00");
  EXPECT_EQ(present["label"], "Testilääkäri Aino");

  t0 = Clock::now();
  card->pull();
  const Json removed = expect_event(*w, "card", "removed", 1000ms);
  EXPECT_EQ(removed["reader"], "Virtual PCD 00 00");
  const Json absent = expect_event(*w, "token", "absent", 1000ms);
  EXPECT_EQ(absent["token_id"], wstr(card->token_id()));
  EXPECT_LT(Clock::now() - t0, 1000ms);
}

TEST_F(Pcsc, ReadersListStatusAndTokenCorrelation) {
  VirtualCard card(pcscd_, CardOptions{});
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  const Json status = c->call("system.status");
  EXPECT_EQ(status["pcsc"], "ok");
  EXPECT_EQ(status["readers"], 2);
  const Json readers = c->call("readers.list");
  ASSERT_EQ(readers.size(), 2U);
  EXPECT_EQ(readers[0]["name"], "Virtual PCD 00 00");
  EXPECT_TRUE(readers[0]["card_present"].get<bool>());
  EXPECT_EQ(readers[0]["card_type"], "dvv_healthcare");
  EXPECT_FALSE(readers[0]["pinpad"].get<bool>()) << "vpcd exposes no reader features";
  EXPECT_EQ(readers[0]["tokens"], Json::array({wstr(card.token_id())}));
  EXPECT_FALSE(readers[1]["card_present"].get<bool>());
  EXPECT_TRUE(readers[1]["card_type"].is_null());
  const Json tokens = c->call("tokens.list");
  ASSERT_EQ(tokens.size(), 1U) << tokens.dump();
  for (const auto& t : tokens) {
    EXPECT_EQ(t["reader"], "Virtual PCD 00 00");
    EXPECT_EQ(t["pins"]["user"]["tries_left"], 3) << "read from the card";
  }
}

TEST_F(Pcsc, UnknownCardsAreListedWithoutAType) {
  VirtualCard card(pcscd_, card_options("physician", 0, {"--atr", "3B8F8001804F0CA000000306030001000000006A"}));
  auto w = watcher();
  // The card may already be in before the subscription; ask then.
  for (int i = 0; i < 50; ++i) {
    const Json readers = daemon_->connect()->call("readers.list");
    if (readers[0]["card_present"].get<bool>()) {
      EXPECT_TRUE(readers[0]["card_type"].is_null());
      EXPECT_EQ(readers[0]["atr"], "3B8F8001804F0CA000000306030001000000006A");
      return;
    }
    std::this_thread::sleep_for(100ms);
  }
  FAIL() << "card never showed";
}

TEST_F(Pcsc, SignsThroughOpenScAndPcscdRsaAndEcVerifiedByOpenssl) {
  VirtualCard rsa(pcscd_, card_options("physician", 0));
  VirtualCard ec(pcscd_, card_options("specialist", 1));
  wait_for_token(rsa.token_id());
  wait_for_token(ec.token_id());
  auto c = daemon_->connect();
  const std::pair<std::string, std::string> cases[] = {{rsa.token_id() + "/01", "sha256"},
                                                       {rsa.token_id() + "/02", "sha512"},  // 9A and 9C
                                                       {ec.token_id() + "/01", "sha384"},
                                                       {ec.token_id() + "/02", "sha384"}};
  for (const auto& [cert, alg] : cases) {
    Bytes digest;
    const Json r = c->call("sign.digest", sign_params(cert, alg, digest));
    const std::string scheme = str(r["scheme"]);
    EXPECT_TRUE(openssl_verify_digest(b64(r["certificate"]), digest, b64(r["signature"]), alg, scheme))
        << cert << " " << alg;
  }
  // 9C is the non-repudiation key: OpenSC marks it CKA_ALWAYS_AUTHENTICATE.
  Bytes digest;
  Json no_pin = sign_params(rsa.token_id() + "/02", "sha256", digest);
  no_pin.erase("pin");
  c->call("session.login", {{"token_id", wstr(rsa.token_id())}, {"pin", kPin}});
  EXPECT_EQ(rpc_error([&] { c->call("sign.digest", no_pin); }).code(), 1010);
  no_pin["cert_id"] = wstr(rsa.token_id() + "/01");
  EXPECT_NO_THROW(c->call("sign.digest", no_pin));
}

TEST_F(Pcsc, RsaPssThroughOpenSc) {
  VirtualCard card(pcscd_, CardOptions{});
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  Bytes digest;
  Json p = sign_params(card.token_id() + "/02", "sha256", digest);
  p["scheme"] = "pss";
  const Json r = c->call("sign.digest", p);
  EXPECT_TRUE(openssl_verify_digest(b64(r["certificate"]), digest, b64(r["signature"]), "sha256", "pss"));
}

TEST_F(Pcsc, CardPulledDuringASignatureFailsWithinASecondAndReinsertionWorks) {
  auto card = std::make_unique<VirtualCard>(pcscd_, card_options("physician", 0, {"--delay", "87:5000"}));
  const std::string token = card->token_id();
  wait_for_token(token);
  auto c = daemon_->connect();
  Bytes digest;
  const auto id = c->send("sign.digest", sign_params(token + "/01", "sha256", digest));
  // The signature's GENERAL AUTHENTICATE is at the card, which now "computes"
  // for five seconds.
  ASSERT_TRUE(card->wait_for_apdu(0x87, 1, Apdu::begun, 5000ms)) << card->events();
  const auto pulled = Clock::now();
  card->pull();
  auto e = rpc_error([&] { c->wait_for(id, 5000ms); });
  EXPECT_EQ(e.code(), 1020);
  EXPECT_EQ(e.reason(), "card_removed");
  EXPECT_LT(Clock::now() - pulled, 1000ms);
  EXPECT_EQ(daemon_->connect()->call("system.hello")["daemon"], "korttid");

  VirtualCard again(pcscd_, CardOptions{});
  wait_for_token(again.token_id());
  const Json r = c->call("sign.digest", sign_params(again.token_id() + "/01", "sha256", digest));
  EXPECT_TRUE(openssl_verify_digest(b64(r["certificate"]), digest, b64(r["signature"]), "sha256", "pkcs1"));
}

TEST_F(Pcsc, CardVanishingInTheMiddleOfACommandIsCardRemoved) {
  VirtualCard card(pcscd_, card_options("physician", 0, {"--vanish-ins", "87"}));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  Bytes digest;
  const auto e = rpc_error([&] { c->call("sign.digest", sign_params(card.token_id() + "/01", "sha256", digest)); });
  EXPECT_EQ(e.code(), 1020) << e.what();
  EXPECT_EQ(c->call("system.hello")["daemon"], "korttid");
}

TEST_F(Pcsc, ACardThatFailsACommandIsServiceUnavailableAndHarmsNothing) {
  VirtualCard card(pcscd_, card_options("physician", 0, {"--fail-ins", "87"}));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  Bytes digest;
  const auto e = rpc_error([&] { c->call("sign.digest", sign_params(card.token_id() + "/01", "sha256", digest)); });
  EXPECT_EQ(e.code(), 1060) << e.what();
  EXPECT_FALSE(str(e.data()["detail"]).empty());
  EXPECT_EQ(c->call("tokens.list").size(), 1U);
}

TEST_F(Pcsc, WrongPinThreeTimesCountsDownThenLocks) {
  VirtualCard card(pcscd_, CardOptions{});
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  Bytes digest;
  Json p = sign_params(card.token_id() + "/02", "sha256", digest);
  p["pin"] = "000000";
  for (int expected : {2, 1}) {
    const auto e = rpc_error([&] { c->call("sign.digest", p); });
    EXPECT_EQ(e.code(), 1011);
    ASSERT_TRUE(e.data().contains("tries_left")) << e.what();
    EXPECT_EQ(e.data()["tries_left"], expected);
  }
  // The last try is not korttid's to spend unasked: anyone allowed to sign
  // could lock the card otherwise. Refused before the card is touched.
  const auto guarded = rpc_error([&] { c->call("sign.digest", p); });
  EXPECT_EQ(guarded.code(), 1040) << guarded.what();
  EXPECT_EQ(guarded.data()["detail"], "final_try_not_confirmed");
  EXPECT_EQ(guarded.data()["tries_left"], 1);
  EXPECT_EQ(c->call("tokens.list")[0]["pins"]["user"]["tries_left"], 1) << "read from the card";
  // Any client can say final_try: the account that gave the wrong PINs
  // still may not spend the last try, and the card is not touched.
  p["final_try"] = true;
  const auto not_yours = rpc_error([&] { c->call("sign.digest", p); });
  EXPECT_EQ(not_yours.code(), 1040) << not_yours.what();
  EXPECT_EQ(not_yours.data()["detail"], "last_try_not_yours");
  EXPECT_EQ(c->call("tokens.list")[0]["pins"]["user"]["tries_left"], 1) << "read from the card";
  // Another account may (so it takes two to lock a card this way).
  auto other = connect_as(daemon_->socket(), 4242, 4242);
  auto locked = rpc_error([&] { other->call("sign.digest", p); });
  EXPECT_EQ(locked.code(), 1012);
  EXPECT_EQ(locked.reason(), "pin_locked");
  // Locked stays locked, even with the right PIN, and says so.
  p["pin"] = kPin;
  EXPECT_EQ(rpc_error([&] { c->call("sign.digest", p); }).code(), 1012);
  const Json tokens = c->call("tokens.list");
  ASSERT_EQ(tokens.size(), 1U) << tokens.dump();
  for (const auto& t : tokens) {
    EXPECT_TRUE(t["pins"]["user"]["locked"].get<bool>());
    EXPECT_EQ(t["pins"]["user"]["tries_left"], 0);
  }
}

// The card holder mistypes too: an account that has given this card's right
// PIN before may spend the last try after its own wrong ones, and the right
// PIN then makes the card's counter full again for everyone.
TEST_F(Pcsc, TheAccountThatGaveTheRightPinBeforeMaySpendTheLastTry) {
  VirtualCard card(pcscd_, CardOptions{});
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  Bytes digest;
  Json p = sign_params(card.token_id() + "/02", "sha256", digest);
  p["pin"] = kPin;
  c->call("sign.digest", p);
  p["pin"] = "000000";
  for (int i = 0; i < 2; ++i) EXPECT_EQ(rpc_error([&] { c->call("sign.digest", p); }).code(), 1011);
  p["pin"] = kPin;
  p["final_try"] = true;
  EXPECT_FALSE(c->call("sign.digest", p)["signature"].get<std::string>().empty());
  EXPECT_EQ(c->call("tokens.list")[0]["pins"]["user"]["tries_left"], 3) << "read from the card";
  // The right PIN forgave the other accounts' wrong ones too: the guard is
  // about tries spent since the card last took a right PIN.
  auto other = connect_as(daemon_->socket(), 4242, 4242);
  p["pin"] = "000000";
  p.erase("final_try");
  EXPECT_EQ(rpc_error([&] { other->call("sign.digest", p); }).code(), 1011);
  EXPECT_EQ(rpc_error([&] { other->call("sign.digest", p); }).code(), 1011);
  p["final_try"] = true;
  const auto not_yours = rpc_error([&] { other->call("sign.digest", p); });
  EXPECT_EQ(not_yours.data()["detail"], "last_try_not_yours") << not_yours.what();
  p["pin"] = kPin;
  EXPECT_FALSE(c->call("sign.digest", p)["signature"].get<std::string>().empty()) << "the holder's account still may";
}

// The same card through two modules is two token ids (X and X-2) but one
// card: the wrong PINs an account gave through one count through the other,
// or it could spend two tries through one id and the last through the other.
TEST_F(Pcsc, TheLastTryGuardKnowsTheCardThroughAnotherModule) {
  start_daemon({}, {"/usr/lib/x86_64-linux-gnu/onepin-opensc-pkcs11.so"});
  VirtualCard card(pcscd_, CardOptions{});
  wait_for_token(card.token_id());
  wait_for_token(card.token_id() + "-2");
  auto c = daemon_->connect();
  Bytes digest;
  Json p = sign_params(card.token_id() + "/02", "sha256", digest);
  p["pin"] = "000000";
  for (int i = 0; i < 2; ++i) EXPECT_EQ(rpc_error([&] { c->call("sign.digest", p); }).code(), 1011);
  p["cert_id"] = wstr(card.token_id() + "-2/02");
  p["final_try"] = true;
  const auto not_yours = rpc_error([&] { c->call("sign.digest", p); });
  EXPECT_EQ(not_yours.data().value("detail", ""), "last_try_not_yours") << not_yours.what();
  for (const auto& t : c->call("tokens.list")) EXPECT_EQ(t["pins"]["user"]["tries_left"], 1) << t.dump();
}

TEST_F(Pcsc, PinPadOnAReaderWithoutOneIsUnsupported) {
  VirtualCard card(pcscd_, CardOptions{});
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  auto e = rpc_error([&] { c->call("session.login", {{"token_id", wstr(card.token_id())}, {"pinpad", true}}); });
  EXPECT_EQ(e.code(), 1050);
}

TEST_F(Pcsc, RemovalEndsTheSessionWithEvents) {
  auto card = std::make_unique<VirtualCard>(pcscd_, CardOptions{});
  wait_for_token(card->token_id());
  auto w = watcher();
  auto c = daemon_->connect();
  c->call("session.login", {{"token_id", wstr(card->token_id())}, {"pin", kPin}});
  const Json in = expect_event(*w, "session", "logged_in", 1000ms);
  EXPECT_EQ(in["uid"], ::getuid());
  card->pull();
  expect_event(*w, "card", "removed", 1000ms);
  expect_event(*w, "session", "logged_out", 1000ms);
  expect_event(*w, "token", "absent", 1000ms);
}

// Pulling the card ends its session even when the card is back before the
// next slot scan: here the scan waits inside OpenSC (one lock for the whole
// module) while another card opens slowly, and the same card (same token
// id) is put back meanwhile.
TEST_F(Pcsc, ACardPutBackBeforeTheNextScanDoesNotKeepItsSession) {
  auto card = std::make_unique<VirtualCard>(pcscd_, CardOptions{});
  const std::string token = card->token_id();
  wait_for_token(token);
  auto w = watcher();
  auto c = daemon_->connect();
  c->call("session.login", {{"token_id", wstr(token)}, {"pin", kPin}});
  expect_event(*w, "session", "logged_in", 1000ms);
  // Each GET DATA of the second card (its certificates, read at its first
  // scan; some thirty of them) takes 0.2 s.
  VirtualCard slow(pcscd_, card_options("specialist", 1, {"--delay", "CB:200"}));
  ASSERT_TRUE(slow.wait_for_apdu(0xCB, 1, Apdu::begun, 5000ms)) << slow.events();
  card.reset();
  expect_event(*w, "card", "removed", 2000ms);
  expect_event(*w, "session", "logged_out", 2000ms);
  card = std::make_unique<VirtualCard>(pcscd_, CardOptions{});
  ASSERT_EQ(card->token_id(), token);
  wait_for_token(slow.token_id());
  wait_for_token(token);
  for (const auto& t : c->call("tokens.list"))
    if (str(t["token_id"]) == token) {
      EXPECT_FALSE(t["logged_in"].get<bool>()) << t.dump();
    }
  Bytes digest;
  Json no_pin = sign_params(token + "/02", "sha256", digest);
  no_pin.erase("pin");
  EXPECT_EQ(rpc_error([&] { c->call("sign.digest", no_pin); }).code(), 1010) << "no session: the PIN is asked for";
}

// A second login checks the PIN given now; a wrong one ends the session
// that was open, and whoever watches (kortti watch, a TLS tunnel) is told.
TEST_F(Pcsc, AWrongPinInASecondLoginEndsTheSessionWithAnEvent) {
  VirtualCard card(pcscd_, CardOptions{});
  wait_for_token(card.token_id());
  auto w = watcher();
  auto c = daemon_->connect();
  c->call("session.login", {{"token_id", wstr(card.token_id())}, {"pin", kPin}});
  expect_event(*w, "session", "logged_in", 1000ms);
  const auto e = rpc_error([&] { c->call("session.login", {{"token_id", wstr(card.token_id())}, {"pin", "000000"}}); });
  EXPECT_EQ(e.code(), 1011) << e.what();
  const Json out = expect_event(*w, "session", "logged_out", 1000ms);
  EXPECT_EQ(out["token_id"], card.token_id()) << out.dump();
  EXPECT_FALSE(c->call("tokens.list")[0]["logged_in"].get<bool>());
}

// pcsc-lite takes at most 16 reader states a call, and pcscd serves up to
// 16 readers: with the PnP state that made 17, which it refused ("Invalid
// parameter given") every 100 ms, and no card event came from any reader.
TEST(PcscReaders, SixteenReadersAllSendCardEvents) {
  Pcscd pcscd(16);
  DaemonOptions o;
  o.pcsc = true;
  o.modules = {kOpenScModule};
  for (const auto& [k, v] : pcscd.env()) o.env[k] = v;
  o.env["OPENSC_CONF"] = "/dev/null";
  Daemon daemon(std::move(o));
  auto c = daemon.connect();
  c->call("events.subscribe", {{"topics", Json::array({"card"})}});
  EXPECT_EQ(c->call("readers.list").size(), 16U);
  for (const int reader : {15, 0}) {
    VirtualCard card(pcscd, card_options("physician", reader));
    std::optional<Json> event;
    while ((event = c->next_event(10000ms)) && (*event)["params"]["type"] != "inserted") {
    }
    ASSERT_TRUE(event.has_value()) << "no card event from reader " << reader << "\n" << daemon.log();
  }
  EXPECT_EQ(daemon.log().find("SCardGetStatusChange"), std::string::npos) << daemon.log();
  EXPECT_EQ(daemon.stop(SIGTERM), 0);
}

// When pcscd is back the events come as for a card put in: reader added,
// card inserted, then token present. pcscd is started again at once, and
// again after a second, by when the monitor waits longer between its tries
// and the card is back in pcscd before korttid looks: a module's scan
// then finds the card while korttid still asks the reader whether it has a
// PIN pad (under CI's load, "token present" came first and was lost).
TEST_F(Pcsc, PcscdKilledMeansUnavailableAndEverythingReturnsWithIt) {
  VirtualCard card(pcscd_, card_options("physician", 0, {"--reconnect", "--connect-timeout-ms", "30000"}));
  wait_for_token(card.token_id());
  auto w = watcher();
  auto c = daemon_->connect();
  // The events that come until `last` has, in order: "topic type", and the
  // reader's name for reader events.
  auto events_until = [&](const std::string& last) {
    std::vector<std::string> seen;
    const auto deadline = Clock::now() + 10s;
    while ((seen.empty() || seen.back() != last) && Clock::now() < deadline) {
      const auto e = w->next_event(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
      if (!e) break;
      const Json& p = (*e)["params"];
      seen.push_back(str(p["topic"]) + " " + str(p["type"]) + (p["topic"] == "reader" ? " " + str(p["reader"]) : ""));
    }
    return seen;
  };
  for (const auto gap : {0ms, 1000ms}) {
    SCOPED_TRACE("pcscd started again after " + std::to_string(gap.count()) + " ms");
    pcscd_.kill();
    EXPECT_EQ(events_until("reader removed Virtual PCD 00 01"),
              (std::vector<std::string>{"card removed", "token absent", "reader removed Virtual PCD 00 00",
                                        "reader removed Virtual PCD 00 01"}));
    EXPECT_TRUE(eventually([&] { return c->call("system.status")["pcsc"] == "unavailable"; }, 5000ms));
    EXPECT_TRUE(c->call("readers.list").empty());

    // The slot scans the removals asked for are done (a listing waits for
    // a scan of its own), and none reaches the pcscd started below.
    EXPECT_TRUE(c->call("tokens.list").empty());
    std::this_thread::sleep_for(gap);
    pcscd_.start();
    EXPECT_EQ(events_until("token present"),
              (std::vector<std::string>{"reader added Virtual PCD 00 00", "reader added Virtual PCD 00 01",
                                        "card inserted", "token present"}))
        << daemon_->log();
    EXPECT_EQ(c->call("system.status")["pcsc"], "ok");
    Bytes digest;
    const Json r = c->call("sign.digest", sign_params(card.token_id() + "/01", "sha256", digest));
    EXPECT_TRUE(openssl_verify_digest(b64(r["certificate"]), digest, b64(r["signature"]), "sha256", "pkcs1"));
  }
}

// What one request of the load below got back.
struct LoadAnswer {
  std::string method;
  std::string cert_id;  // sign.digest
  Bytes digest;
  int phase = 0;  // when it was sent: 0 before the kill, 1 while pcscd was away, 2 after it was back
  std::optional<Json> result;
  std::optional<client::RpcError> error;
  std::string unanswered;  // why no answer came, if none did
};

template <class Counters>
bool all_positive(const Counters& counters) {
  return std::all_of(counters.begin(), counters.end(), [](const auto& n) { return n > 0; });
}

TEST_F(Pcsc, PcscdKilledUnderLoadAnswersEveryRequestAndSigningComesBack) {
  // The card inserts itself again when pcscd is back. Each signature keeps it
  // busy for 200 ms (two chained links of 100 ms), so the kill below lands on
  // one that is being computed.
  VirtualCard card(pcscd_,
                   card_options("physician", 0, {"--reconnect", "--connect-timeout-ms", "30000", "--delay", "87:100"}));
  const std::string token = card.token_id();
  wait_for_token(token);
  // Signatures are checked against the test PKI's certificates, not against
  // whatever certificate an answer names.
  std::map<std::string, Bytes> certificates;
  for (const auto& [key, file] : {std::pair{"/01", "auth.pem"}, std::pair{"/02", "sign.pem"}}) {
    const auto der =
        run({"openssl", "x509", "-in", (pki_dir() / "people/physician" / file).string(), "-outform", "DER"});
    ASSERT_EQ(der.status, 0) << der.err;
    certificates[token + key] = Bytes(der.out.begin(), der.out.end());
  }

  // Three clients sign in a loop (one with 9C, whose every use verifies the
  // PIN on the card; two with 9A), one lists. Each has its own connection.
  constexpr std::size_t kSigners = 3;
  constexpr std::size_t kClients = kSigners + 1;
  std::atomic<int> phase{0};
  std::atomic<bool> stop{false};
  std::array<std::atomic<int>, kSigners> signed_before{}, signed_after{};
  std::array<std::atomic<int>, kClients> answered_in_outage{};
  std::array<std::vector<LoadAnswer>, kClients> answers;
  // A signer keeps two requests in flight on its connection (pipelining), so
  // the kill finds some queued behind the one at the card.
  constexpr std::size_t kInFlight = 2;
  auto load = [&](std::size_t who) {
    auto client = daemon_->connect();
    for (std::size_t round = 0; !stop; ++round) {
      std::vector<std::pair<std::int64_t, LoadAnswer>> sent;
      for (std::size_t k = 0; k < (who < kSigners ? kInFlight : 1); ++k) {
        LoadAnswer a;
        a.phase = phase;
        Json params = Json::object();
        if (who < kSigners) {
          a.method = "sign.digest";
          a.cert_id = token + (who == 0 ? "/02" : "/01");
          params = sign_params(a.cert_id, "sha256", a.digest);
        } else {
          static const char* const kLists[] = {"tokens.list", "readers.list", "certificates.list", "system.status"};
          a.method = kLists[round % 4];
        }
        std::int64_t id = -1;
        try {
          id = client->send(a.method, params);
        } catch (const std::exception& e) {
          a.unanswered = std::string("not sent: ") + e.what();
        }
        sent.emplace_back(id, std::move(a));
      }
      bool lost = false, failed = false;
      for (auto& [id, a] : sent) {
        try {
          if (a.unanswered.empty()) a.result = client->wait_for(id, 30000ms);
        } catch (const client::RpcError& e) {
          a.error = e;
        } catch (const std::exception& e) {
          a.unanswered = e.what();  // no answer in time, or the connection was closed
        }
        lost = lost || !a.unanswered.empty();
        failed = failed || a.error.has_value();
        if (a.phase == 1 && a.unanswered.empty()) ++answered_in_outage[who];
        if (a.result && who < kSigners && a.phase != 1) ++(a.phase == 0 ? signed_before : signed_after)[who];
        answers[who].push_back(std::move(a));
      }
      if (lost) return;
      // Pacing, not synchronisation: a failed request is tried again a moment
      // later, as a real client would, and the lister does not spin on answers
      // from memory. Without it the outage is a busy loop flooding the log.
      if (failed || who == kSigners) std::this_thread::sleep_for(10ms);
    }
  };
  std::vector<std::thread> clients;
  for (std::size_t who = 0; who < kClients; ++who) clients.emplace_back(load, who);
  auto control = daemon_->connect();

  // Under load (every signer has signed), pcscd goes while the card is
  // computing a signature.
  bool loaded = eventually([&] { return all_positive(signed_before); }, 20000ms);
  EXPECT_TRUE(loaded) << "the signers never got going";
  const int begun = card.apdus(0x87, Apdu::begun);
  loaded = loaded && card.wait_for_apdu(0x87, begun + 1, Apdu::begun, 5000ms);
  EXPECT_TRUE(loaded) << card.events();
  if (loaded) {
    pcscd_.kill();
    phase = 1;
    // korttid says pcscd is away, and answers every client meanwhile.
    EXPECT_TRUE(eventually([&] { return control->call("system.status")["pcsc"] == "unavailable"; }, 10000ms));
    EXPECT_TRUE(eventually([&] { return all_positive(answered_in_outage); }, 10000ms));
    pcscd_.start();
    phase = 2;
    // The card comes back (it reconnects to the new pcscd's vpcd), and every
    // signer signs again.
    EXPECT_TRUE(eventually([&] { return all_positive(signed_after); }, 30000ms)) << card.log();
  }
  stop = true;
  for (auto& t : clients) t.join();
  ASSERT_TRUE(daemon_->running()) << "korttid died under load";

  // docs/protocol.md's codes for a card or reader that goes away. Nothing
  // else: 1021 would mean a request hung until its deadline, 1010-1012 that
  // the PIN was mishandled, -32603 a bug.
  const std::map<int, std::string> card_errors = {
      {1002, "token_not_found"},     // the token was gone when the request came
      {1020, "card_removed"},        // it went during the operation
      {1060, "service_unavailable"}  // the module reported pcscd's failure
  };
  std::size_t total = 0, signatures = 0, caught_by_the_kill = 0;
  std::map<int, std::size_t> seen;  // error code -> how often
  for (const auto& list : answers) {
    for (const auto& a : list) {
      ++total;
      SCOPED_TRACE(a.method + " " + a.cert_id + " sent in phase " + std::to_string(a.phase));
      EXPECT_TRUE(a.unanswered.empty()) << "no answer: " << a.unanswered;
      if (a.error) {
        EXPECT_EQ(a.method, "sign.digest") << "listing fails for nobody: " << a.error->what();
        const auto known = card_errors.find(a.error->code());
        EXPECT_NE(known, card_errors.end()) << a.error->code() << " " << a.error->what();
        if (known != card_errors.end()) {
          EXPECT_EQ(a.error->reason(), known->second);
        }
        EXPECT_NE(std::string(a.error->what()), "");
        if (a.phase == 0) ++caught_by_the_kill;
        ++seen[a.error->code()];
      }
      if (a.result && a.method == "sign.digest") {
        ++signatures;
        EXPECT_EQ(b64((*a.result)["certificate"]), certificates.at(a.cert_id));
        EXPECT_TRUE(openssl_verify_digest(certificates.at(a.cert_id), a.digest, b64((*a.result)["signature"]), "sha256",
                                          "pkcs1"));
      }
    }
  }
  EXPECT_GT(caught_by_the_kill, 0U) << "no request was in flight at the kill; this shows nothing";
  std::cerr << total << " requests, " << signatures << " signatures, " << caught_by_the_kill
            << " sent before the kill and failed; errors:";
  for (const auto& [code, n] : seen) std::cerr << " " << n << "x" << code;
  std::cerr << "\n";

  // After it all: signing works, and the chaos spent no PIN try.
  Bytes digest;
  const Json r = control->call("sign.digest", sign_params(token + "/02", "sha256", digest));
  EXPECT_TRUE(openssl_verify_digest(certificates.at(token + "/02"), digest, b64(r.at("signature")), "sha256", "pkcs1"));
  // The counter is read from the card again after pcscd came back, and that
  // read may still be under way: wait for it, rather than read a member an
  // answer does not have yet.
  Json tokens;
  EXPECT_TRUE(eventually(
      [&] {
        tokens = control->call("tokens.list");
        return tokens.size() == 1 && tokens[0]["pins"]["user"].contains("tries_left");
      },
      10000ms))
      << tokens.dump();
  ASSERT_EQ(tokens.size(), 1U) << tokens.dump();
  EXPECT_EQ(tokens[0]["pins"]["user"].value("tries_left", -1), 3) << "read from the card";
}

// Requests with a PIN beyond a uid's running ones wait holding their
// documents: only so many bytes of them (twice the message limit), the rest
// are refused at once, while the card is still busy with the first.
TEST_F(Pcsc, RequestsWithAPinWaitingForTheirTurnAreBoundedInBytes) {
  DaemonOptions o;
  o.ipc = "max_pin_requests_per_uid = 1\nmax_message_bytes = 1048576\n";
  start_daemon(std::move(o));
  VirtualCard card(pcscd_, card_options("physician", 0, {"--delay", "87:3000"}));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  Bytes digest;
  Json p = sign_params(card.token_id() + "/02", "sha256", digest);
  p["pin"] = kPin;
  const auto running = c->send("sign.digest", p);
  ASSERT_TRUE(card.wait_for_apdu(0x87, 1, Apdu::begun, 10000ms)) << card.events();
  // 900 KB each: two fit in the 2 MiB a uid may have waiting, the third not.
  p["padding"] = wstr(std::string(900 * 1000, 'x'));
  std::vector<std::int64_t> waiting;
  for (int i = 0; i < 3; ++i) waiting.push_back(c->send("sign.digest", p));
  const auto refused = rpc_error([&] { c->wait_for(waiting[2], 2000ms); });
  EXPECT_EQ(refused.code(), 1060) << refused.what();
  EXPECT_NE(std::string(refused.what()).find("requests with a PIN waiting"), std::string::npos) << refused.what();
  EXPECT_EQ(card.apdus(0x87, Apdu::begun), 1) << "refused while the card was still busy with the first";
  // The first and the two that waited are served (the padding is then refused as an unknown member, or
  // ignored: either way an answer, not a wait without end).
  EXPECT_FALSE(c->wait_for(running, 20000ms)["signature"].get<std::string>().empty());
  for (int i = 0; i < 2; ++i) {
    try {
      (void)c->wait_for(waiting[static_cast<std::size_t>(i)], 20000ms);
    } catch (const client::RpcError& e) {
      EXPECT_NE(e.code(), 1060) << e.what();
    }
  }
}

// Documents prepared for the card wait for it holding their bytes, behind a
// card that takes 6 s a signature: one uid only twice the message limit of
// them, all uids together only signature.max_held_bytes; the rest are
// refused at once, while the card is still busy with the first.
class HeldDocuments : public Pcsc {
 protected:
  Json sign_xml(std::size_t bytes) {
    return {{"cert_id", wstr(card_->token_id() + "/01")},
            {"document", wstr("<doc>" + std::string(bytes, 'x') + "</doc>")},
            {"profile", "enveloped"}};
  }

  // korttid with `options`, and a client logged in to a card that takes 6 s
  // a signature, with a document of 700 KB already at the card.
  std::unique_ptr<client::Client> first_at_the_card(DaemonOptions options) {
    start_daemon(std::move(options));
    card_ = std::make_unique<VirtualCard>(pcscd_, card_options("physician", 0, {"--delay", "87:6000"}));
    wait_for_token(card_->token_id());
    auto c = daemon_->connect();
    c->call("session.login", {{"token_id", wstr(card_->token_id())}, {"pin", kPin}});
    first_ = c->send("sign.xml", sign_xml(700 * 1000));
    EXPECT_TRUE(card_->wait_for_apdu(0x87, 1, Apdu::begun, 10000ms)) << card_->events();
    return c;
  }

  std::unique_ptr<VirtualCard> card_;
  std::int64_t first_ = 0;
};

TEST_F(HeldDocuments, OneUidHoldsAtMostTwiceTheMessageLimitAndOthersStillGetIn) {
  DaemonOptions o;
  o.ipc = "max_message_bytes = 1048576\n";
  auto c = first_at_the_card(std::move(o));
  // 700 KB each: two fit in the 2 MiB one uid may hold, the third not.
  const auto second = c->send("sign.xml", sign_xml(700 * 1000));
  const auto refused = rpc_error([&] { (void)c->call("sign.xml", sign_xml(700 * 1000)); });
  EXPECT_EQ(refused.code(), 1060) << refused.what();
  EXPECT_NE(std::string(refused.what()).find("uid=" + std::to_string(::getuid()) + " holds 1400"), std::string::npos)
      << refused.what();
  EXPECT_EQ(card_->apdus(0x87, Apdu::begun), 1) << "refused while the card was still busy with the first";
  // Another uid's document is not refused for this uid's: it gets in, and
  // then the card's session is not its own.
  auto other = connect_as(daemon_->socket(), 4242, 4242);
  const auto theirs = rpc_error([&] { (void)other->call("sign.xml", sign_xml(700 * 1000)); });
  EXPECT_EQ(theirs.code(), 1040) << theirs.what();
  // The two held are signed, and then the uid has room again.
  for (const auto id : {first_, second}) EXPECT_FALSE(str(c->wait_for(id, 30000ms)["document"]).empty());
  // Documents refused as they are prepared give their bytes back: 2.8 MB
  // of them, then one more that still gets in.
  for (int i = 0; i < 4; ++i) {
    Json bad = sign_xml(700 * 1000);
    bad["document"] = wstr("<doc>" + std::string(700 * 1000, 'x'));
    EXPECT_EQ(rpc_error([&] { (void)c->call("sign.xml", bad); }).code(), 1051);
  }
  EXPECT_FALSE(str(c->call("sign.xml", sign_xml(700 * 1000), 30000ms)["document"]).empty());
}

TEST_F(HeldDocuments, AllUidsTogetherHoldAtMostMaxHeldBytes) {
  DaemonOptions o;
  o.extra = "[signature]\nmax_held_bytes = 1000000\n";
  auto c = first_at_the_card(std::move(o));
  const auto refused = rpc_error([&] { (void)c->call("sign.xml", sign_xml(700 * 1000)); });
  EXPECT_EQ(refused.code(), 1060) << refused.what();
  EXPECT_NE(std::string(refused.what()).find("signature.max_held_bytes"), std::string::npos) << refused.what();
  // A document smaller than what is left still gets in.
  const auto small = c->send("sign.xml", sign_xml(1000));
  EXPECT_FALSE(str(c->wait_for(first_, 30000ms)["document"]).empty());
  EXPECT_FALSE(str(c->wait_for(small, 30000ms)["document"]).empty());
}

// The card has signed: the document is finished however full the documents
// thread's queue is with other work, or a signature made (and audited as
// delivered) would be lost to a 1060. Another client keeps the queue past
// its bound while the card signs: bursts of eight documents of 600 KiB
// against 1 MiB, as attachments (four sent as JSON strings were parsed no
// faster than the thread took them, and on a busy machine never filled it).
TEST_F(HeldDocuments, WhatTheCardSignedIsFinishedHoweverFullTheDocumentsQueue) {
  DaemonOptions o;
  o.extra = "[signature]\nmax_queued_bytes = 1048576\n";
  auto c = first_at_the_card(std::move(o));
  const std::string document = unsigned_document(600 * 1024);
  std::atomic<bool> stop{false};
  std::atomic<int> queue_full{0};
  std::thread flood([&] {
    auto f = daemon_->connect();
    while (!stop) {
      f->send_raw(verify_burst(document, 8));
      for (int i = 0; i < 8; ++i) {
        const auto a = f->receive(std::chrono::seconds(60));
        if (a && (*a)["error"]["code"] == 1060) ++queue_full;
      }
    }
  });
  std::string signed_document, error;
  try {
    signed_document = str(c->wait_for(first_, 30000ms)["document"]);
  } catch (const std::exception& e) {
    error = e.what();
  }
  stop = true;
  flood.join();
  EXPECT_TRUE(error.empty()) << error;
  EXPECT_FALSE(signed_document.empty());
  EXPECT_GT(queue_full.load(), 0) << "the queue was never full: the test showed nothing";
}

// Card work waits for its token in the token's queue: at most
// Token::kMaxQueuedJobs (4096), more is refused at once, and one uid may
// have a quarter of it. At the defaults (16 connections of a uid, 64 in
// all, x 32 in flight) the queue holds what is in flight, but not with
// limits raised, nor once requests answered at their deadline leave their
// jobs queued (dropped unrun at their turn) and make room for more: a card
// stuck in a call would otherwise let them pile up without end.
class PcscCardQueue : public PcscDaemonTest {
 protected:
  void SetUp() override {
    DaemonOptions o;
    o.ipc = "max_inflight_per_connection = 1024\n";
    start_daemon(std::move(o));
    card_ = std::make_unique<VirtualCard>(pcscd_, card_options("physician", 0, {"--delay", "87:3000"}));
    wait_for_token(card_->token_id());
    c_ = daemon_->connect();
    first_ = c_->send("sign.digest", sign_params(card_->token_id() + "/01", "sha256", digest_));
    ASSERT_TRUE(card_->wait_for_apdu(0x87, 1, Apdu::begun, 10000ms)) << card_->events();
  }

  // `n` session.logout requests of `uid` on one connection, kept open. A
  // uid without a session gets that far: the card is asked (a login may be
  // on its way).
  std::unique_ptr<client::Client> logouts(uid_t uid, int n) {
    std::string burst;
    for (int i = 1; i <= n; ++i)
      burst += R"({"jsonrpc":"2.0","id":)" + std::to_string(i) +
               R"(,"method":"session.logout","params":{"token_id":")" + card_->token_id() + "\"}}\n";
    auto client = connect_as(daemon_->socket(), uid, uid);
    client->send_raw(burst);
    return client;
  }

  // The first answer on `client`: the refusal of what passed a bound.
  static std::string first_refusal(client::Client& client) {
    const auto answer = client.receive(std::chrono::seconds(8));
    if (!answer) return "no answer";
    if (!answer->contains("error") || (*answer)["error"]["code"] != 1060) return "not 1060: " + to_std(answer->dump());
    return to_std((*answer)["error"]["message"].get<WipingString>());
  }

  std::unique_ptr<VirtualCard> card_;
  std::unique_ptr<client::Client> c_;
  Bytes digest_;
  std::int64_t first_ = 0;
};

TEST_F(PcscCardQueue, CardWorkWaitingForATokenIsBounded) {
  std::vector<std::unique_ptr<client::Client>> waiting;
  for (uid_t uid = 4201; uid <= 4205; ++uid) waiting.push_back(logouts(uid, 1000));
  EXPECT_NE(first_refusal(*waiting.back()).find("the card has 4096 operations waiting"), std::string::npos);
  EXPECT_EQ(card_->apdus(0x87, Apdu::begun), 1) << "refused while the card was still busy with the first";
  waiting.clear();  // the rest is dropped unrun at its turn
  EXPECT_FALSE(str(c_->wait_for(first_, 30000ms)["signature"]).empty());
  EXPECT_EQ(daemon_->connect()->call("system.hello")["daemon"], "korttid");
}

// An id the card's certificate list (read when it was put in) lacks is not
// looked for on the card: the answer does not wait behind its work, nor
// does it add to it.
TEST_F(PcscCardQueue, AnUnknownCertificateIsAnsweredWithoutWaitingForTheCard) {
  auto other = connect_as(daemon_->socket(), 4242, 4242);
  const auto e = rpc_error([&] {
    other->call("certificates.identity", {{"cert_id", wstr(card_->token_id() + "/ff")}});
  });
  EXPECT_EQ(e.code(), 1003) << e.what();
  EXPECT_EQ(card_->apdus(0x87, Apdu::answered), 0) << "answered only once the card was done";
  EXPECT_FALSE(str(c_->wait_for(first_, 30000ms)["signature"]).empty());
}

// One uid's flood of card work behind a busy card takes its share of the
// queue, not the whole of it: another user's signature still gets in.
TEST_F(PcscCardQueue, OneUidsCardWorkLeavesRoomInTheCardsQueueForAnothers) {
  std::vector<std::unique_ptr<client::Client>> flood;
  for (int i = 0; i < 5; ++i) flood.push_back(logouts(4242, 1000));
  EXPECT_NE(first_refusal(*flood.back()).find("uid 4242 has 1024 operations waiting for this card, its share"),
            std::string::npos);
  Bytes digest;
  const auto second = c_->send("sign.digest", sign_params(card_->token_id() + "/01", "sha256", digest));
  EXPECT_FALSE(str(c_->wait_for(first_, 30000ms)["signature"]).empty());
  const Json r = c_->wait_for(second, 60000ms);
  EXPECT_TRUE(openssl_verify_digest(b64(r["certificate"]), digest, b64(r["signature"]), "sha256", "pkcs1"));
  EXPECT_EQ(daemon_->connect()->call("system.hello")["daemon"], "korttid");
}

// The same when the client leaves: its queued card work is dropped before
// it runs, well inside the deadline.
TEST_F(Pcsc, AClientThatLeavesHasItsQueuedCardWorkDropped) {
  VirtualCard card(pcscd_, card_options("physician", 0, {"--delay", "87:3000"}));
  wait_for_token(card.token_id());
  {
    auto leaving = daemon_->connect();
    Bytes d1, d2;
    (void)leaving->send("sign.digest", sign_params(card.token_id() + "/01", "sha256", d1));
    (void)leaving->send("sign.digest", sign_params(card.token_id() + "/01", "sha256", d2));
    ASSERT_TRUE(card.wait_for_apdu(0x87, 1, Apdu::begun, 10000ms)) << card.events();
  }  // gone while the first is at the card and the second waits for it
  ASSERT_TRUE(card.wait_for_apdu(0x87, 1, Apdu::answered, 10000ms)) << card.events();
  // A login is card work queued behind whatever was left of the second
  // request: once it is answered, the second would have reached the card.
  auto c = daemon_->connect();
  c->call("session.login", {{"token_id", wstr(card.token_id())}, {"pin", kPin}});
  EXPECT_EQ(card.apdus(0x87, Apdu::begun), 1) << card.events();
  EXPECT_NE(daemon_->log().find("(client gone)"), std::string::npos) << daemon_->log();
}

TEST_F(Pcsc, ARequestPastItsDeadlineIsTokenBusyAndQueuedWorkIsDropped) {
  DaemonOptions o;
  o.ipc = "request_timeout_s = 2\n";
  start_daemon(std::move(o));
  VirtualCard card(pcscd_, card_options("physician", 0, {"--delay", "87:3000"}));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  Bytes d1, d2;
  const auto first = c->send("sign.digest", sign_params(card.token_id() + "/01", "sha256", d1));
  const auto second = c->send("sign.digest", sign_params(card.token_id() + "/01", "sha256", d2));
  const auto t0 = Clock::now();
  EXPECT_EQ(rpc_error([&] { c->wait_for(first, 10000ms); }).code(), 1021);
  EXPECT_EQ(rpc_error([&] { c->wait_for(second, 10000ms); }).code(), 1021);
  EXPECT_LT(Clock::now() - t0, 3000ms);
  // The first finished at the card (two chained links of 3 s) and its late
  // result was dropped: audited as not delivered once korttid has it.
  ASSERT_TRUE(card.wait_for_apdu(0x87, 1, Apdu::answered, 10000ms)) << card.events();
  const auto audit_deadline = Clock::now() + 5000ms;
  std::string audit;
  while ((audit = read_file(daemon_->dir() / "audit.log")).find("\"delivered\":false") == std::string::npos &&
         Clock::now() < audit_deadline)
    std::this_thread::sleep_for(20ms);
  EXPECT_NE(audit.find("\"delivered\":false"), std::string::npos) << audit;
  // The card is usable again. A login is card work queued behind whatever
  // was left of the second request, so once it is answered the second would
  // have reached the card had it not been dropped: it never did.
  c->call("session.login", {{"token_id", wstr(card.token_id())}, {"pin", kPin}});
  EXPECT_EQ(card.apdus(0x87, Apdu::begun), 1) << card.events();
  EXPECT_EQ(c->call("tokens.list").size(), 1U);
}

TEST_F(Pcsc, ASlowCardHoldsUpNeitherTheSocketLoopNorListingNorAnotherModulesToken) {
  TempDir hsm_dir;
  SoftHsm hsm(hsm_dir.path());
  hsm.add_token("soft", {"nurse/sign"});
  DaemonOptions o;
  o.env["SOFTHSM2_CONF"] = hsm.conf().string();
  start_daemon(std::move(o), {SoftHsm::kModule});
  // Two chained GENERAL AUTHENTICATE APDUs of 3 s each: a 6 s signature.
  VirtualCard slow(pcscd_, card_options("physician", 0, {"--delay", "87:3000"}));
  wait_for_token(slow.token_id());
  auto c = daemon_->connect();
  std::string soft_cert;
  for (const auto& cert : c->call("certificates.list"))
    if (str(cert["token_id"]) != slow.token_id()) soft_cert = str(cert["cert_id"]);
  ASSERT_FALSE(soft_cert.empty());

  auto busy = daemon_->connect();
  Bytes slow_digest;
  const auto slow_id = busy->send("sign.digest", sign_params(slow.token_id() + "/01", "sha256", slow_digest));
  // The slow signature's GENERAL AUTHENTICATE is at the card: from here on it
  // holds its token's worker for six seconds.
  ASSERT_TRUE(slow.wait_for_apdu(0x87, 1, Apdu::begun, 5000ms)) << slow.events();

  // All of these are answered while the slow signature is still out.
  EXPECT_EQ(c->call("system.status")["tokens"], 2);
  EXPECT_EQ(c->call("readers.list").size(), 2U);
  EXPECT_EQ(c->call("tokens.list").size(), 2U);
  EXPECT_EQ(c->call("certificates.list").size(), 3U);
  Bytes digest;
  const Json soft = c->call("sign.digest", sign_params(soft_cert, "sha256", digest));
  EXPECT_TRUE(openssl_verify_digest(b64(soft["certificate"]), digest, b64(soft["signature"]), "sha256", "pkcs1"));
  EXPECT_FALSE(busy->receive(0ms).has_value()) << "the slow card answered before the others; this shows nothing";

  const Json r = busy->wait_for(slow_id, 15000ms);
  EXPECT_TRUE(openssl_verify_digest(b64(r["certificate"]), slow_digest, b64(r["signature"]), "sha256", "pkcs1"));
}

// A token slow to open (here the test double's, held until journal.go
// exists) keeps no other card out: the next scan does not wait for it, and
// does not open its slot a second time. Slot scans used to wait for every
// token a scan had found to open, so a card put in meanwhile was seen only
// once the slow one had opened.
TEST_F(Pcsc, ACardPutInWhileAnotherTokenIsStillOpeningIsNotKeptWaiting) {
  TempDir dir;
  SoftHsm hsm(dir.path());
  hsm.add_token("slow", {"nurse/sign"});
  const fs::path journal = dir / "journal";
  DaemonOptions o;
  o.env["SOFTHSM2_CONF"] = hsm.conf().string();
  o.env["KORTTI_SHIM_SLOW_OPEN"] = journal.string();
  o.wait_ready = false;  // the first scan waits for its tokens to open, or 10 s
  start_daemon(std::move(o), {SoftHsm::shim()});
  ASSERT_TRUE(eventually([&] { return fs::exists(journal); }, 20000ms)) << daemon_->log();
  auto c = daemon_->connect();
  EXPECT_EQ(c->call("system.hello", Json::object(), 20000ms)["daemon"], "korttid");

  VirtualCard card(pcscd_, CardOptions{});
  Json tokens;
  const bool card_seen = eventually(
      [&] {
        tokens = c->call("tokens.list");
        return std::any_of(tokens.begin(), tokens.end(),
                           [&](const Json& t) { return str(t["token_id"]) == card.token_id(); });
      },
      8000ms);
  EXPECT_TRUE(card_seen) << "the card waited for the slow token: " << tokens.dump();
  EXPECT_EQ(tokens.size(), 1U) << "only the card: the slow token is still opening: " << tokens.dump();
  EXPECT_FALSE(fs::exists(dir / "journal.go"));

  write_file(dir / "journal.go", "");
  EXPECT_TRUE(eventually([&] { return c->call("tokens.list").size() == 2U; }, 10000ms))
      << c->call("tokens.list").dump();
  for (int i = 0; i < 3; ++i) (void)c->call("tokens.list");  // scans more, with the slow token open now
  tokens = c->call("tokens.list");
  EXPECT_EQ(tokens.size(), 2U) << tokens.dump();
  EXPECT_EQ(occurrences(read_file(journal), "opening"), 1U) << "its slot was opened once:\n" << read_file(journal);
}

TEST_F(Pcsc, ABatchOfTwentyWithTheCardPulledMidwayKeepsWhatWasSignedAndFailsTheRest) {
  // 9C (the signature key) is a user-consent key: every item is its own
  // context-specific login with the PIN held for the batch. Each signature
  // takes the card 300 ms (two chained links of 150 ms): the pull lands while
  // the card computes the third.
  auto card = std::make_unique<VirtualCard>(pcscd_, card_options("physician", 0, {"--delay", "87:150"}));
  const std::string token = card->token_id();
  wait_for_token(token);
  auto c = daemon_->connect();
  std::vector<Bytes> digests(20);
  Json items = Json::array();
  for (auto& d : digests) {
    d = random_bytes(32);
    items.push_back(
        {{"method", "sign.digest"}, {"params", {{"digest_algorithm", "sha256"}, {"digest", wstr(base64_encode(d))}}}});
  }
  const auto id = c->send("sign.batch", {{"cert_id", wstr(token + "/02")}, {"items", items}, {"pin", kPin}});
  // The third signature's GENERAL AUTHENTICATE is at the card: the first two
  // are wholly done (it began only after the second's last GET RESPONSE).
  ASSERT_TRUE(card->wait_for_apdu(0x87, 3, Apdu::begun, 10000ms)) << card->events();
  card->pull();
  const Json r = c->wait_for(id, 10000ms);
  ASSERT_EQ(r["items"].size(), 20U) << r.dump();
  std::size_t signed_items = 0;
  bool failing = false;
  for (std::size_t i = 0; i < 20; ++i) {
    const Json& item = r["items"][i];
    if (item.contains("result")) {
      EXPECT_FALSE(failing) << "item " << i << " signed after an earlier one failed";
      EXPECT_TRUE(openssl_verify_digest(b64(item["result"]["certificate"]), digests[i],
                                        b64(item["result"]["signature"]), "sha256", "pkcs1"))
          << "item " << i;
      ++signed_items;
    } else {
      failing = true;
      EXPECT_EQ(item["error"]["code"], 1020) << item.dump();
      EXPECT_EQ(item["error"]["data"]["reason"], "card_removed");
    }
  }
  EXPECT_GE(signed_items, 2U) << r.dump();
  EXPECT_LT(signed_items, 20U) << r.dump();
  EXPECT_EQ(r["signed"].get<std::size_t>(), signed_items);
  EXPECT_EQ(r["failed"].get<std::size_t>(), 20 - signed_items);
  // The audit trail has a line for every item, signed or not.
  const std::string audit = read_file(daemon_->dir() / "audit.log");
  EXPECT_EQ(occurrences(audit, "sign.batch sign.digest"), 20U);
  EXPECT_EQ(audit.find(kPin), std::string::npos);
}

// A session's lifetime holds inside a batch: the items signed after it
// ended would have used a session past its bound. Each signature takes the
// card about 800 ms; the session lives 6 s, the batch would take 10.
TEST_F(Pcsc, ASessionThatReachesItsLifetimeDuringABatchEndsThere) {
  DaemonOptions o;
  o.session = "lifetime_s = 6\n";
  start_daemon(std::move(o));
  VirtualCard card(pcscd_, card_options("physician", 0, {"--delay", "87:400"}));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  c->call("session.login", {{"token_id", wstr(card.token_id())}, {"pin", kPin}});
  const Json r = c->call("sign.batch", {{"cert_id", wstr(card.token_id() + "/01")}, {"items", digest_items(12)}},
                         std::chrono::milliseconds(60000));
  ASSERT_EQ(r["items"].size(), 12U) << r.dump();
  std::size_t signed_items = 0;
  for (std::size_t i = 0; i < r["items"].size(); ++i) {
    const Json& item = r["items"][i];
    if (item.contains("result")) {
      EXPECT_EQ(signed_items, i) << "signed after the session ended: " << r.dump();
      ++signed_items;
    } else {
      EXPECT_EQ(item["error"]["code"], 1010) << item.dump();
      EXPECT_NE(str(item["error"]["message"]).find("session ended during the batch"), std::string::npos) << item.dump();
    }
  }
  EXPECT_GE(signed_items, 1U) << r.dump();
  EXPECT_LT(signed_items, 12U) << "the batch outlived the session: " << r.dump();
  for (const auto& t : c->call("tokens.list")) {
    if (str(t["token_id"]) == card.token_id()) {
      EXPECT_FALSE(t["logged_in"].get<bool>()) << t.dump();
    }
  }
}

TEST_F(Pcsc, ABatchWithAWrongPinCostsOneTryNotOnePerItem) {
  VirtualCard card(pcscd_, CardOptions{});
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  const Json r = c->call("sign.batch",
                         {{"cert_id", wstr(card.token_id() + "/02")}, {"items", digest_items(5)}, {"pin", "000000"}});
  ASSERT_EQ(r["items"].size(), 5U) << r.dump();
  for (const auto& item : r["items"]) EXPECT_EQ(item["error"]["code"], 1011) << item.dump();
  EXPECT_EQ(r["items"][0]["error"]["data"]["tries_left"], 2) << r.dump();
  const Json tokens = c->call("tokens.list");
  ASSERT_EQ(tokens.size(), 1U) << tokens.dump();
  for (const auto& t : tokens) EXPECT_EQ(t["pins"]["user"]["tries_left"], 2);
}

}  // namespace
}  // namespace kortti::test
