// PIN entry by korttid ("pin_prompt": true): korttid asks the card holder
// through a pinentry program, so the client never sees the PIN. The card is
// the virtual card through pcscd and OpenSC, whose key 9C asks for the PIN at
// every signature (PIN2) and counts wrong PINs itself.
//
// Most tests use the pinentry test double (tests/pinentry/pinentry-double):
// it speaks Assuan as pinentry does, records what korttid asked, and answers
// as scripted. One test drives the real pinentry-tty through a pty.

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <thread>

#include "tests/support/pcsc_fixture.hpp"

namespace kortti::test {
namespace {

using namespace std::chrono_literals;

std::string upper_hex(const Bytes& bytes, std::size_t n) {
  std::string hex = hex_encode(Bytes(bytes.begin(), bytes.begin() + static_cast<long>(n)));
  std::transform(hex.begin(), hex.end(), hex.begin(), [](unsigned char c) { return std::toupper(c); });
  return hex;
}

class PinPrompt : public PcscDaemonTest {
 protected:
  void SetUp() override {}

  // korttid with the pinentry double (or `program`) and these further [pin] lines.
  void start(const std::string& pin_lines = "", std::map<std::string, std::string> env = {},
             const std::string& program = (source_dir() / "tests/pinentry/pinentry-double").string()) {
    DaemonOptions o;
    o.extra = "[pin]\npinentry = \"" + program + "\"\n" + pin_lines;
    o.env = {{"KORTTI_PINENTRY_DOUBLE", double_.path().string()}, {"DISPLAY", ":kortti-test"}};
    for (auto& [k, v] : env) o.env[k] = v;
    start_daemon(std::move(o));
  }
  void script(const std::vector<std::string>& answers) {
    std::ofstream out(double_ / "answers");
    for (const auto& a : answers) out << a << "\n";
  }
  std::string dialog(int n) const { return read_file(double_ / ("dialog-" + std::to_string(n) + ".txt")); }
  int dialogs() const {
    std::ifstream in(double_ / "count");
    int n = 0;
    in >> n;
    return n;
  }
  Json prompt_params(const std::string& cert_id, Bytes& digest) {
    Json p = sign_params(cert_id, "sha256", digest);
    p.erase("pin");
    p["pin_prompt"] = true;
    return p;
  }
  // Settled first: a signature's outcome line follows its answer.
  std::string audit() const {
    (void)daemon_->audit();
    return read_file(daemon_->audit_file());
  }
  // Whether process `pid` still runs (a zombie has ended).
  static bool running(pid_t pid) {
    const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    const auto state = stat.rfind(") ");
    return state != std::string::npos && stat.size() > state + 2 && stat[state + 2] != 'Z';
  }
  // Waits up to `time` for dialog N's program and what it started to end.
  [[nodiscard]] bool dialog_ended(int n, std::chrono::milliseconds time) const {
    const pid_t program = std::stoi(read_file(double_ / ("pid-" + std::to_string(n))));
    const pid_t helper = std::stoi(read_file(double_ / ("child-" + std::to_string(n))));
    const auto deadline = Clock::now() + time;
    while ((running(program) || running(helper)) && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
    return !running(program) && !running(helper);
  }
  void expect_no_pin_anywhere() const {
    EXPECT_EQ(daemon_->log().find(kPin), std::string::npos) << "the PIN reached korttid's log";
    EXPECT_EQ(audit().find(kPin), std::string::npos) << "the PIN reached the audit trail";
  }

  TempDir double_;
};

TEST_F(PinPrompt, SignsWithThePinTheUserTypedAndTheDialogSaysWhoAsksWithWhichKeyForWhat) {
  start();
  script({std::string("pin:") + kPin});
  VirtualCard card(pcscd_, card_options("physician", 0));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  c->call("system.hello", {{"client", "EHR Testi"}});
  Bytes digest;
  const Json r = c->call("sign.digest", prompt_params(card.token_id() + "/02", digest));
  EXPECT_TRUE(openssl_verify_digest(b64(r["certificate"]), digest, b64(r["signature"]), "sha256", str(r["scheme"])));

  ASSERT_EQ(dialogs(), 1);
  const std::string d = dialog(1);
  EXPECT_NE(d.find("SETTITLE kortti: PIN2 for a signature"), std::string::npos) << d;
  EXPECT_NE(d.find("SETPROMPT PIN2:"), std::string::npos) << d;
  // What the kernel says first, then the client's own claim to a name.
  EXPECT_NE(d.find("SETDESC Process " + std::to_string(::getpid()) + " "), std::string::npos) << d;
  EXPECT_NE(d.find(" of uid " + std::to_string(::getuid()) + ", calling itself \"EHR Testi\", asks to sign"),
            std::string::npos)
      << d;
  EXPECT_NE(d.find("a digest"), std::string::npos) << d;
  EXPECT_NE(d.find(upper_hex(digest, 2) + " " + upper_hex(Bytes(digest.begin() + 2, digest.end()), 2)),
            std::string::npos)
      << "the digest's first bytes, as the client can show them: " << d;
  EXPECT_NE(d.find("signature key (PIN2)"), std::string::npos) << d;
  EXPECT_NE(d.find("3 tries left"), std::string::npos) << d;
  EXPECT_NE(d.find("GETPIN"), std::string::npos) << d;
  expect_no_pin_anywhere();
}

TEST_F(PinPrompt, CancelIs1013AndTheCardIsNeverAsked) {
  start();
  script({"cancel", "timeout"});
  VirtualCard card(pcscd_, card_options("physician", 0));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  // OpenSC asks the card for the PIN's state with an empty VERIFY when it
  // likes: a PIN tried would be an audit line, and a signature an 87.
  const int signatures = card.apdus(0x87, Apdu::begun);
  for (const char* how : {"cancel", "pinentry's own timeout"}) {
    Bytes digest;
    const auto e = rpc_error([&] { c->call("sign.digest", prompt_params(card.token_id() + "/02", digest)); });
    EXPECT_EQ(e.code(), 1013) << how << ": " << e.what();
  }
  EXPECT_EQ(dialogs(), 2);
  EXPECT_EQ(audit().find("sign.digest"), std::string::npos) << "no try at the card: " << audit();
  EXPECT_EQ(card.apdus(0x87, Apdu::begun), signatures) << "nothing was signed";
}

TEST_F(PinPrompt, AWrongPinCostsOneTryAndTheUserIsAskedAgainWithTheTriesLeft) {
  start();
  script({"pin:000000", std::string("pin:") + kPin});
  TempDir state;
  VirtualCard card(pcscd_, card_options("physician", 0, {"--state", (state / "tries").string()}));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  Bytes digest;
  const Json r = c->call("sign.digest", prompt_params(card.token_id() + "/02", digest));
  EXPECT_TRUE(openssl_verify_digest(b64(r["certificate"]), digest, b64(r["signature"]), "sha256", str(r["scheme"])));

  ASSERT_EQ(dialogs(), 2);
  EXPECT_EQ(dialog(1).find("SETERROR"), std::string::npos) << dialog(1);
  EXPECT_NE(dialog(2).find("SETERROR Wrong PIN: 2 tries left"), std::string::npos)
      << "the card's own count, after the wrong PIN: " << dialog(2);
  // Each try at the card has its audit line: one refused, one signed.
  const std::string lines = audit();
  EXPECT_NE(lines.find("\"outcome\":\"pin_incorrect\""), std::string::npos) << lines;
  EXPECT_NE(lines.find("\"outcome\":\"ok\""), std::string::npos) << lines;
  EXPECT_EQ(read_file(state / "tries"), "3\n") << "the right PIN reset the card's counter";
  expect_no_pin_anywhere();
}

TEST_F(PinPrompt, OnTheLastTryTheDialogSaysSoAndNoFurtherDialogFollowsALock) {
  start("prompt_attempts = 5\n");
  // The holder's account has typed the right PIN before, so it may spend the
  // last try after its own wrong ones (docs/protocol.md, "The last try").
  script({std::string("pin:") + kPin, "pin:000000", "pin:000001", "pin:000002", "pin:000003"});
  TempDir state;
  VirtualCard card(pcscd_, card_options("physician", 0, {"--state", (state / "tries").string()}));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  Bytes digest;
  c->call("sign.digest", prompt_params(card.token_id() + "/02", digest));
  const auto e = rpc_error([&] { c->call("sign.digest", prompt_params(card.token_id() + "/02", digest)); });
  EXPECT_EQ(e.code(), 1012) << e.what();
  ASSERT_EQ(dialogs(), 4) << "one right PIN; then three tries, three dialogs; none after the lock";
  EXPECT_NE(dialog(4).find("LAST try"), std::string::npos) << dialog(4);
  EXPECT_EQ(dialog(3).find("LAST try"), std::string::npos) << dialog(3);
}

// An account that gave only wrong PINs may not spend the last try: the
// dialog is not shown for it at all.
TEST_F(PinPrompt, NoDialogAsksForALastTryTheAccountMayNotSpend) {
  start("prompt_attempts = 5\n");
  script({"pin:000000", "pin:000001", "pin:000002"});
  VirtualCard card(pcscd_, card_options("physician", 0));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  Bytes digest;
  const auto e = rpc_error([&] { c->call("sign.digest", prompt_params(card.token_id() + "/02", digest)); });
  EXPECT_EQ(e.code(), 1040) << e.what();
  EXPECT_EQ(e.data()["detail"], "last_try_not_yours") << e.data().dump();
  EXPECT_EQ(dialogs(), 2) << "two wrong PINs, and no dialog for the last try";
  EXPECT_EQ(c->call("tokens.list")[0]["pins"]["user"]["tries_left"], 1) << "read from the card";
}

TEST_F(PinPrompt, ClientMayNotSendThePin2WhenTheAdminSaysSo) {
  start("client_may_send = false\n");
  script({std::string("pin:") + kPin});
  VirtualCard card(pcscd_, card_options("physician", 0));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  const int signatures = card.apdus(0x87, Apdu::begun);
  Bytes digest;
  const auto e = rpc_error([&] { c->call("sign.digest", sign_params(card.token_id() + "/02", "sha256", digest)); });
  EXPECT_EQ(e.code(), 1040) << e.what();
  EXPECT_NE(std::string(e.what()).find("pin_prompt"), std::string::npos) << e.what();
  Json batch = {
      {"cert_id", wstr(card.token_id() + "/02")},
      {"items", Json::array({{{"method", "sign.digest"},
                              {"params", {{"digest_algorithm", "sha256"}, {"digest", wstr(base64_encode(digest))}}}}})},
      {"pin", kPin}};
  EXPECT_EQ(rpc_error([&] { c->call("sign.batch", batch); }).code(), 1040);
  EXPECT_EQ(card.apdus(0x87, Apdu::begun), signatures) << "nothing was signed";
  EXPECT_EQ(audit().find("sign"), std::string::npos) << "the refused PIN never reached the card: " << audit();
  EXPECT_EQ(dialogs(), 0);

  // PIN1 may still come from the client (client_may_send_authentication),
  // and the signature key still signs with the dialog.
  c->call("session.login", {{"token_id", wstr(card.token_id())}, {"pin", kPin}});
  const Json r = c->call("sign.digest", prompt_params(card.token_id() + "/02", digest));
  EXPECT_TRUE(openssl_verify_digest(b64(r["certificate"]), digest, b64(r["signature"]), "sha256", str(r["scheme"])));
}

TEST_F(PinPrompt, AKorttidWithNoUserSessionAnswers1050) {
  start("", {{"DISPLAY", ""}, {"WAYLAND_DISPLAY", ""}});
  script({std::string("pin:") + kPin});
  VirtualCard card(pcscd_, card_options("physician", 0));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  Bytes digest;
  const auto e = rpc_error([&] { c->call("sign.digest", prompt_params(card.token_id() + "/02", digest)); });
  EXPECT_EQ(e.code(), 1050) << e.what();
  EXPECT_NE(std::string(e.what()).find("per-user instance"), std::string::npos) << e.what();
  EXPECT_EQ(dialogs(), 0);
  const auto both = rpc_error([&] {
    Json p = prompt_params(card.token_id() + "/02", digest);
    p["pin"] = kPin;
    c->call("sign.digest", p);
  });
  EXPECT_EQ(both.code(), -32602) << both.what();
}

TEST_F(PinPrompt, ABrokenOrMissingPinentryIsAClearErrorAndNothingElse) {
  start("", {}, "/bin/true");  // exits at once, before its greeting
  VirtualCard card(pcscd_, card_options("physician", 0));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  Bytes digest;
  const auto broken = rpc_error([&] { c->call("sign.digest", prompt_params(card.token_id() + "/02", digest)); });
  EXPECT_EQ(broken.code(), 1060) << broken.what();
  EXPECT_NE(std::string(broken.what()).find("PIN dialog program"), std::string::npos) << broken.what();
  EXPECT_EQ(c->call("system.hello")["daemon"], "korttid") << "the connection and korttid carry on";

  start("", {}, "kortti-no-such-pinentry");
  c = daemon_->connect();
  wait_for_token(card.token_id());
  const auto missing = rpc_error([&] { c->call("sign.digest", prompt_params(card.token_id() + "/02", digest)); });
  EXPECT_EQ(missing.code(), 1050) << missing.what();
  EXPECT_NE(std::string(missing.what()).find("kortti-no-such-pinentry"), std::string::npos) << missing.what();
}

TEST_F(PinPrompt, ADialogLeftOpenEndsWhenItsClientGoesAndTheNextDialogComes) {
  start();
  // The stalled program started a helper: it ends with the dialog too.
  script({"child+stall", std::string("pin:") + kPin});
  VirtualCard card(pcscd_, card_options("physician", 0));
  wait_for_token(card.token_id());
  {
    auto gone = daemon_->connect();
    Bytes digest;
    gone->send("sign.digest", prompt_params(card.token_id() + "/02", digest));
    const auto deadline = Clock::now() + 10s;
    while (dialogs() < 1 && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
    ASSERT_EQ(dialogs(), 1) << "the dialog never opened";
  }
  EXPECT_TRUE(dialog_ended(1, 5s)) << "the dialog of a client that left, or what it started, is still open";

  auto c = daemon_->connect();
  Bytes digest;
  const Json r = c->call("sign.digest", prompt_params(card.token_id() + "/02", digest));
  EXPECT_TRUE(openssl_verify_digest(b64(r["certificate"]), digest, b64(r["signature"]), "sha256", str(r["scheme"])));
}

TEST_F(PinPrompt, WhatADialogStartedEndsWithItWhenTheUserHasAnswered) {
  start();
  script({std::string("child+pin:") + kPin});
  VirtualCard card(pcscd_, card_options("physician", 0));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  const Json login = c->call("session.login", {{"token_id", wstr(card.token_id())}, {"pin_prompt", true}});
  EXPECT_TRUE(login["logged_in"].get<bool>());
  ASSERT_EQ(dialogs(), 1);
  EXPECT_TRUE(dialog_ended(1, 2s)) << "a process the PIN dialog started outlived it";
}

// A second login by the holder checks the PIN anew, and the card is
// logged out for it; but a PIN the card cannot take is refused before
// that, and costs neither a try nor the session.
TEST_F(PinPrompt, APinTheCardCannotTakeAtASecondLoginKeepsTheSession) {
  start();
  script({"pin:12"});
  VirtualCard card(pcscd_, card_options("physician", 0));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  c->call("session.login", {{"token_id", wstr(card.token_id())}, {"pin", kPin}});
  const auto e = rpc_error([&] {
    c->call("session.login", {{"token_id", wstr(card.token_id())}, {"pin_prompt", true}});
  });
  EXPECT_EQ(e.code(), -32602) << e.what();
  ASSERT_EQ(dialogs(), 1);
  const Json token = c->call("tokens.list")[0];
  EXPECT_TRUE(token["logged_in"].get<bool>()) << token.dump();
  EXPECT_EQ(token["pins"]["user"]["tries_left"], 3) << token.dump();
  Bytes digest;
  Json p = sign_params(card.token_id() + "/01", "sha256", digest);
  p.erase("pin");
  EXPECT_NO_THROW(c->call("sign.digest", p)) << "the session signs as before";
}

TEST_F(PinPrompt, LoginAndABatchAskOnce) {
  start();
  script({std::string("pin:") + kPin, std::string("pin:") + kPin});
  VirtualCard card(pcscd_, card_options("physician", 0));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  const Json login = c->call("session.login", {{"token_id", wstr(card.token_id())}, {"pin_prompt", true}});
  EXPECT_TRUE(login["logged_in"].get<bool>());
  ASSERT_EQ(dialogs(), 1);
  EXPECT_NE(dialog(1).find("SETPROMPT PIN1:"), std::string::npos) << dialog(1);
  EXPECT_NE(dialog(1).find("asks to log in"), std::string::npos) << dialog(1);

  Json items = Json::array();
  std::vector<Bytes> digests;
  for (int i = 0; i < 3; ++i) {
    digests.push_back(random_bytes(32));
    items.push_back({{"method", "sign.digest"},
                     {"params", {{"digest_algorithm", "sha256"}, {"digest", wstr(base64_encode(digests.back()))}}}});
  }
  const Json r =
      c->call("sign.batch", {{"cert_id", wstr(card.token_id() + "/02")}, {"items", items}, {"pin_prompt", true}});
  EXPECT_EQ(r["signed"], 3) << r.dump();
  ASSERT_EQ(dialogs(), 2);
  EXPECT_NE(dialog(2).find("3 items in one batch"), std::string::npos) << dialog(2);
  expect_no_pin_anywhere();
}

// The real pinentry-tty, on a pseudo-terminal the test holds, as a user at
// a terminal would answer it.
TEST_F(PinPrompt, TheRealPinentryTtyAsksOnATerminal) {
  if (::access("/usr/bin/pinentry-tty", X_OK) != 0) FAIL() << "pinentry-tty is missing (scripts/install-deps)";
  int master = -1;
  int slave = -1;
  char name[128] = {};
  ASSERT_EQ(::openpty(&master, &slave, name, nullptr, nullptr), 0);
  start(std::string("tty = \"") + name + "\"\n", {}, "/usr/bin/pinentry-tty");
  VirtualCard card(pcscd_, card_options("physician", 0));
  wait_for_token(card.token_id());
  auto c = daemon_->connect();
  Bytes digest;
  const auto id = c->send("sign.digest", prompt_params(card.token_id() + "/02", digest));

  std::string screen;
  const auto deadline = Clock::now() + 15s;
  while (screen.find("PIN2:") == std::string::npos && Clock::now() < deadline) {
    pollfd p{master, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buffer[512];
    const ssize_t n = ::read(master, buffer, sizeof buffer);
    if (n > 0) screen.append(buffer, static_cast<std::size_t>(n));
  }
  ASSERT_NE(screen.find("PIN2:"), std::string::npos) << "pinentry-tty showed: " << screen;
  EXPECT_NE(screen.find(upper_hex(digest, 2)), std::string::npos) << screen;
  EXPECT_NE(screen.find("signature key (PIN2)"), std::string::npos) << screen;
  const std::string typed = std::string(kPin) + "\r";
  ASSERT_EQ(::write(master, typed.data(), typed.size()), static_cast<ssize_t>(typed.size()));
  const Json r = c->wait_for(id, 30s);
  EXPECT_TRUE(openssl_verify_digest(b64(r["certificate"]), digest, b64(r["signature"]), "sha256", str(r["scheme"])));
  ::close(master);
  ::close(slave);
  expect_no_pin_anywhere();
}

}  // namespace
}  // namespace kortti::test
