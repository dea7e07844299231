// Signing through the socket with SoftHSM2 keys, each signature verified by
// the openssl CLI, never by korttid's own code.

#include <fstream>
#include <thread>

#include "tests/integration/softhsm_fixture.hpp"

namespace kortti::test {
namespace {

using SignSoftHsm = SoftHsmDaemonTest;

TEST_F(SignSoftHsm, ListsTokensAndCertificatesWithPurposes) {
  auto c = daemon_->connect();
  const Json certs = c->call("certificates.list");
  ASSERT_EQ(certs.size(), 4U);
  std::map<std::string, Json> by_id;
  for (const auto& cert : certs) by_id[str(cert["cert_id"])] = cert;
  const Json& rsa = by_id.at(rsa_sign_cert());
  EXPECT_EQ(rsa["key_type"], "rsa");
  EXPECT_EQ(rsa["key_bits"], 2048);
  EXPECT_EQ(rsa["purposes"], Json::array({"signature"}));
  EXPECT_EQ(by_id.at(rsa_auth_cert())["purposes"], Json::array({"authentication"}));
  const Json& ec = by_id.at(ec_sign_cert());
  EXPECT_EQ(ec["key_type"], "ec");
  EXPECT_EQ(ec["curve"], "P-384");
  const Json signature_only = c->call("certificates.list", {{"purpose", "signature"}});
  EXPECT_EQ(signature_only.size(), 2U);
  const Json one_token = c->call("certificates.list", {{"token_id", wstr(token_ids_.at("cardA"))}});
  EXPECT_EQ(one_token.size(), 2U);
}

// Every tokens.list asks for a slot scan. A module that cannot list its
// slots (its reader service gone) is named in the log when that begins and
// when it ends, not at each of a client's thousands of listings (journald's
// rate limit would then drop other users' lines); meanwhile the tokens known
// are listed as they were.
TEST_F(SignSoftHsm, AModuleThatCannotListItsSlotsIsLoggedOnceNotAtEachListing) {
  TempDir dir;
  const fs::path failing = dir / "failing";
  start(shim_options("KORTTI_SHIM_SLOT_LIST", failing.string()));
  auto c = daemon_->connect();
  const std::size_t tokens = c->call("tokens.list").size();
  ASSERT_GE(tokens, 2U);
  std::ofstream(failing) << "";
  for (int i = 0; i < 100; ++i) EXPECT_EQ(c->call("tokens.list").size(), tokens);
  fs::remove(failing);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c->call("tokens.list").size(), tokens);
  const std::string log = daemon_->log();
  EXPECT_EQ(occurrences(log, "cannot list slots"), 1U) << log;
  EXPECT_EQ(occurrences(log, "lists its slots again"), 1U) << log;
}

TEST_F(SignSoftHsm, RsaPkcs1WithEachDigestVerifiesWithOpenssl) {
  auto c = daemon_->connect();
  for (const std::string alg : {"sha256", "sha384", "sha512"}) {
    auto [answer, digest] = sign_digest(*c, rsa_sign_cert(), alg);
    EXPECT_EQ(answer["signature_algorithm"], alg + "WithRSAEncryption");
    EXPECT_EQ(answer["cert_id"], wstr(rsa_sign_cert()));
    EXPECT_TRUE(openssl_verify_digest(b64(answer["certificate"]), digest, b64(answer["signature"]), alg, "pkcs1"))
        << alg;
  }
}

TEST_F(SignSoftHsm, RsaPssVerifiesWithOpenssl) {
  auto c = daemon_->connect();
  auto [answer, digest] = sign_digest(*c, rsa_sign_cert(), "sha256", "pss");
  EXPECT_EQ(answer["signature_algorithm"], "rsassaPss");
  EXPECT_TRUE(openssl_verify_digest(b64(answer["certificate"]), digest, b64(answer["signature"]), "sha256", "pss"));
}

TEST_F(SignSoftHsm, EcP384WithContextSpecificLoginVerifiesWithOpenssl) {
  auto c = daemon_->connect();
  auto [answer, digest] = sign_digest(*c, ec_sign_cert(), "sha384");
  EXPECT_EQ(answer["signature_algorithm"], "ecdsa-with-SHA384");
  const Bytes sig = b64(answer["signature"]);
  EXPECT_EQ(sig[0], 0x30) << "ECDSA signatures are DER SEQUENCEs";
  EXPECT_TRUE(openssl_verify_digest(b64(answer["certificate"]), digest, sig, "sha384", "ecdsa"));
}

TEST_F(SignSoftHsm, SignDataHashesAndVerifiesAsData) {
  auto c = daemon_->connect();
  const Bytes data = random_bytes(5000);
  for (const auto& [cert, scheme] : {std::pair{rsa_sign_cert(), "pkcs1"}, std::pair{ec_sign_cert(), "ecdsa"}}) {
    const Json answer = c->call(
        "sign.data",
        {{"cert_id", wstr(cert)}, {"data", wstr(base64_encode(data))}, {"digest_algorithm", "sha512"}, {"pin", kPin}});
    EXPECT_TRUE(openssl_verify_data(b64(answer["certificate"]), data, b64(answer["signature"]), "sha512", scheme));
  }
}

TEST_F(SignSoftHsm, AlwaysAuthenticateKeyNeedsThePinEvenInASession) {
  auto c = daemon_->connect();
  c->call("session.login", {{"token_id", wstr(token_ids_.at("cardB"))}, {"pin", kPin}});
  auto e = rpc_error([&] { sign_digest(*c, ec_sign_cert(), "sha384", "", /*with_pin=*/false); });
  EXPECT_EQ(e.code(), 1010);
  EXPECT_EQ(e.reason(), "pin_required");
  auto [answer, digest] = sign_digest(*c, ec_sign_cert(), "sha384");
  EXPECT_TRUE(openssl_verify_digest(b64(answer["certificate"]), digest, b64(answer["signature"]), "sha384", "ecdsa"));
}

// cardA is a single-PIN token: its signature key (nonRepudiation) has no
// CKA_ALWAYS_AUTHENTICATE, so the token would sign with it in the session.
// korttid does not: the PIN comes with every signature, checked at the card.
TEST_F(SignSoftHsm, ASessionDoesNotStandInForTheSignatureKeysPinOnASinglePinToken) {
  auto c = daemon_->connect();
  c->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}});
  const std::size_t lines = daemon_->audit().size();
  auto e = rpc_error([&] { sign_digest(*c, rsa_sign_cert(), "sha256", "", /*with_pin=*/false); });
  EXPECT_EQ(e.code(), 1010);
  EXPECT_NE(std::string(e.what()).find("signature key"), std::string::npos) << e.what();
  EXPECT_EQ(daemon_->audit().size(), lines) << "refused before the policy, the card and the audit trail";
  // The same in a batch.
  const Json item = {{"method", "sign.digest"},
                     {"params", {{"digest_algorithm", "sha256"}, {"digest", wstr(base64_encode(random_bytes(32)))}}}};
  const Json batch = {{"cert_id", wstr(rsa_sign_cert())}, {"items", Json::array({item})}};
  EXPECT_EQ(rpc_error([&] { c->call("sign.batch", batch); }).code(), 1010);

  // The PIN is checked at the card, not taken on the session's word.
  Json wrong = {{"cert_id", wstr(rsa_sign_cert())},
                {"digest_algorithm", "sha256"},
                {"digest", wstr(base64_encode(random_bytes(32)))},
                {"pin", "999999"}};
  EXPECT_EQ(rpc_error([&] { c->call("sign.digest", wrong); }).code(), 1011);
  c->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}});
  auto [answer, digest] = sign_digest(*c, rsa_sign_cert(), "sha256");
  EXPECT_TRUE(openssl_verify_digest(b64(answer["certificate"]), digest, b64(answer["signature"]), "sha256", "pkcs1"));
  // The authentication key is the session's, and the session is still open.
  EXPECT_NO_THROW(sign_digest(*c, rsa_auth_cert(), "sha256", "", false));
}

// An id the card's list lacks is 1003 before anything else: not an
// internal error from the card's worker after an audit line and an error
// line per request, which let a session holder fill both.
TEST_F(SignSoftHsm, AnUnknownCertificateInASessionIsNotFoundBeforeTheAuditTrail) {
  auto c = daemon_->connect();
  c->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}});
  const std::size_t lines = daemon_->audit().size();
  for (const char* method : {"sign.digest", "sign.data"}) {
    Json params = {{"cert_id", wstr(token_ids_.at("cardA") + "/ff")}, {"digest_algorithm", "sha256"}};
    params[std::string(method) == "sign.digest" ? "digest" : "data"] = wstr(base64_encode(random_bytes(32)));
    const auto e = rpc_error([&] { c->call(method, params); });
    EXPECT_EQ(e.code(), 1003) << method << ": " << e.what();
    EXPECT_NE(std::string(e.what()).find("/ff"), std::string::npos) << e.what();
  }
  const auto e = rpc_error([&] {
    c->call("auth.token", {{"cert_id", wstr(token_ids_.at("cardA") + "/ff")},
                           {"origin", "https://ehr.example.fi"},
                           {"challenge_nonce", std::string(44, 'A')}});
  });
  EXPECT_EQ(e.code(), 1003) << e.what();
  EXPECT_EQ(daemon_->audit().size(), lines) << "answered before the audit trail";
  EXPECT_EQ(daemon_->log().find("internal"), std::string::npos) << daemon_->log();
  // The session signs as before.
  EXPECT_NO_THROW(sign_digest(*c, rsa_auth_cert(), "sha256", "", false));
}

// A card's PIN2 token (its keys all sign) takes no session.login, whatever
// [pin] says: the session would keep the signature PIN, and here take it
// from a client that client_may_send = false keeps it from.
TEST_F(SignSoftHsm, TheSignaturePinsTokenTakesNoSessionLogin) {
  SoftHsm(tokens_dir_.path()).add_token("cardP", {"physician/sign/always-auth"});
  DaemonOptions o;
  o.extra = "[pin]\nclient_may_send = false\n";
  start(std::move(o));
  auto c = daemon_->connect();
  const std::size_t lines = daemon_->audit().size();
  const auto e = rpc_error([&] {
    c->call("session.login", {{"token_id", wstr(token_ids_.at("cardP"))}, {"pin", kPin}});
  });
  EXPECT_EQ(e.code(), 1050) << e.what();
  EXPECT_EQ(e.data()["detail"], "signature_pin") << e.data().dump();
  EXPECT_NE(std::string(e.what()).find("PIN2"), std::string::npos) << e.what();
  for (const auto& t : c->call("tokens.list")) {
    if (t["label"] == "cardP") {
      EXPECT_FALSE(t["logged_in"].get<bool>());
    }
  }
  EXPECT_EQ(daemon_->audit().size(), lines) << "refused before the card and the audit trail";

  // PIN1 still logs in where the card's authentication key is.
  EXPECT_TRUE(
      c->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}})["logged_in"].get<bool>());
}

// A PIN is checked anew by logging the card out and in again (a second
// session.login, a signature key's PIN in a session). A card that stays
// logged in (its C_Logout fails) would take any PIN: the check fails
// instead, and the session stays as it was.
TEST_F(SignSoftHsm, APinIsNotTakenAsCheckedWhenTheCardCannotBeLoggedOut) {
  const fs::path stuck = tokens_dir_.path() / "logout-fails";
  start(shim_options("KORTTI_SHIM_LOGOUT_FAILS", stuck.string()));
  auto c = daemon_->connect();
  const Json card = wstr(token_ids_.at("cardA"));
  c->call("session.login", {{"token_id", card}, {"pin", kPin}});
  write_file(stuck, "");
  const auto again = rpc_error([&] { c->call("session.login", {{"token_id", card}, {"pin", "000000"}}); });
  EXPECT_EQ(again.code(), 1060) << again.what();
  // The signature key needs its PIN at every signature, in a session too.
  const auto sign = rpc_error([&] {
    c->call("sign.digest", {{"cert_id", wstr(rsa_sign_cert())},
                            {"digest_algorithm", "sha256"},
                            {"digest", wstr(base64_encode(random_bytes(32)))},
                            {"pin", "000000"}});
  });
  EXPECT_EQ(sign.code(), 1060) << sign.what();
  for (const auto& t : c->call("tokens.list")) {
    if (t["label"] == "cardA") {
      EXPECT_TRUE(t["logged_in"].get<bool>()) << t.dump();
    }
  }
  EXPECT_NO_THROW(sign_digest(*c, rsa_auth_cert(), "sha256", "", false)) << "the session signs as before";
  fs::remove(stuck);
  EXPECT_EQ(rpc_error([&] { c->call("session.login", {{"token_id", card}, {"pin", "000000"}}); }).code(), 1011);
}

// A token that lists no authentication certificate (here none at all; a
// certificate object that cannot be read is left out of the list the same
// way) may be the PIN2 token: it takes no session either.
TEST_F(SignSoftHsm, ATokenThatListsNoAuthenticationCertificateTakesNoSessionLogin) {
  SoftHsm(tokens_dir_.path()).add_token("cardE", {});
  start({});
  auto c = daemon_->connect();
  const auto e = rpc_error([&] {
    c->call("session.login", {{"token_id", wstr(token_ids_.at("cardE"))}, {"pin", kPin}});
  });
  EXPECT_EQ(e.code(), 1050) << e.what();
  EXPECT_EQ(e.data()["detail"], "no_authentication_certificate") << e.data().dump();
  for (const auto& t : c->call("tokens.list")) EXPECT_FALSE(t["logged_in"].get<bool>()) << t.dump();
}

// Which PIN a token takes is read from its certificates: one whose list
// cannot be read (a card that fails its reads) takes no session.login
// either, or a PIN2 token would be logged in with the signature PIN.
TEST_F(SignSoftHsm, ATokenWhoseCertificatesCannotBeReadTakesNoSessionLogin) {
  SoftHsm(tokens_dir_.path()).add_token("cardP", {"physician/sign/always-auth"});
  const fs::path unreadable = tokens_dir_.path() / "unreadable";
  write_file(unreadable, "");
  start(shim_options("KORTTI_SHIM_FIND_OBJECTS", unreadable.string()));
  auto c = daemon_->connect();
  for (const char* card : {"cardP", "cardA"}) {
    const auto e = rpc_error([&] {
      c->call("session.login", {{"token_id", wstr(token_ids_.at(card))}, {"pin", kPin}});
    });
    EXPECT_EQ(e.code(), 1060) << card << ": " << e.what();
  }
  for (const auto& t : c->call("tokens.list")) EXPECT_FALSE(t["logged_in"].get<bool>()) << t.dump();
  // Once the card reads again, its certificates say which PIN it takes.
  fs::remove(unreadable);
  EXPECT_EQ(rpc_error([&] {
              c->call("session.login", {{"token_id", wstr(token_ids_.at("cardP"))}, {"pin", kPin}});
            }).data()["detail"],
            "signature_pin");
  EXPECT_NO_THROW(c->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}}));
}

// A page asking for a certificate while no card's list can be read is told
// that, not that no card has one: the card is there, and may have it.
TEST_F(SignSoftHsm, ACardWhoseCertificatesCannotBeReadIsNotTakenForOneWithout) {
  const fs::path unreadable = tokens_dir_.path() / "unreadable";
  write_file(unreadable, "");
  start(shim_options("KORTTI_SHIM_FIND_OBJECTS", unreadable.string()));
  auto c = daemon_->connect();
  const auto e = rpc_error([&] {
    c->call("certificates.share", {{"purpose", "authentication"}, {"origin", "https://ehr.example.fi"}});
  });
  EXPECT_EQ(e.code(), 1060) << e.what();
  EXPECT_NE(std::string(e.what()).find("cannot be read"), std::string::npos) << e.what();
  // A listing still lists what it can, and nothing here.
  EXPECT_TRUE(c->call("certificates.list").empty());
}

TEST_F(SignSoftHsm, SessionLetsTheOwnerSignWithoutPinUntilLogout) {
  auto c = daemon_->connect();
  EXPECT_EQ(rpc_error([&] { sign_digest(*c, rsa_auth_cert(), "sha256", "", false); }).code(), 1010);
  const Json login = c->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}});
  EXPECT_TRUE(login["logged_in"].get<bool>());
  EXPECT_TRUE(login.contains("expires_at"));
  auto [answer, digest] = sign_digest(*c, rsa_auth_cert(), "sha256", "", false);
  EXPECT_TRUE(openssl_verify_digest(b64(answer["certificate"]), digest, b64(answer["signature"]), "sha256", "pkcs1"));
  std::size_t seen = 0;
  for (const auto& t : c->call("tokens.list")) {
    if (t["label"] == "cardA") {
      ++seen;
      EXPECT_TRUE(t["logged_in"].get<bool>());
    }
  }
  EXPECT_EQ(seen, 1U) << "cardA is listed";
  c->call("session.logout", {{"token_id", wstr(token_ids_.at("cardA"))}});
  EXPECT_EQ(rpc_error([&] { sign_digest(*c, rsa_auth_cert(), "sha256", "", false); }).code(), 1010);
}

// A session ends at its lifetime and after its idle time ([session]); a
// request that comes after the end, before the sweep has logged the card
// out, is answered as the card would answer it (1010: no PIN) and leaves no
// audit line. The sweep runs every half of the shorter time here, so a
// request just past the end is almost always ahead of it. (Two seconds:
// the login and a signature must fit in them on a loaded machine.)
TEST_F(SignSoftHsm, ASessionPastItsLifetimeOrIdleTimeIsOverForTheChecksBeforeTheAuditTrail) {
  for (const std::string times : {"lifetime_s = 2\n", "idle_timeout_s = 2\n"}) {
    DaemonOptions o;
    o.session = times;
    start(std::move(o));
    auto c = daemon_->connect();
    c->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}});
    (void)sign_digest(*c, rsa_auth_cert(), "sha256", "", false);  // the session's last use
    const auto used = std::chrono::steady_clock::now();
    const std::size_t lines = daemon_->audit().size();
    std::this_thread::sleep_until(used + std::chrono::milliseconds(2010));
    EXPECT_EQ(rpc_error([&] { sign_digest(*c, rsa_auth_cert(), "sha256", "", false); }).code(), 1010) << times;
    EXPECT_EQ(daemon_->audit().size(), lines) << times << "a request after the session's end left audit lines";
    // And the sweep ends it: the card is logged out.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    bool out = false;
    while (!out && std::chrono::steady_clock::now() < deadline) {
      out = true;
      for (const auto& t : c->call("tokens.list"))
        if (t["label"] == "cardA") out = !t["logged_in"].get<bool>();
      if (!out) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_TRUE(out) << times << "the session was not ended";
  }
}

TEST_F(SignSoftHsm, APinGivenWithARequestDoesNotLeaveTheCardLoggedIn) {
  auto c = daemon_->connect();
  sign_digest(*c, rsa_auth_cert(), "sha256");
  const Json tokens = c->call("tokens.list");
  ASSERT_FALSE(tokens.empty());
  for (const auto& t : tokens) EXPECT_FALSE(t["logged_in"].get<bool>());
  EXPECT_EQ(rpc_error([&] { sign_digest(*c, rsa_auth_cert(), "sha256", "", false); }).code(), 1010);
}

TEST_F(SignSoftHsm, AnotherUserCannotUseOrEndTheSession) {
  auto root = daemon_->connect();
  root->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}});
  // The same request as uid 65534 (nobody), through the kortti CLI; nobody
  // must be able to reach the socket and read the document.
  fs::permissions(daemon_->dir(), fs::perms::owner_all | fs::perms::others_exec | fs::perms::group_exec);
  write_file(daemon_->dir() / "doc.txt", "x");
  fs::permissions(daemon_->dir() / "doc.txt", fs::perms::owner_read | fs::perms::others_read);
  // Even with the right PIN: the card is in root's session.
  write_file(daemon_->dir() / "pin", std::string(kPin) + "\n");
  const std::string out_file = (fs::temp_directory_path() / ("kortti-nobody-" + std::to_string(::getpid()))).string();
  auto r = run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", kortti_binary().string(), "--socket",
                daemon_->socket(), "sign", "--cert", rsa_auth_cert(), "--in", (daemon_->dir() / "doc.txt").string(),
                "--out", out_file, "--pin-fd", "3"},
               {}, "", {{3, daemon_->dir() / "pin"}});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("permission_denied"), std::string::npos) << r.err;
  auto out = run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", kortti_binary().string(), "--socket",
                  daemon_->socket(), "logout", "--token", token_ids_.at("cardA")});
  EXPECT_NE(out.err.find("permission_denied"), std::string::npos) << out.err;
  auto [answer, digest] = sign_digest(*root, rsa_auth_cert(), "sha256", "", false);
  EXPECT_FALSE(answer["signature"].empty());
}

TEST_F(SignSoftHsm, WrongPinIsPinIncorrectAndTheRightOneStillWorks) {
  auto c = daemon_->connect();
  Json params = {{"cert_id", wstr(ec_sign_cert())},
                 {"digest_algorithm", "sha384"},
                 {"digest", wstr(base64_encode(random_bytes(48)))},
                 {"pin", "000000"}};
  auto e = rpc_error([&] { c->call("sign.digest", params); });
  EXPECT_EQ(e.code(), 1011);
  EXPECT_EQ(e.reason(), "pin_incorrect");
  // SoftHSM2 only says "count low"; it never gives a number, so none is made up.
  EXPECT_FALSE(e.data().contains("tries_left"));
  std::size_t seen = 0;
  for (const auto& t : c->call("tokens.list")) {
    if (t["label"] == "cardB") {
      ++seen;
      EXPECT_TRUE(t["pins"]["user"]["count_low"].get<bool>());
    }
  }
  EXPECT_EQ(seen, 1U) << "cardB is listed";
  sign_digest(*c, ec_sign_cert(), "sha384");
}

TEST_F(SignSoftHsm, SchemesThatDoNotFitTheKeyAreUnsupported) {
  auto c = daemon_->connect();
  EXPECT_EQ(rpc_error([&] { sign_digest(*c, ec_sign_cert(), "sha384", "pss"); }).code(), 1050);
  EXPECT_EQ(rpc_error([&] { sign_digest(*c, rsa_sign_cert(), "sha256", "ecdsa"); }).code(), 1050);
}

TEST_F(SignSoftHsm, PinPadOnATokenWithoutOneIsUnsupported) {
  auto c = daemon_->connect();
  Json params = {{"cert_id", wstr(rsa_sign_cert())},
                 {"digest_algorithm", "sha256"},
                 {"digest", wstr(base64_encode(random_bytes(32)))},
                 {"pinpad", true}};
  auto e = rpc_error([&] { c->call("sign.digest", params); });
  EXPECT_EQ(e.code(), 1050) << e.what();
}

TEST_F(SignSoftHsm, ChainHasNoIssuersWhenTheTokenHoldsNone) {
  auto c = daemon_->connect();
  auto [answer, digest] = sign_digest(*c, rsa_sign_cert(), "sha256");
  EXPECT_TRUE(answer["chain"].is_array());
  EXPECT_TRUE(answer["chain"].empty());
}

}  // namespace
}  // namespace kortti::test
