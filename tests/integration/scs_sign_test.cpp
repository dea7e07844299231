// Signatures through the SCS interface, checked with the openssl CLI,
// never with korttid's own code: the kinds DigiSign offers, which key signs
// what, the PIN dialog (and the PIN pad) naming the page, and what happens
// when the page, the user or the policy says no.

#include "tests/integration/scs_fixture.hpp"

namespace kortti::test {
namespace {

TEST_F(Scs, ARawSignatureOverDataVerifiesWithTheLeafCertificateFirstInTheChain) {
  const std::string text = "Lääkemääräys 1234";
  const Bytes data(text.begin(), text.end());
  const Http h = sign(signature_request("signature", "data", data, "SHA256", {{"keyalgorithms", {"RSA"}}}));
  ASSERT_EQ(h.status, 200) << h.err << h.body;
  const Json r = h.json();
  ASSERT_EQ(r["status"], "ok") << h.body;
  EXPECT_EQ(r["signatureType"], "signature");
  EXPECT_EQ(r["signatureAlgorithm"], "SHA256withRSA");
  EXPECT_EQ(h.header("access-control-allow-origin"), kOrigin);
  ASSERT_TRUE(r["chain"].is_array() && !r["chain"].empty());
  const Json card = card_certificate(r["chain"][0], "signature");
  ASSERT_FALSE(card.is_null()) << "the leaf first: a card's signature certificate";
  EXPECT_EQ(card["key_type"], "rsa");
  EXPECT_TRUE(openssl_verify_data(b64(r["chain"][0]), data, b64(r["signature"]), "sha256", "pkcs1"));
  // The user was asked by korttid, in a dialog naming the page.
  EXPECT_NE(dialogs_.dialog(1).find(kOrigin), std::string::npos) << dialogs_.dialog(1);
  const auto lines = outcomes(daemon_->audit());
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_EQ(lines[0]["action"], "sign.data");
  EXPECT_EQ(lines[0]["origin"], kOrigin);
  EXPECT_EQ(lines[0]["client"], "scs");
  EXPECT_EQ(lines[0]["outcome"], "ok");
  EXPECT_EQ(daemon_->log().find(kPin), std::string::npos);
}

TEST_F(Scs, AnEcSignatureOverADigestByTheSelectorsAlgorithm) {
  const Bytes digest = random_bytes(48);
  const Http h = sign(signature_request("signature", "digest", digest, "SHA384", {{"keyalgorithms", {"EC"}}}));
  ASSERT_EQ(h.status, 200) << h.body;
  const Json r = h.json();
  ASSERT_EQ(r["status"], "ok") << h.body;
  EXPECT_EQ(r["signatureAlgorithm"], "SHA384withECDSA");
  EXPECT_TRUE(openssl_verify_digest(b64(r["chain"][0]), digest, b64(r["signature"]), "sha384", "ecdsa"));
}

TEST_F(Scs, CmsOverDataAndDetachedCmsOverAPdfsDigestVerifyWithOpenssl) {
  const std::string text = "a document";
  const Bytes data(text.begin(), text.end());
  const Http attached = sign(signature_request("cms", "data", data));
  ASSERT_EQ(attached.status, 200) << attached.body;
  ASSERT_EQ(attached.json()["status"], "ok") << attached.body;
  const CommandResult inside = cms_verify(b64(attached.json()["signature"]));
  EXPECT_EQ(inside.status, 0) << inside.err;
  EXPECT_EQ(inside.out, text);

  dialogs_.answer({"pin:" + std::string(kPin), "pin:" + std::string(kPin)});
  const std::string pdf = "%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
  const Bytes pdf_bytes(pdf.begin(), pdf.end());
  const Bytes pdf_digest = openssl_hash("sha256", pdf);
  const Http pades = sign(signature_request("cms-pades", "digest", pdf_digest));
  ASSERT_EQ(pades.status, 200) << pades.body;
  ASSERT_EQ(pades.json()["status"], "ok") << pades.body;
  EXPECT_EQ(pades.json()["signatureType"], "cms-pades");
  const CommandResult detached = cms_verify(b64(pades.json()["signature"]), pdf_bytes);
  EXPECT_EQ(detached.status, 0) << detached.err;
  const Bytes other(pdf_bytes.begin(), pdf_bytes.end() - 1);
  EXPECT_NE(cms_verify(b64(pades.json()["signature"]), other).status, 0) << "it is bound to the PDF";
}

TEST_F(Scs, TheAuthenticationKeySignsOnlyDataThatBeginsWithTheOrigin) {
  const Json usage = {{"keyusages", {"digitalsignature"}}};
  const Http digest = sign(signature_request("signature", "digest", random_bytes(32), "SHA256", usage));
  EXPECT_EQ(digest.status, 403);
  EXPECT_EQ(reason(digest), 107);
  const std::string foreign_text = "https://bank.example\nlogin 42";
  const Http foreign =
      sign(signature_request("signature", "data", Bytes(foreign_text.begin(), foreign_text.end()), "SHA256", usage));
  EXPECT_EQ(foreign.status, 403);
  EXPECT_EQ(reason(foreign), 107);
  EXPECT_TRUE(outcomes(daemon_->audit()).empty()) << "the card was not asked";

  const std::string text = std::string(kOrigin) + "\nlogin challenge 42";
  const Bytes data(text.begin(), text.end());
  const Http ok = sign(signature_request("signature", "data", data, "SHA256", usage));
  ASSERT_EQ(ok.status, 200) << ok.body;
  ASSERT_EQ(ok.json()["status"], "ok") << ok.body;
  const Json auth = card_certificate(ok.json()["chain"][0], "authentication");
  ASSERT_FALSE(auth.is_null()) << "an authentication certificate signed";
  EXPECT_TRUE(openssl_verify_data(b64(auth["der"]), data, b64(ok.json()["signature"]), "sha256", scheme_of(auth)));
}

TEST_F(Scs, WhileAPin1SessionIsOpenTheDialogsPinIsStillCheckedAtTheCard) {
  // The user logged in (kortti login): the authentication key's session.
  Json certs = daemon_->connect()->call("certificates.list", {{"purpose", "authentication"}});
  const auto rsa = std::find_if(certs.begin(), certs.end(), [](const Json& c) { return c["key_type"] == "rsa"; });
  ASSERT_NE(rsa, certs.end());
  auto c = daemon_->connect();
  c->call("session.login", {{"token_id", (*rsa)["token_id"]}, {"pin", kPin}});
  const std::string text = std::string(kOrigin) + "\nlogin 7";
  const Json request = signature_request("signature", "data", Bytes(text.begin(), text.end()), "SHA256",
                                         {{"keyusages", {"digitalsignature"}}, {"keyalgorithms", {"RSA"}}});
  dialogs_.answer({"pin:99999999", "cancel"});
  const Http wrong = sign(request);
  ASSERT_EQ(wrong.status, 200) << wrong.body;
  EXPECT_EQ(wrong.json()["status"], "failed") << "a wrong PIN is no confirmation: " << wrong.body;
  EXPECT_FALSE(wrong.json().contains("signature"));
  EXPECT_NE(dialogs_.dialog(2).find("SETERROR"), std::string::npos) << "asked again: " << dialogs_.dialog(2);

  // The double answers by the dialog's number: the third is the next one.
  dialogs_.answer({"pin:99999999", "cancel", "pin:" + std::string(kPin)});
  c->call("session.login", {{"token_id", (*rsa)["token_id"]}, {"pin", kPin}});
  const Http right = sign(request);
  ASSERT_EQ(right.json()["status"], "ok") << right.body;
}

// The re-check of the dialog's PIN keeps the session's end where it was,
// and a key that asks for its PIN at every signature (here cardB's P-384
// signature key) has it checked there, not by a login into the session:
// on a real card that PIN is PIN2, and the session's is PIN1.
TEST_F(Scs, TheRecheckNeitherExtendsTheSessionNorSendsAPin2ToTheSessionsLogin) {
  auto c = daemon_->connect();
  const auto session_end = [&](const std::string& label) {
    for (const Json& t : c->call("tokens.list"))
      if (t["label"] == wstr(label)) return t.contains("session_expires_at") ? str(t["session_expires_at"]) : "";
    return std::string();
  };
  c->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}});
  c->call("session.login", {{"token_id", wstr(token_ids_.at("cardB"))}, {"pin", kPin}});
  const std::string a_end = session_end("cardA");
  const std::string b_end = session_end("cardB");
  ASSERT_FALSE(a_end.empty());
  // The sessions' ends are in whole seconds: let one pass.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  dialogs_.answer({"pin:" + std::string(kPin), "pin:" + std::string(kPin)});
  const std::string text = std::string(kOrigin) + "\nlogin 9";
  const Http auth = sign(signature_request("signature", "data", Bytes(text.begin(), text.end()), "SHA256",
                                           {{"keyusages", {"digitalsignature"}}, {"keyalgorithms", {"RSA"}}}));
  ASSERT_EQ(auth.json()["status"], "ok") << auth.body;
  EXPECT_EQ(session_end("cardA"), a_end) << "the re-check does not extend the session";
  const Http pin2 =
      sign(signature_request("signature", "digest", random_bytes(48), "SHA384", {{"keyalgorithms", {"EC"}}}));
  ASSERT_EQ(pin2.json()["status"], "ok") << pin2.body;
  EXPECT_EQ(session_end("cardB"), b_end) << "the PIN2 key's PIN went to its own login, not the session's";
}

// A PIN pad cannot name the page: the screen does, and the pad is asked
// only after the user confirmed. The PKCS#11 shim plays the PIN-pad reader
// (tests/p11_shim/), reading what is "typed on the pad" from a file.
TEST_F(Scs, OnAPinPadReaderTheScreenNamesThePageBeforeThePadIsAsked) {
  TempDir pad;
  launch("", {"--user-instance"}, shim_options("KORTTI_SHIM_PINPAD", (pad / "typed").string()));
  write_file(pad / "typed", std::string(kPin) + "\n");
  const std::string text = "a referral";
  const Json request =
      signature_request("signature", "data", Bytes(text.begin(), text.end()), "SHA256", {{"keyalgorithms", {"RSA"}}});

  dialogs_.answer({"cancel", "ok"});
  const Http cancelled = sign(request);
  EXPECT_EQ(reason(cancelled), 201) << cancelled.body;
  EXPECT_FALSE(fs::exists(pad / "typed.read")) << "the pad was not asked";
  EXPECT_NE(dialogs_.dialog(1).find("CONFIRM"), std::string::npos) << dialogs_.dialog(1);
  EXPECT_NE(dialogs_.dialog(1).find(kOrigin), std::string::npos) << dialogs_.dialog(1);
  EXPECT_NE(dialogs_.dialog(1).find("PIN pad"), std::string::npos) << dialogs_.dialog(1);
  EXPECT_EQ(dialogs_.dialog(1).find("GETPIN"), std::string::npos) << "no PIN on the screen";

  const Http signed_ = sign(request);
  ASSERT_EQ(signed_.json()["status"], "ok") << signed_.body;
  EXPECT_EQ(read_file(pad / "typed.read"), "1\n") << "the PIN came from the pad, once";
  const Json card = card_certificate(signed_.json()["chain"][0], "signature");
  ASSERT_FALSE(card.is_null());
  EXPECT_TRUE(openssl_verify_data(b64(card["der"]), Bytes(text.begin(), text.end()), b64(signed_.json()["signature"]),
                                  "sha256", "pkcs1"));
}

TEST_F(Scs, ACancelledDialogIsReasonCancelledAndNothingIsSigned) {
  dialogs_.answer({"cancel"});
  const Http h = sign(signature_request("signature", "data", {'x'}));
  ASSERT_EQ(h.status, 200) << h.body;
  EXPECT_EQ(h.json()["status"], "failed");
  EXPECT_EQ(reason(h), 201) << h.body;
  EXPECT_FALSE(h.json().contains("signature"));
}

// A page that closes while its PIN dialog is up (its tab, the browser)
// takes the dialog with it: nobody is left to read the answer, and nothing
// is signed for it. The next page is served as usual.
TEST_F(Scs, APageThatGoesTakesItsDialogWithItAndNothingIsSigned) {
  dialogs_.answer({"stall", "pin:" + std::string(kPin)});
  TempDir tmp;
  Background page = sign_in_background(signature_request("signature", "data", {'x'}), tmp);
  ASSERT_GT(page.dialog, 0) << "the dialog never opened";
  page.curl->kill();
  EXPECT_TRUE(eventually([&] { return ::kill(page.dialog, 0) != 0; }, std::chrono::seconds(5)))
      << "the dialog of a page that went is still open";
  EXPECT_NE(daemon_->log().find("closed its connection; its signature is abandoned"), std::string::npos)
      << daemon_->log();

  const Http next = sign(signature_request("signature", "data", {'y'}));
  ASSERT_EQ(next.status, 200) << next.err;
  EXPECT_EQ(next.json()["status"], "ok") << next.body;
  std::vector<std::string> results;
  for (const Json& line : outcomes(daemon_->audit())) results.push_back(str(line["outcome"]));
  // The abandoned try never reached the card: no audit line of its own.
  EXPECT_EQ(results, (std::vector<std::string>{"ok"})) << "the next page's signature only";
}

// korttid's stop gives a browser's signature in flight the socket's grace
// ([ipc] shutdown_grace_s): the user typing the PIN gets the signature.
TEST_F(Scs, AtStopASignatureWaitingForItsPinIsMadeAndAnswered) {
  dialogs_.answer({"late:" + std::string(kPin)});
  TempDir tmp;
  const Bytes data = {'s', 't', 'o', 'p'};
  Background page = sign_in_background(signature_request("signature", "data", data), tmp);
  ASSERT_GT(page.dialog, 0) << "the dialog never opened";
  EXPECT_EQ(daemon_->stop(SIGTERM), 0);
  EXPECT_EQ(page.curl->wait(), 0) << read_file(tmp / "curl.log");
  const Json r = Json::parse(read_file(page.body), nullptr, false);
  ASSERT_EQ(r["status"], "ok") << read_file(page.body);
  EXPECT_TRUE(openssl_verify_data(b64(r["chain"][0]), data, b64(r["signature"]), "sha256", "pkcs1"));
}

TEST_F(Scs, NoMatchingCertificateIsReasonNoCertificate) {
  const Http h = sign(signature_request("signature", "data", {'x'}, "SHA256", {{"issuers", {"CN=Nobody,C=FI"}}}));
  ASSERT_EQ(h.status, 200) << h.body;
  EXPECT_EQ(h.json()["status"], "failed");
  EXPECT_EQ(reason(h), 200) << h.body;
}

// The card is there but its certificates cannot be read: the page is not
// told that no card has one.
TEST_F(Scs, ACardWhoseCertificatesCannotBeReadIsNotReasonNoCertificate) {
  const fs::path unreadable = files_ / "unreadable";
  write_file(unreadable, "");
  launch("", {"--user-instance"}, shim_options("KORTTI_SHIM_FIND_OBJECTS", unreadable.string()));
  const Http h = sign(signature_request("signature", "data", {'x'}, "SHA256"));
  ASSERT_EQ(h.status, 200) << h.body;
  EXPECT_EQ(h.json()["status"], "failed");
  EXPECT_EQ(reason(h), 204) << h.body;  // the card failed (docs/browsers.md)
  EXPECT_NE(h.json()["reasonText"].get<std::string>().find("cannot be read"), std::string::npos) << h.body;
  EXPECT_FALSE(dialogs_.any_shown());
}

TEST_F(Scs, ACertificateThePolicyRefusesIsNeverAskedForThePin) {
  // A card whose certificate chains to a root korttid does not trust.
  hsm_->add_token("cardC", {"impostor/sign"});
  launch("");
  const std::string issuer = run({"openssl", "x509", "-in", (pki_dir() / "ca/rogue-root.pem").string(), "-noout",
                                  "-subject", "-nameopt", "RFC2253"})
                                 .out;
  const std::string dn = issuer.substr(issuer.find('=') + 1, issuer.find_last_not_of("\n") - issuer.find('='));
  const Http h = sign(signature_request("signature", "data", {'x'}, "SHA256", {{"issuers", {wstr(dn)}}}));
  ASSERT_EQ(h.status, 200) << h.body;
  EXPECT_EQ(h.json()["status"], "failed");
  EXPECT_EQ(reason(h), 203) << h.body;
  EXPECT_FALSE(dialogs_.any_shown()) << "no PIN dialog for a refused certificate";
  const auto lines = outcomes(daemon_->audit());
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_EQ(lines[0]["outcome"], "policy_denied");
  EXPECT_EQ(lines[0]["origin"], kOrigin);
}

}  // namespace
}  // namespace kortti::test
