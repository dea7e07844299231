// `kortti watch` on a desktop: a private session bus with the notification
// server's test double, korttid on the virtual card through pcscd.

#include "tests/support/pcsc_fixture.hpp"

namespace kortti::test {
namespace {

using namespace std::chrono_literals;

class Watch : public PcscDaemonTest {
 protected:
  CommandResult watch_once(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
    std::vector<std::string> argv = {kortti_binary().string(), "--socket", daemon_->socket(), "watch", "--once"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, env);
  }
  int count(const Desktop& desktop, const std::string& text) const {
    int n = 0;
    for (const auto& line : desktop.notices()) n += line.find(text) != std::string::npos;
    return n;
  }
};

TEST_F(Watch, ShowsACardComingAndGoingOnTheDesktop) {
  Desktop desktop;
  desktop.start_watch(daemon_->socket(), {});
  // Subscribed: from then on no event is missed.
  const auto deadline = Clock::now() + 10s;
  while (daemon_->log().find("events.subscribe") == std::string::npos && Clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  ASSERT_NE(daemon_->log().find("events.subscribe"), std::string::npos) << desktop.watch_log();
  {
    VirtualCard card(pcscd_, card_options("physician", 0));
    EXPECT_TRUE(desktop.wait_for_notice("Card inserted", 10s)) << desktop.watch_log();
    wait_for_token(card.token_id());
  }
  EXPECT_TRUE(desktop.wait_for_notice("Card removed\tThe card left Virtual PCD 00 00.", 10s)) << desktop.watch_log();
}

TEST_F(Watch, WarnsOnceOfAPinAboutToLockAndOfACertificateThatExpires) {
  Desktop desktop;
  VirtualCard card(pcscd_, card_options("physician", 0));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  // Another account's wrong PINs: this one may then spend the last try.
  auto stranger = connect_as(daemon_->socket(), 4242, 4242);
  for (int i = 0; i < 2; ++i)
    EXPECT_EQ(rpc_error([&] {
                stranger->call("session.login", {{"token_id", wstr(card.token_id())}, {"pin", "000000"}});
              }).code(),
              1011);

  auto r = watch_once({"--expiry-days", "3650"}, desktop.env());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count(desktop, "2\tPIN about to lock\tThe PIN of Testilääkäri Aino (" + card.token_id() + ")"), 1)
      << "urgent, and naming the card";
  EXPECT_EQ(count(desktop, "\tCard certificate expires\tThe certificate " + card.token_id() + "/"), 2)
      << "both keys' certificates, within ten years";
  EXPECT_EQ(count(desktop, "Testilääkäri Aino expires on 20"), 2);

  // Far from expiry and with the PIN's tries back: nothing to say.
  c->call("session.login", {{"token_id", wstr(card.token_id())}, {"pin", kPin}, {"final_try", true}});
  // The card's counter, not OpenSC's stale "final try" flag (a regression).
  const Json pin = c->call("tokens.list").at(0)["pins"]["user"];
  EXPECT_EQ(pin.value("tries_left", -1), 3) << pin.dump();
  EXPECT_FALSE(pin.value("final_try", true)) << pin.dump();
  const std::size_t before = desktop.notices().size();
  r = watch_once({"--expiry-days", "1"}, desktop.env());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(desktop.notices().size(), before) << desktop.notices().back();

  // --print: the same notices on stdout, no bus needed.
  r = watch_once({"--print", "--expiry-days", "3650"}, {{"DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent"}});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("Card certificate expires: The certificate " + card.token_id()), std::string::npos) << r.out;
}

TEST_F(Watch, SaysWhenTheRegistryExtractIsStale) {
  DaemonOptions o;
  o.registry = "max_age_h = 24\n";
  start_daemon(std::move(o));
  import_registry_fixture(*daemon_);
  Desktop desktop;
  auto r = watch_once({}, desktop.env());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count(desktop, "Registry extract stale"), 0) << "a fresh import";
  // Age the import, as if made eight days ago.
  auto aged = run({"sqlite3", daemon_->registry().string(),
                   "UPDATE provenance SET imported_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-8 days')"});
  ASSERT_EQ(aged.status, 0) << aged.err;
  r = watch_once({}, desktop.env());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count(desktop, "Registry extract stale"), 1);
}

TEST_F(Watch, WithoutASessionBusItSaysWhatToDo) {
  auto r = watch_once({}, {{"DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent"}});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--print"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kortti::test
