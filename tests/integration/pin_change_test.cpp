// pin.status, pin.change and pin.unblock on the virtual card through pcscd
// and OpenSC, whose PIV applet implements CHANGE REFERENCE DATA and RESET
// RETRY COUNTER and counts the PIN's and the PUK's tries itself; and the
// PKCS#11 way of unblocking (C_Login(CKU_SO) and C_InitPIN) on SoftHSM2.

#include <fstream>

#include "tests/integration/softhsm_fixture.hpp"
#include "tests/support/pcsc_fixture.hpp"

namespace kortti::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kNewPin = "24681357";
constexpr const char* kPuk = "12345678";  // kortti-vcard's default

class PinChange : public PcscDaemonTest {
 protected:
  void SetUp() override { start(); }

  // OpenSC unblocks a PIV card's PIN through PKCS#11 only with this style.
  void start(const std::string& extra = "", std::map<std::string, std::string> env = {}) {
    {
      std::ofstream conf(conf_dir_ / "opensc.conf");
      conf << "app default { framework pkcs15 { use_file_caching = no; } }\n"
              "app opensc-pkcs11 { pkcs11 { user_pin_unblock_style = set_pin_in_unlogged_session; } }\n";
    }
    extra_env_["OPENSC_CONF"] = (conf_dir_ / "opensc.conf").string();
    DaemonOptions o;
    o.extra = extra;
    o.env = std::move(env);
    start_daemon(std::move(o));
  }
  void insert() {
    std::ofstream(state_ / "tries") << "3\n";  // a fresh card's counter, as the card writes it
    card_ =
        std::make_unique<VirtualCard>(pcscd_, card_options("physician", 0, {"--state", (state_ / "tries").string()}));
    wait_for_token(card_->token_id());
  }
  std::string token() const { return card_->token_id(); }
  Json status(client::Client& c) { return c.call("pin.status", {{"token_id", wstr(token())}}).at(0)["pins"]["user"]; }
  // The card's own account: PIN tries, then the PIN and the PUK's tries.
  std::string card_tries() const { return read_file(state_ / "tries"); }
  std::string card_pin_state() const { return read_file(state_ / "tries.pin"); }
  int login_code(client::Client& c, const std::string& pin, bool final_try = false) {
    Json p = {{"token_id", wstr(token())}, {"pin", wstr(pin)}};
    if (final_try) p["final_try"] = true;
    try {
      c.call("session.login", p);
      c.call("session.logout", {{"token_id", wstr(token())}});
      return 0;
    } catch (const client::RpcError& e) {
      return e.code();
    }
  }
  // The PIN locked as the guard of the last try lets it be: two wrong PINs
  // from `c`, the last from another account (uid 4242), which is returned.
  std::unique_ptr<client::Client> lock_pin(client::Client& c) {
    EXPECT_EQ(login_code(c, "000000"), 1011);
    EXPECT_EQ(login_code(c, "000001"), 1011);
    auto other = connect_as(daemon_->socket(), 4242, 4242);
    EXPECT_EQ(login_code(*other, "000002", true), 1012);
    return other;
  }
  void expect_no_pin_anywhere() const {
    const std::string audit = read_file(daemon_->dir() / "audit.log");
    for (const char* secret : {kPin, kNewPin, kPuk}) {
      EXPECT_EQ(daemon_->log().find(secret), std::string::npos) << secret << " in korttid's log";
      EXPECT_EQ(audit.find(secret), std::string::npos) << secret << " in the audit trail";
    }
  }

  TempDir conf_dir_;
  TempDir state_;
  std::unique_ptr<VirtualCard> card_;
};

TEST_F(PinChange, TheOldPinStopsWorkingAndTheNewOneWorks) {
  insert();
  auto c = daemon_->connect();
  auto events = watcher();
  c->call("events.subscribe", {{"topics", Json::array({"pin"})}});
  const Json before = status(*c);
  EXPECT_EQ(before.value("tries_left", -1), 3) << before.dump();
  EXPECT_EQ(before.value("min_length", 0), 4) << before.dump();
  EXPECT_EQ(before.value("max_length", 0), 8) << before.dump();

  EXPECT_TRUE(c->call("pin.change", {{"token_id", wstr(token())}, {"pin", kPin}, {"new_pin", kNewPin}})["changed"]);
  const Json e = expect_event(*c, "pin", "changed", 5s);
  EXPECT_EQ(str(e["token_id"]), token());
  EXPECT_NE(card_pin_state().find(kNewPin), std::string::npos) << "the card itself holds the new PIN";
  EXPECT_EQ(login_code(*c, kNewPin), 0);
  EXPECT_EQ(login_code(*c, kPin), 1011) << "the old PIN no longer works";
  EXPECT_NE(read_file(daemon_->dir() / "audit.log").find("\"action\":\"pin.change\""), std::string::npos);
  expect_no_pin_anywhere();
}

TEST_F(PinChange, ANewPinOutsideTheRulesIsRefusedBeforeTheCardIsTouched) {
  insert();
  auto c = daemon_->connect();
  const int changes = card_->apdus(0x24, Apdu::begun);
  for (const char* bad : {"123", "123456789", "12ab5678"}) {
    const auto e = rpc_error([&] {
      c->call("pin.change", {{"token_id", wstr(token())}, {"pin", kPin}, {"new_pin", bad}});
    });
    EXPECT_EQ(e.code(), -32602) << bad << ": " << e.what();
  }
  EXPECT_EQ(card_->apdus(0x24, Apdu::begun), changes) << "no CHANGE REFERENCE DATA reached the card";
  EXPECT_EQ(card_tries(), "3\n");
  EXPECT_EQ(rpc_error([&] { c->call("pin.change", {{"token_id", wstr(token())}, {"pin", kPin}}); }).code(), -32602);
}

TEST_F(PinChange, AWrongOldPinCostsOneTryAndChangesNothing) {
  insert();
  auto c = daemon_->connect();
  const auto e = rpc_error([&] {
    c->call("pin.change", {{"token_id", wstr(token())}, {"pin", "000000"}, {"new_pin", kNewPin}});
  });
  EXPECT_EQ(e.code(), 1011) << e.what();
  EXPECT_EQ(e.data().value("tries_left", -1), 2) << e.data().dump();
  EXPECT_EQ(card_tries(), "2\n");
  EXPECT_EQ(login_code(*c, kPin), 0) << "the PIN is still the old one";
}

TEST_F(PinChange, UnblockWithThePukResetsTheCounterAndAWrongPukCountsDown) {
  insert();
  auto c = daemon_->connect();
  // A PIN that is not locked is changed, not unblocked: no PUK is spent.
  const int resets = card_->apdus(0x2C, Apdu::begun);
  EXPECT_EQ(rpc_error([&] {
              c->call("pin.unblock", {{"token_id", wstr(token())}, {"puk", kPuk}, {"new_pin", kNewPin}});
            }).code(),
            -32602);
  EXPECT_EQ(card_->apdus(0x2C, Apdu::begun), resets);

  // The last try from another account: the one that spent the others may not.
  auto other = lock_pin(*c);
  EXPECT_TRUE(status(*c).value("locked", false)) << status(*c).dump();
  EXPECT_EQ(login_code(*c, kPin), 1012) << "the right PIN does not open a locked card";

  const auto wrong = rpc_error([&] {
    c->call("pin.unblock", {{"token_id", wstr(token())}, {"puk", "87654321"}, {"new_pin", kNewPin}});
  });
  EXPECT_EQ(wrong.code(), 1011) << wrong.what();
  EXPECT_EQ(card_pin_state(), std::string(kPin) + "\n2\n") << "the PUK's own counter went down";

  auto events = daemon_->connect();
  events->call("events.subscribe", {{"topics", Json::array({"pin"})}});
  EXPECT_TRUE(c->call("pin.unblock", {{"token_id", wstr(token())}, {"puk", kPuk}, {"new_pin", kNewPin}})["unblocked"]);
  expect_event(*events, "pin", "unblocked", 5s);
  EXPECT_EQ(card_tries(), "3\n") << "the PIN's counter starts again";
  EXPECT_EQ(card_pin_state(), std::string(kNewPin) + "\n3\n");
  EXPECT_EQ(status(*c).value("tries_left", -1), 3);
  EXPECT_EQ(login_code(*c, kNewPin), 0);
  expect_no_pin_anywhere();
}

// A locked card takes no PIN: requests that bring one are refused before
// the audit trail, however many come, so no uid can fill the trail's disk
// with them. The flag korttid read is looked at again for each (a PIN
// unblocked by another program works at once).
TEST_F(PinChange, ALockedPinIsRefusedBeforeTheAuditTrailUntilAnotherProgramUnblocksIt) {
  insert();
  auto c = daemon_->connect();
  auto other = lock_pin(*c);
  const std::size_t lines = daemon_->audit().size();
  Bytes digest;
  Json sign = sign_params(token() + "/02", "sha256", digest);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(login_code(*other, kPin), 1012);
    EXPECT_EQ(rpc_error([&] { other->call("sign.digest", sign); }).code(), 1012);
    EXPECT_EQ(rpc_error([&] {
                other->call("pin.change", {{"token_id", wstr(token())}, {"pin", kPin}, {"new_pin", kNewPin}});
              }).code(),
              1012);
  }
  EXPECT_EQ(daemon_->audit().size(), lines) << "a request a locked PIN refuses left audit lines";

  // pkcs11-tool through the same pcscd: korttid is not told.
  const CommandResult unblocked =
      run({"pkcs11-tool", "--module", kOpenScModule, "--unlock-pin", "--puk", kPuk, "--new-pin", kNewPin},
          {{"OPENSC_CONF", (conf_dir_ / "opensc.conf").string()}});
  ASSERT_EQ(unblocked.status, 0) << unblocked.out << unblocked.err;
  sign["pin"] = kNewPin;
  EXPECT_FALSE(c->call("sign.digest", sign)["signature"].get<std::string>().empty()) << daemon_->log();
  EXPECT_EQ(login_code(*c, kNewPin), 0);
}

// An unblock the card would refuse untried, or that korttid will not send,
// leaves no audit line however often any uid asks: a PIN with tries left,
// and a PUK the card said was locked.
TEST_F(PinChange, AnUnblockThatCannotWorkIsRefusedBeforeTheAuditTrail) {
  insert();
  auto c = daemon_->connect();
  auto other = connect_as(daemon_->socket(), 4242, 4242);
  const Json unblock = {{"token_id", wstr(token())}, {"puk", kPuk}, {"new_pin", kNewPin}};
  const std::size_t lines = daemon_->audit().size();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(rpc_error([&] { other->call("pin.unblock", unblock); }).code(), -32602);
  EXPECT_EQ(daemon_->audit().size(), lines) << "an unblock of a PIN with tries left left audit lines";

  other = lock_pin(*c);
  Json wrong = unblock;
  wrong["puk"] = "87654321";
  // Two accounts, as one may not spend all of the PUK's tries.
  auto third = connect_as(daemon_->socket(), 4243, 4243);
  int code = 0;
  for (client::Client* who : {other.get(), other.get(), third.get(), third.get()}) {
    code = rpc_error([&] { who->call("pin.unblock", wrong); }).code();
    EXPECT_TRUE(code == 1011 || code == 1012) << code;
    if (code == 1012) break;
  }
  ASSERT_EQ(code, 1012) << "the PUK's tries ran out";
  EXPECT_EQ(card_pin_state(), std::string(kPin) + "\n0\n");

  const std::size_t before = daemon_->audit().size();
  const int resets = card_->apdus(0x2C, Apdu::begun);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(rpc_error([&] { other->call("pin.unblock", wrong); }).code(), 1012);
    EXPECT_EQ(rpc_error([&] { c->call("pin.unblock", unblock); }).code(), 1012);
  }
  EXPECT_EQ(daemon_->audit().size(), before) << "an unblock of a card with a locked PUK left audit lines";
  EXPECT_EQ(card_->apdus(0x2C, Apdu::begun), resets) << "the card was asked again";
  expect_no_pin_anywhere();
}

// The PUK is guarded as the last PIN try is: one account that is not the
// holder's may not lock it (a locked PUK means a new card). Its third wrong
// PUK is refused before the card and the audit trail; the holder, from
// another account, still unblocks.
TEST_F(PinChange, OneAccountMayNotSpendAllOfThePuksTries) {
  insert();
  auto c = daemon_->connect();
  auto other = lock_pin(*c);
  const Json wrong = {{"token_id", wstr(token())}, {"puk", "87654321"}, {"new_pin", kNewPin}};
  EXPECT_EQ(rpc_error([&] { other->call("pin.unblock", wrong); }).code(), 1011);
  EXPECT_EQ(rpc_error([&] { other->call("pin.unblock", wrong); }).code(), 1011);
  ASSERT_EQ(card_pin_state(), std::string(kPin) + "\n1\n") << "the PUK has one try left";

  const std::size_t lines = daemon_->audit().size();
  const int resets = card_->apdus(0x2C, Apdu::begun);
  for (int i = 0; i < 5; ++i) {
    const auto e = rpc_error([&] { other->call("pin.unblock", wrong); });
    EXPECT_EQ(e.code(), 1040) << e.what();
    EXPECT_EQ(e.data().value("detail", ""), "puk_not_yours") << e.data().dump();
  }
  EXPECT_EQ(card_->apdus(0x2C, Apdu::begun), resets) << "the card was asked";
  EXPECT_EQ(daemon_->audit().size(), lines) << "a refused PUK left audit lines";
  EXPECT_EQ(card_pin_state(), std::string(kPin) + "\n1\n");

  EXPECT_TRUE(c->call("pin.unblock", {{"token_id", wstr(token())}, {"puk", kPuk}, {"new_pin", kNewPin}})["unblocked"]);
  EXPECT_EQ(card_pin_state(), std::string(kNewPin) + "\n3\n");
  // The card took the PUK: every account starts again.
  EXPECT_EQ(login_code(*other, kNewPin), 0);
  expect_no_pin_anywhere();
}

// Tries spent by another program (a browser's own PKCS#11 module) are not
// seen by korttid until it asks the card: it asks before each typed PIN
// goes to it, so the last try is guarded by the card's count, not by the
// count korttid read before.
TEST_F(PinChange, TriesSpentByAnotherProgramAreCountedBeforeTheNextPin) {
  insert();
  auto c = daemon_->connect();
  for (const char* wrong : {"000000", "000001"})
    (void)run({"pkcs11-tool", "--module", kOpenScModule, "--login", "--pin", wrong, "--list-objects"},
              {{"OPENSC_CONF", (conf_dir_ / "opensc.conf").string()}});
  ASSERT_EQ(card_tries(), "1\n") << "pkcs11-tool spent two tries";
  EXPECT_EQ(login_code(*c, "000002"), 1040) << "the last try, without final_try";
  EXPECT_EQ(card_tries(), "1\n") << "the card kept its last try";
  EXPECT_EQ(login_code(*c, kPin, true), 0);
  EXPECT_EQ(card_tries(), "3\n");
}

// A PIN locked by another program through the same pcscd: korttid's last
// look said it had tries, but an unblock asks the card, and unblocks it.
TEST_F(PinChange, AnUnblockAsksTheCardWhetherItsPinIsLocked) {
  insert();
  auto c = daemon_->connect();
  EXPECT_EQ(status(*c).value("tries_left", -1), 3);
  for (const char* wrong : {"000000", "000001", "000002"})
    (void)run({"pkcs11-tool", "--module", kOpenScModule, "--login", "--pin", wrong, "--list-objects"},
              {{"OPENSC_CONF", (conf_dir_ / "opensc.conf").string()}});
  ASSERT_EQ(card_tries(), "0\n") << "pkcs11-tool locked the PIN";
  EXPECT_TRUE(c->call("pin.unblock", {{"token_id", wstr(token())}, {"puk", kPuk}, {"new_pin", kNewPin}})["unblocked"])
      << daemon_->log();
  EXPECT_EQ(card_tries(), "3\n");
  EXPECT_EQ(login_code(*c, kNewPin), 0);
}

TEST_F(PinChange, WithPinPromptKorttidAsksForTheOldAndTheNewPinTypedTwice) {
  TempDir dialogs;
  {
    std::ofstream answers(dialogs / "answers");
    answers << "pin:000000\npin:" << kNewPin << "\npin:" << kPin << "\npin:" << kNewPin << "\n";
  }
  start("[pin]\npinentry = \"" + (source_dir() / "tests/pinentry/pinentry-double").string() + "\"\n",
        {{"KORTTI_PINENTRY_DOUBLE", dialogs.path().string()}, {"DISPLAY", ":kortti-test"}});
  insert();
  auto c = daemon_->connect();
  EXPECT_TRUE(c->call("pin.change", {{"token_id", wstr(token())}, {"pin_prompt", true}})["changed"]);
  const std::string first = read_file(dialogs / "dialog-1.txt");
  const std::string second = read_file(dialogs / "dialog-2.txt");
  const std::string third = read_file(dialogs / "dialog-3.txt");
  EXPECT_NE(first.find("SETPROMPT Current PIN:"), std::string::npos) << first;
  EXPECT_NE(first.find("asks to change the PIN"), std::string::npos) << first;
  EXPECT_NE(second.find("SETPROMPT New PIN:"), std::string::npos) << second;
  EXPECT_NE(second.find("SETREPEAT"), std::string::npos) << "the new PIN is typed twice: " << second;
  EXPECT_NE(third.find("SETERROR Wrong PIN: 2 tries left"), std::string::npos) << third;
  EXPECT_EQ(login_code(*c, kNewPin), 0);
  expect_no_pin_anywhere();
}

// On the last try an account that gave wrong PINs is refused before its
// three dialogs, not after them.
TEST_F(PinChange, OnTheLastTryNoDialogAsksAnAccountThatMayNotSpendIt) {
  TempDir dialogs;
  std::ofstream(dialogs / "answers") << "pin:" << kPin << "\npin:" << kNewPin << "\npin:" << kNewPin << "\n";
  start("[pin]\npinentry = \"" + (source_dir() / "tests/pinentry/pinentry-double").string() + "\"\n",
        {{"KORTTI_PINENTRY_DOUBLE", dialogs.path().string()}, {"DISPLAY", ":kortti-test"}});
  insert();
  auto c = daemon_->connect();
  EXPECT_EQ(login_code(*c, "000000"), 1011);
  EXPECT_EQ(login_code(*c, "000001"), 1011);
  const auto e = rpc_error([&] { c->call("pin.change", {{"token_id", wstr(token())}, {"pin_prompt", true}}); });
  EXPECT_EQ(e.code(), 1040) << e.what();
  EXPECT_EQ(e.data().value("detail", ""), "last_try_not_yours") << e.data().dump();
  EXPECT_FALSE(fs::exists(dialogs / "dialog-1.txt")) << "a dialog was shown";
  EXPECT_EQ(card_tries(), "1\n");
}

TEST_F(PinChange, AnAdminWhoKeepsPinsFromClientsRefusesThemHereToo) {
  start("[pin]\nclient_may_send = false\n");
  insert();
  auto c = daemon_->connect();
  const auto e = rpc_error([&] {
    c->call("pin.change", {{"token_id", wstr(token())}, {"pin", kPin}, {"new_pin", kNewPin}});
  });
  EXPECT_EQ(e.code(), 1040) << e.what();
  EXPECT_EQ(card_tries(), "3\n");
}

class PinUnblockSoftHsm : public SoftHsmDaemonTest {
 protected:
  void SetUp() override {
    DaemonOptions o;
    o.pkcs11 = "unblock_style = \"so_login\"\n";
    start(std::move(o));
  }
};

TEST_F(PinUnblockSoftHsm, TheSoLoginStyleSetsANewUserPinWithTheSoPin) {
  auto c = daemon_->connect();
  const std::string token = token_ids_.at("cardA");
  EXPECT_TRUE(c->call("pin.unblock", {{"token_id", wstr(token)}, {"puk", kSoPin}, {"new_pin", kNewPin}})["unblocked"]);
  c->call("session.login", {{"token_id", wstr(token)}, {"pin", kNewPin}});
  c->call("session.logout", {{"token_id", wstr(token)}});
  EXPECT_EQ(rpc_error([&] { c->call("session.login", {{"token_id", wstr(token)}, {"pin", kPin}}); }).code(), 1011);
  EXPECT_EQ(rpc_error([&] {
              c->call("pin.unblock", {{"token_id", wstr(token)}, {"puk", "00000000"}, {"new_pin", kPin}});
            }).code(),
            1011);
  // The token still signs after its sessions were closed and opened again.
  c->call("session.login", {{"token_id", wstr(token)}, {"pin", kNewPin}});
  const auto [r, digest] = sign_digest(*c, rsa_auth_cert(), "sha256", "", false);
  EXPECT_TRUE(openssl_verify_digest(b64(r["certificate"]), digest, b64(r["signature"]), "sha256", "pkcs1"));
}

// A card's label is the card's to choose, and reaches the PIN dialog of a
// card without an authentication certificate (most PIN2 tokens): a line
// break in it must not be a line of the dialog's own ("9 tries left"), nor
// an escape sequence redraw a terminal's screen.
class PinChangeWords : public SoftHsmDaemonTest {
 protected:
  static constexpr const char* kLabel = "card\x1b[2J\n9 tries left";
  void SetUp() override {
    SoftHsm(tokens_dir_.path()).add_token(kLabel, {"nurse/sign"});
    DaemonOptions o;
    dialogs_.use_in(o);
    start(std::move(o));
    dialogs_.answer({"cancel"});
  }
  PinentryDouble dialogs_;
};

TEST_F(PinChangeWords, ACardsLabelIsOneLineOfTextInTheDialog) {
  auto c = daemon_->connect();
  const auto e = rpc_error([&] {
    c->call("pin.change", {{"token_id", wstr(token_ids_.at(kLabel))}, {"pin_prompt", true}});
  });
  EXPECT_EQ(e.code(), 1013) << e.what();
  const std::string dialog = dialogs_.dialog(1);
  EXPECT_NE(dialog.find("asks to change the PIN of the card \"card"), std::string::npos) << dialog;
  EXPECT_EQ(dialog.find('\x1b'), std::string::npos) << dialog;
  EXPECT_EQ(dialog.find("\n9 tries left"), std::string::npos) << dialog;
  EXPECT_NE(dialog.find("9 tries left\"."), std::string::npos) << dialog;
}

// A PIN-pad reader is what no real part of the test bed has: the PKCS#11
// shim over SoftHSM2 plays one (tests/p11_shim/), reading what the user
// "types on the pad" from a file.
class PinPadChange : public SoftHsmDaemonTest {
 protected:
  void SetUp() override {
    DaemonOptions o = shim_options("KORTTI_SHIM_PINPAD", (pad_ / "typed").string());
    o.pkcs11 = "unblock_style = \"so_login\"\n";
    o.extra = extra_tables();
    start(std::move(o));
  }
  virtual std::string extra_tables() const { return ""; }
  void type_on_pad(const std::vector<std::string>& lines) {
    std::ofstream out(pad_ / "typed", std::ios::trunc);
    for (const auto& l : lines) out << l << "\n";
    fs::remove(pad_ / "typed.read");
  }
  TempDir pad_;
};

TEST_F(PinPadChange, ThePinsAreTypedOnThePadAndKorttidNeverSeesThem) {
  auto c = daemon_->connect();
  const std::string token = token_ids_.at("cardA");
  EXPECT_TRUE(c->call("pin.status", {{"token_id", wstr(token)}}).at(0)["pinpad"].get<bool>());
  // The login that proves the old PIN, then the module's change: old, new.
  type_on_pad({kPin, kPin, kNewPin});
  EXPECT_TRUE(c->call("pin.change", {{"token_id", wstr(token)}, {"pinpad", true}})["changed"]);
  EXPECT_EQ(read_file(pad_ / "typed.read"), "3\n") << "three entries on the pad";
  c->call("session.login", {{"token_id", wstr(token)}, {"pin", kNewPin}});
  c->call("session.logout", {{"token_id", wstr(token)}});

  type_on_pad({"cancel"});
  EXPECT_EQ(rpc_error([&] { c->call("pin.change", {{"token_id", wstr(token)}, {"pinpad", true}}); }).code(), 1013);

  // pin_prompt on a reader with a PIN pad: the pad asks, not a dialog.
  type_on_pad({kSoPin, kPin});
  EXPECT_TRUE(c->call("pin.unblock", {{"token_id", wstr(token)}, {"pin_prompt", true}})["unblocked"]);
  c->call("session.login", {{"token_id", wstr(token)}, {"pin", kPin}});
  const std::string log = daemon_->log();
  for (const char* secret : {kPin, kNewPin, kSoPin}) EXPECT_EQ(log.find(secret), std::string::npos) << secret;
}

// What logind says of one uid: an active session at seat0, in the file
// sd_uid_get_seats() reads (/run/systemd/users/UID). A double of logind,
// named as such: no test machine can open a real seat session for a test
// uid. Root only (the directory is root's); removed again at the end.
class SeatSession {
 public:
  explicit SeatSession(uid_t uid) : file_(fs::path("/run/systemd/users") / std::to_string(uid)) {
    made_dir_ = !fs::exists(file_.parent_path());
    fs::create_directories(file_.parent_path());
    if (fs::exists(file_)) throw std::runtime_error(file_.string() + " exists: a real session of that uid");
    std::ofstream(file_) << "STATE=active\nACTIVE_SEATS=seat0\nONLINE_SEATS=seat0\n";
  }
  ~SeatSession() {
    std::error_code ignored;
    fs::remove(file_, ignored);
    if (made_dir_) fs::remove(file_.parent_path(), ignored);
  }
  SeatSession(const SeatSession&) = delete;
  SeatSession& operator=(const SeatSession&) = delete;

 private:
  fs::path file_;
  bool made_dir_ = false;
};

// The pad asks whoever stands at the reader and cannot say who asks: a uid
// with no active session at the seat may not make it ask (1040, before the
// pad), or another local user could have the card holder type the PIN for
// them. Root may. [pin] pinpad_for = "anyone" lifts the rule.
TEST_F(PinPadChange, OnlyTheUidAtTheSeatMayMakeThePadAsk) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: it writes logind's state file for a test uid";
  constexpr uid_t kUser = 4243;
  const std::string token = token_ids_.at("cardA");
  const Json sign = {{"cert_id", wstr(rsa_sign_cert())},
                     {"digest_algorithm", "sha256"},
                     {"digest", wstr(base64_encode(random_bytes(32)))},
                     {"pinpad", true}};
  type_on_pad({kPin});
  {
    auto away = connect_as(daemon_->socket(), kUser, kUser);
    const auto e = rpc_error([&] { away->call("session.login", {{"token_id", wstr(token)}, {"pinpad", true}}); });
    EXPECT_EQ(e.code(), 1040) << e.what();
    EXPECT_NE(std::string(e.what()).find("pinpad_for"), std::string::npos) << e.what();
    EXPECT_EQ(rpc_error([&] { away->call("sign.digest", sign); }).code(), 1040);
    EXPECT_EQ(rpc_error([&] { away->call("pin.change", {{"token_id", wstr(token)}, {"pinpad", true}}); }).code(), 1040);
    // korttid's dialog would give way to the pad: the dialog's rule holds, its own user only.
    EXPECT_EQ(rpc_error([&] {
                away->call("pin.change", {{"token_id", wstr(token)}, {"pin_prompt", true}});
              }).code(),
              1040);
    EXPECT_FALSE(fs::exists(pad_ / "typed.read")) << "the pad was not asked";
  }
  SeatSession at_the_seat(kUser);
  auto here = connect_as(daemon_->socket(), kUser, kUser);
  EXPECT_TRUE(here->call("session.login", {{"token_id", wstr(token)}, {"pinpad", true}})["logged_in"]);
  EXPECT_EQ(read_file(pad_ / "typed.read"), "1\n");
}

class PinPadForAnyone : public PinPadChange {
 protected:
  std::string extra_tables() const override { return "[pin]\npinpad_for = \"anyone\"\n"; }
};

TEST_F(PinPadForAnyone, EveryPermittedUidMayMakeThePadAsk) {
  type_on_pad({kPin});
  auto c = connect_as(daemon_->socket(), 4243, 4243);
  EXPECT_TRUE(c->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pinpad", true}})["logged_in"]);
  EXPECT_EQ(read_file(pad_ / "typed.read"), "1\n");
}

}  // namespace
}  // namespace kortti::test
