// Readers and cards over real PC/SC: a private pcscd, vpcd's virtual readers,
// the kortti-vcard virtual card, OpenSC's PKCS#11 module. No mocks.

#include <thread>

#include "tests/integration/pcsc_fixture.hpp"

namespace kortti::test {
namespace {

using namespace std::chrono_literals;
using Pcsc = PcscDaemonTest;

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
  p["final_try"] = true;
  auto locked = rpc_error([&] { c->call("sign.digest", p); });
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

TEST_F(Pcsc, PcscdKilledMeansUnavailableAndEverythingReturnsWithIt) {
  VirtualCard card(pcscd_, card_options("physician", 0, {"--reconnect", "--connect-timeout-ms", "30000"}));
  wait_for_token(card.token_id());
  auto w = watcher();
  pcscd_.kill();
  expect_event(*w, "card", "removed", 3000ms);
  expect_event(*w, "reader", "removed", 3000ms);
  auto c = daemon_->connect();
  bool unavailable = false;
  for (int i = 0; i < 50 && !unavailable; ++i) {
    unavailable = c->call("system.status")["pcsc"] == "unavailable";
    if (!unavailable) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(unavailable);
  EXPECT_TRUE(c->call("readers.list").empty());

  pcscd_.start();
  expect_event(*w, "reader", "added", 5000ms);
  expect_event(*w, "card", "inserted", 5000ms);
  expect_event(*w, "token", "present", 5000ms);
  EXPECT_EQ(c->call("system.status")["pcsc"], "ok");
  Bytes digest;
  const Json r = c->call("sign.digest", sign_params(card.token_id() + "/01", "sha256", digest));
  EXPECT_TRUE(openssl_verify_digest(b64(r["certificate"]), digest, b64(r["signature"]), "sha256", "pkcs1"));
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
  std::size_t lines = 0;
  for (auto at = audit.find("sign.batch sign.digest"); at != std::string::npos;
       at = audit.find("sign.batch sign.digest", at + 1))
    ++lines;
  EXPECT_EQ(lines, 20U);
  EXPECT_EQ(audit.find(kPin), std::string::npos);
}

TEST_F(Pcsc, ABatchWithAWrongPinCostsOneTryNotOnePerItem) {
  VirtualCard card(pcscd_, CardOptions{});
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  Json items = Json::array();
  for (int i = 0; i < 5; ++i)
    items.push_back({{"method", "sign.digest"},
                     {"params", {{"digest_algorithm", "sha256"}, {"digest", wstr(base64_encode(random_bytes(32)))}}}});
  const Json r =
      c->call("sign.batch", {{"cert_id", wstr(card.token_id() + "/02")}, {"items", items}, {"pin", "000000"}});
  ASSERT_EQ(r["items"].size(), 5U) << r.dump();
  for (const auto& item : r["items"]) EXPECT_EQ(item["error"]["code"], 1011) << item.dump();
  EXPECT_EQ(r["items"][0]["error"]["data"]["tries_left"], 2) << r.dump();
  const Json tokens = c->call("tokens.list");
  ASSERT_EQ(tokens.size(), 1U) << tokens.dump();
  for (const auto& t : tokens) EXPECT_EQ(t["pins"]["user"]["tries_left"], 2);
}

}  // namespace
}  // namespace kortti::test
