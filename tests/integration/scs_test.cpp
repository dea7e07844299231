// The SCS interface as a browser page and an attacker reach it: what it
// answers, to whom (origins, hosts, users), and the limits that hold
// against a page that misbehaves. Its signatures: scs_sign_test.cpp.

#include "tests/integration/scs_fixture.hpp"

namespace kortti::test {
namespace {

TEST_F(Scs, VersionAnswersAsDigiSignDoes) {
  const Http h = curl("GET", "/version", {});
  ASSERT_EQ(h.status, 200) << h.err << h.body;
  const Json v = h.json();
  EXPECT_EQ(v["version"], "1.1");
  EXPECT_EQ(v["httpMethods"], "GET, POST");
  EXPECT_EQ(v["contentTypes"], "data, digest");
  EXPECT_EQ(v["signatureTypes"], "signature,cms,cms-pades");
  EXPECT_EQ(v["selectorAvailable"], true);
  EXPECT_NE(str(v["hashAlgorithms"]).find("SHA256"), std::string::npos);
  EXPECT_EQ(h.header("content-type"), "application/json");
  EXPECT_FALSE(h.has("access-control-allow-origin"));  // no Origin, no CORS
  // 127.0.0.1 and [::1] by their addresses as well.
  EXPECT_EQ(curl("GET", "/version", {}, std::nullopt, "127.0.0.1").status, 200);
}

// HEAD is GET's answer without its body (RFC 9110), refusals too: a body
// after the headers would be read as the start of the next answer.
TEST_F(Scs, HeadGetsTheHeadersAndNoBody) {
  for (const auto& [path, status] : {std::pair{"/version", "200"}, std::pair{"/nothing", "404"}}) {
    const std::string request = std::string("HEAD ") + path + " HTTP/1.1\r\nHost: localhost:" + std::to_string(port_) +
                                "\r\nConnection: close\r\n\r\n";
    const CommandResult r = run({"openssl", "s_client", "-quiet", "-connect", "127.0.0.1:" + std::to_string(port_),
                                 "-servername", "localhost", "-CAfile", (files_ / "ca.pem").string()},
                                {}, request);
    EXPECT_EQ(r.out.rfind(std::string("HTTP/1.1 ") + status, 0), 0U) << r.out << r.err;
    EXPECT_NE(r.out.find("Content-Length: "), std::string::npos) << r.out;
    const auto end = r.out.find("\r\n\r\n");
    ASSERT_NE(end, std::string::npos) << r.out << r.err;
    EXPECT_EQ(r.out.substr(end + 4), "") << "a body after the answer to HEAD " << path;
  }
}

// A page of another site may ask without CORS (a no-cors fetch): no
// Origin, and Sec-Fetch-Site says so. Any answer, a refusal too, would tell
// it korttid runs: it gets none, as from a closed port. The user's own
// navigation and non-browser clients are answered.
TEST_F(Scs, APageOfAnotherSiteAskingWithoutCorsGetsNoAnswer) {
  for (const std::string site : {"cross-site", "same-site"}) {
    const Http probe = curl("GET", "/version", {"Sec-Fetch-Site: " + site});
    EXPECT_EQ(probe.status, 0) << site << ": " << probe.body;
    EXPECT_TRUE(probe.body.empty()) << probe.body;
  }
  // A no-cors POST carries the page's Origin (null under no-referrer), and
  // a browser sends it whatever it is: a probe all the same.
  for (const char* origin : {kForeign, "null"}) {
    const Http post = curl("POST", "/version",
                           {"Sec-Fetch-Site: cross-site", "Sec-Fetch-Mode: no-cors", std::string("Origin: ") + origin,
                            "Content-Type: text/plain"},
                           std::string("x"));
    EXPECT_EQ(post.status, 0) << origin << ": " << post.body;
  }
  // The page sees a closed port; the log says why (an origin left out of
  // allowed_origins looks the same to it).
  EXPECT_NE(read_file(daemon_->dir() / "korttid.log")
                .find(std::string("origin=") + kForeign + " -> no answer (another site's request"),
            std::string::npos);
  EXPECT_EQ(curl("GET", "/version", {"Sec-Fetch-Site: none"}).status, 200);
  EXPECT_EQ(curl("GET", "/version", {}).status, 200);
  const Http cors = curl("GET", "/version", {"Sec-Fetch-Site: cross-site", std::string("Origin: ") + kOrigin});
  EXPECT_EQ(cors.status, 200);
  EXPECT_EQ(cors.header("access-control-allow-origin"), kOrigin);
}

TEST_F(Scs, AnAllowedOriginIsEchoedWithVaryAndAForeignOneGetsNothing) {
  const Http allowed = curl("GET", "/version", {std::string("Origin: ") + kOrigin});
  EXPECT_EQ(allowed.status, 200);
  EXPECT_EQ(allowed.header("access-control-allow-origin"), kOrigin);
  EXPECT_EQ(allowed.header("vary"), "Origin");

  for (const std::string origin : {kForeign, "null", "https://ehr.example.fi.evil.example", "http://ehr.example.fi"}) {
    const Http foreign = curl("GET", "/version", {"Origin: " + origin});
    EXPECT_EQ(foreign.status, 403) << origin;
    EXPECT_FALSE(foreign.has("access-control-allow-origin")) << origin;
    EXPECT_EQ(foreign.header("vary"), "Origin");
    EXPECT_EQ(reason(foreign), 102) << foreign.body;
    EXPECT_EQ(foreign.header("connection"), "close") << "a refused client keeps no connection";
  }
  const Http sign_foreign = sign(signature_request("signature", "data", {'x'}), kForeign);
  EXPECT_EQ(sign_foreign.status, 403);
  EXPECT_FALSE(sign_foreign.has("access-control-allow-origin"));
  EXPECT_TRUE(outcomes(daemon_->audit()).empty()) << "nothing reached the service";
}

// Any page the browser lets reach the port can send refused requests at
// network speed: their log lines have a budget ([ipc]
// log_lines_per_second_per_uid, the port's own), and every request is
// still answered.
TEST_F(Scs, RequestLinesHaveALogBudget) {
  DaemonOptions o;
  o.ipc = "log_lines_per_second_per_uid = 1\n";  // 10 lines in 10 s
  launch("", {"--user-instance"}, std::move(o));
  const CommandResult r =
      run({"curl", "-sS", "--cacert", (files_ / "ca.pem").string(), "-H", std::string("Origin: ") + kForeign, "-o",
           "/dev/null", "-w", "%{http_code}\n", url("/version?[1-60]")});
  std::size_t refused = 0;
  for (std::size_t at = r.out.find("403"); at != std::string::npos; at = r.out.find("403", at + 1)) ++refused;
  EXPECT_EQ(refused, 60U) << r.out << r.err;
  const std::string log = daemon_->log();
  std::size_t lines = 0;
  for (std::size_t at = log.find("scs: GET"); at != std::string::npos; at = log.find("scs: GET", at + 1)) ++lines;
  // Ten a window; twenty if the requests spanned the start of a new one.
  EXPECT_GE(lines, 10U) << log;
  EXPECT_LE(lines, 20U) << log;
  // What was left out is counted, at the latest when korttid stops.
  EXPECT_EQ(daemon_->stop(), 0);
  EXPECT_NE(daemon_->log().find("log lines left out"), std::string::npos) << daemon_->log();
}

TEST_F(Scs, ARebindingHostNameIsRefused) {
  const Http h = curl("GET", "/version", {"Host: evil.example:" + std::to_string(port_)});
  EXPECT_EQ(h.status, 421);
  EXPECT_EQ(reason(h), 103);
  const Http wrong_port = curl("GET", "/version", {"Host: localhost:1"});
  EXPECT_EQ(wrong_port.status, 421);
  const Http s = curl("POST", "/sign",
                      {"Host: evil.example:" + std::to_string(port_), std::string("Origin: ") + kOrigin,
                       "Content-Type: application/json"},
                      to_std(signature_request("signature", "data", {'x'}).dump()));
  EXPECT_EQ(s.status, 421);
}

TEST_F(Scs, PreflightIsAnsweredForAllowedOriginsOnly) {
  const Http allowed =
      curl("OPTIONS", "/sign",
           {std::string("Origin: ") + kOrigin, "Access-Control-Request-Method: POST",
            "Access-Control-Request-Headers: content-type", "Access-Control-Request-Private-Network: true"});
  EXPECT_EQ(allowed.status, 204);
  EXPECT_EQ(allowed.header("access-control-allow-origin"), kOrigin);
  EXPECT_EQ(allowed.header("access-control-allow-methods"), "POST");
  EXPECT_EQ(allowed.header("access-control-allow-headers"), "Content-Type");
  EXPECT_EQ(allowed.header("access-control-allow-private-network"), "true");
  EXPECT_EQ(allowed.header("vary"), "Origin");

  const Http foreign = curl("OPTIONS", "/sign",
                            {std::string("Origin: ") + kForeign, "Access-Control-Request-Method: POST",
                             "Access-Control-Request-Headers: content-type"});
  EXPECT_EQ(foreign.status, 403);
  EXPECT_FALSE(foreign.has("access-control-allow-origin"));
  EXPECT_FALSE(foreign.has("access-control-allow-methods"));
}

TEST_F(Scs, SignRefusesSimpleRequestsAndRequestsWithoutAnOrigin) {
  const std::string body = to_std(signature_request("signature", "data", {'x'}).dump());
  const Http plain = curl("POST", "/sign", {std::string("Origin: ") + kOrigin, "Content-Type: text/plain"}, body);
  EXPECT_EQ(plain.status, 415);
  EXPECT_EQ(reason(plain), 104);
  const Http form = curl("POST", "/sign", {std::string("Origin: ") + kOrigin}, body);  // curl's form type
  EXPECT_EQ(form.status, 415);
  const Http no_origin = curl("POST", "/sign", {"Content-Type: application/json"}, body);
  EXPECT_EQ(no_origin.status, 403);
  EXPECT_EQ(reason(no_origin), 102);
  EXPECT_EQ(curl("GET", "/sign", {std::string("Origin: ") + kOrigin}).status, 405);
  EXPECT_EQ(curl("GET", "/admin", {}).status, 404);
  const Http bad = curl("POST", "/sign", {std::string("Origin: ") + kOrigin, "Content-Type: application/json"},
                        "{\"signatureType\": ");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(reason(bad), 100);
  const Http deep = curl("POST", "/sign", {std::string("Origin: ") + kOrigin, "Content-Type: application/json"},
                         std::string(100000, '['));
  EXPECT_EQ(deep.status, 400);
  EXPECT_TRUE(outcomes(daemon_->audit()).empty());
}

TEST_F(Scs, ABodyOverTheLimitIs413) {
  launch("max_body_bytes = 4096\n");
  const Http h = sign(signature_request("signature", "data", Bytes(8000, 'a')));
  EXPECT_EQ(h.status, 413) << h.err;
  EXPECT_EQ(reason(h), 105);
  EXPECT_NE(read_file(daemon_->dir() / "korttid.log").find("/sign origin=" + std::string(kOrigin) + " -> 413"),
            std::string::npos)
      << "a 413 is logged as any answer";
  // Over the limit, a request's headers are screened all the same: a
  // wrong Host is 421, not 413, and a probe gets no answer.
  const std::string big(8000, 'a');
  const Http rebound = curl("POST", "/sign",
                            {"Host: evil.example:" + std::to_string(port_), "Content-Type: application/json",
                             std::string("Origin: ") + kOrigin},
                            big);
  EXPECT_EQ(rebound.status, 421) << rebound.body;
  const Http probe = curl("POST", "/sign",
                          {"Sec-Fetch-Site: cross-site", "Sec-Fetch-Mode: no-cors", std::string("Origin: ") + kForeign,
                           "Content-Type: text/plain"},
                          big);
  EXPECT_EQ(probe.status, 0) << probe.body;
  EXPECT_EQ(curl("GET", "/version", {}).status, 200) << "the listener serves on";
}

TEST_F(Scs, AnOriginThatAsksTooOftenIsSlowedAndOthersAreNot) {
  launch("signatures_per_minute = 2\n");
  const Json none = signature_request("signature", "data", {'x'}, "SHA256", {{"issuers", {"CN=Nobody,C=FI"}}});
  EXPECT_EQ(reason(sign(none)), 200);
  EXPECT_EQ(reason(sign(none)), 200);
  const Http third = sign(none);
  EXPECT_EQ(third.status, 429);
  EXPECT_EQ(reason(third), 106);
  EXPECT_EQ(reason(sign(none, "https://localhost:8443")), 200) << "another origin has its own share";
}

// A page cannot keep the EHR out with connections it opens and leaves:
// when the slots are full, the one idle longest makes room; none waits for
// its request longer than the idle time; only a listed origin's page keeps
// its connection after an answer.
TEST_F(Scs, IdleConnectionsMakeRoomAndNoneOutlivesItsIdleTime) {
  launch("max_connections = 2\n");
  IdleTlsConnection first(port_);
  ASSERT_TRUE(first.handshake_made());
  IdleTlsConnection second(port_);
  ASSERT_TRUE(second.handshake_made());
  const Http ehr = curl("GET", "/version", {std::string("Origin: ") + kOrigin});
  EXPECT_EQ(ehr.status, 200) << ehr.err << daemon_->log();
  EXPECT_TRUE(first.closed_within(std::chrono::seconds(2))) << "the idlest connection made room";
  EXPECT_TRUE(second.closed_within(std::chrono::seconds(10))) << "an idle connection outlived the idle time";
  EXPECT_NE(ehr.header("connection"), "close") << "a listed origin keeps its connection";
  const Http no_origin = curl("GET", "/version", {});
  EXPECT_EQ(no_origin.status, 200);
  EXPECT_EQ(no_origin.header("connection"), "close") << "a request without a listed origin holds no slot";
}

TEST_F(Scs, AChunkedBodyIsBoundedAsAnyBodyIs) {
  launch("max_body_bytes = 1024\n");
  // Chunk extensions count against neither the header nor the body limit:
  // a request made of one endless extension is cut at the buffer's bound.
  std::string request = "POST /sign HTTP/1.1\r\nHost: localhost:" + std::to_string(port_) + "\r\nOrigin: " + kOrigin +
                        "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1;";
  request += std::string(64 * 1024, 'a');
  TempDir tmp;
  write_file(tmp / "request", request);
  // s_client -quiet waits for korttid to close; `timeout` ends it at 15 s,
  // half the 30 s a request's body may take.
  const CommandResult r = run({"timeout", "15", "sh", "-c",
                               "openssl s_client -quiet -connect 127.0.0.1:" + std::to_string(port_) +
                                   " -servername localhost < " + (tmp / "request").string() + " 2>/dev/null"});
  EXPECT_NE(r.status, 124) << "the connection was held until the request's deadline, its buffer growing";
  EXPECT_EQ(r.out.find("HTTP/1.1 200"), std::string::npos) << r.out;
  EXPECT_EQ(curl("GET", "/version", {}).status, 200) << "korttid still serves";
}

TEST_F(Scs, AnotherUsersConnectionIsClosedBeforeTls) {
  const CommandResult r = curl_as_nobody();
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.err.find("curl: (35)"), std::string::npos) << "the connection ends before TLS: " << r.err;
  EXPECT_TRUE(eventually([&] { return daemon_->log().find("is not this instance's user") != std::string::npos; },
                         std::chrono::seconds(5)))
      << daemon_->log();
  EXPECT_EQ(curl("GET", "/version", {}).status, 200);
}

// Another user's connection is refused before it could make room: the
// user's own idle connection stays.
TEST_F(Scs, AnotherUsersConnectionClosesNoneOfTheUsersOwn) {
  launch("max_connections = 1\n");
  IdleTlsConnection mine(port_);
  ASSERT_TRUE(mine.handshake_made());
  const CommandResult r = curl_as_nobody();
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_TRUE(eventually([&] { return daemon_->log().find("is not this instance's user") != std::string::npos; },
                         std::chrono::seconds(5)))
      << daemon_->log();
  EXPECT_FALSE(mine.closed_within(std::chrono::seconds(1))) << "another user's connection closed the user's own";
}

TEST_F(Scs, OnlyAPerUserInstanceServesIt) {
  launch("", {});
  EXPECT_NE(curl("GET", "/version", {}).status, 200);
  EXPECT_NE(daemon_->log().find("only a per-user instance"), std::string::npos) << daemon_->log();
}

TEST_F(Scs, AMissingCertificateLeavesTheSocketServing) {
  std::filesystem::remove(files_ / "localhost.key");
  launch("");
  EXPECT_NE(daemon_->log().find("the SCS interface is not served"), std::string::npos) << daemon_->log();
  EXPECT_NE(daemon_->log().find("kortti scs setup"), std::string::npos) << daemon_->log();
  EXPECT_FALSE(daemon_->connect()->call("tokens.list").empty());
  const Json status = daemon_->connect()->call("system.status")["scs"];
  EXPECT_EQ(status["state"], "failed") << status.dump();
  EXPECT_NE(str(status["error"]).find("localhost.key"), std::string::npos) << status.dump();
}

// kortti doctor asks korttid how its listener stands, and checks the
// certificate korttid was given, wherever the configuration puts it.
TEST_F(Scs, DoctorSaysWhetherBrowsersAreServedAndChecksTheListenersCertificate) {
  std::string said;  // doctor's whole answer, for the failure messages
  const auto findings = [&] {
    const auto r = run({kortti_binary().string(), "--socket", daemon_->socket(), "--json", "doctor"});
    said = r.out;
    std::vector<Json> out;
    for (const auto& f : Json::parse(r.out))
      if (f["check"] == "scs") out.push_back(f);
    return out;
  };
  auto f = findings();
  ASSERT_EQ(f.size(), 2U) << said;
  EXPECT_EQ(f[0]["verdict"], "ok") << f[0].dump();
  EXPECT_NE(str(f[0]["message"]).find("https://localhost:" + std::to_string(port_)), std::string::npos) << f[0].dump();
  EXPECT_EQ(f[1]["verdict"], "ok") << f[1].dump();
  EXPECT_NE(str(f[1]["message"]).find((files_ / "localhost.pem").string()), std::string::npos) << f[1].dump();

  std::filesystem::remove(files_ / "localhost.pem");
  launch("");
  f = findings();
  ASSERT_EQ(f.size(), 1U) << said;
  EXPECT_EQ(f[0]["verdict"], "fail") << f[0].dump();
  EXPECT_NE(str(f[0]["message"]).find("not served"), std::string::npos) << f[0].dump();
  EXPECT_NE(str(f[0]["hint"]).find("kortti scs setup"), std::string::npos) << f[0].dump();

  // A system instance does not serve browsers, whatever its [scs] says.
  launch("", {});
  f = findings();
  ASSERT_EQ(f.size(), 1U) << said;
  EXPECT_EQ(f[0]["verdict"], "warn") << f[0].dump();
  EXPECT_NE(str(f[0]["hint"]).find("korttid-user"), std::string::npos) << f[0].dump();
}

// An EHR page's script, calling /version and /sign as a page written for
// DigiSign does. Synchronous requests, so that the answers are in the page
// when the headless browser prints it; a CORS refusal throws NetworkError.
std::string ehr_page(int scs_port, const std::string& data) {
  return R"(<!doctype html><html><body><pre id="out">pending</pre><script>
function call(method, path, body) {
  const x = new XMLHttpRequest();
  x.open(method, "https://localhost:)" +
         std::to_string(scs_port) + R"(" + path, false);
  if (body) x.setRequestHeader("Content-Type", "application/json");
  try { x.send(body ? JSON.stringify(body) : null); return x.status + " " + x.responseText; }
  catch (e) { return "error " + e.name; }
}
const version = call("GET", "/version");
const signed = call("POST", "/sign", {version: "1.1", selector: {keyusages: ["nonrepudiation"]},
  signatureType: "signature", hashAlgorithm: "SHA256", contentType: "data", content: btoa(")" +
         data + R"(")});
document.getElementById("out").textContent = JSON.stringify({version: version, signed: signed});
</script></body></html>
)";
}

TEST_F(Scs, ARealBrowserSignsForAnAllowedPageAndAForeignPageGetsNothing) {
  ASSERT_EQ(run({"sh", "-c", "command -v chromium"}).status, 0) << "chromium is not installed (scripts/install-deps)";
  const std::string data = "Resepti 42";
  TempDir site;
  write_file(site / "ehr.html", ehr_page(port_, data));
  PageServer pages(site.path());
  page_origin_ = "https://localhost:" + std::to_string(pages.port());

  // The user's browser profile: an NSS database that trusts the web site's
  // CA, and the listener's CA as kortti scs setup puts it there.
  TempDir home;
  Browser browser(home.path());
  browser.trust(pages.ca(), "site");
  const fs::path nssdb = browser.nssdb();
  const CommandResult setup = run({kortti_binary().string(), "scs", "setup", "--dir", files_.path().string()},
                                  {{"HOME", home.path().string()}});
  ASSERT_EQ(setup.status, 0) << setup.out << setup.err;
  ASSERT_NE(setup.out.find(nssdb.string()), std::string::npos) << "setup found the browser's database: " << setup.out;
  launch("");  // korttid with the new certificate and the page's origin

  const auto browse = [&](const std::string& url) {
    std::string error;
    const std::optional<std::string> text = browser.page_output(url, error);
    if (!text) {
      ADD_FAILURE() << error;
      return Json();
    }
    Json out = Json::parse(*text, nullptr, false);
    if (!out.is_object()) ADD_FAILURE() << "the page says: " << *text;
    return out;
  };

  const Json allowed = browse(page_origin_ + "/ehr.html");
  ASSERT_TRUE(allowed.is_object());
  EXPECT_EQ(str(allowed["version"]).rfind("200 ", 0), 0U) << allowed.dump();
  const std::string signed_text = str(allowed["signed"]);
  ASSERT_EQ(signed_text.rfind("200 ", 0), 0U) << signed_text;
  const Json answer = Json::parse(signed_text.substr(4));
  ASSERT_EQ(answer["status"], "ok") << signed_text;
  const Json card = card_certificate(answer["chain"][0], "signature");
  ASSERT_FALSE(card.is_null()) << signed_text;
  EXPECT_TRUE(openssl_verify_data(b64(card["der"]), Bytes(data.begin(), data.end()), b64(answer["signature"]), "sha256",
                                  scheme_of(card)));
  EXPECT_NE(dialogs_.dialog(1).find(page_origin_), std::string::npos) << dialogs_.dialog(1);
  const auto lines = outcomes(daemon_->audit());
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_EQ(lines[0]["origin"], page_origin_);

  // The same page from an origin korttid does not list: the browser hides
  // every answer from it, and nothing is signed.
  const Json foreign = browse("https://127.0.0.1:" + std::to_string(pages.port()) + "/ehr.html");
  ASSERT_TRUE(foreign.is_object());
  EXPECT_EQ(foreign["version"], "error NetworkError") << foreign.dump();
  EXPECT_EQ(foreign["signed"], "error NetworkError") << foreign.dump();
  EXPECT_EQ(outcomes(daemon_->audit()).size(), 1U);
}

TEST(ScsSetup, ALoopbackOnlyCaWithoutItsKeyTrustedForWebSitesOnlyAndRemovedAgain) {
  TempDir tmp;
  const fs::path db = tmp / "nssdb";
  fs::create_directories(db);
  ASSERT_EQ(run({"certutil", "-N", "--empty-password", "-d", "sql:" + db.string()}).status, 0);
  const fs::path files = tmp / "scs";
  const CommandResult setup =
      run({kortti_binary().string(), "scs", "setup", "--dir", files.string(), "--nssdb", db.string()});
  ASSERT_EQ(setup.status, 0) << setup.out << setup.err;

  const CommandResult ca = run({"openssl", "x509", "-in", (files / "ca.pem").string(), "-noout", "-text"});
  EXPECT_NE(ca.out.find("X509v3 Name Constraints: critical"), std::string::npos) << ca.out;
  EXPECT_NE(ca.out.find("DNS:localhost"), std::string::npos);
  EXPECT_NE(ca.out.find("IP:127.0.0.1/255.255.255.255"), std::string::npos);
  EXPECT_NE(ca.out.find("IP:0:0:0:0:0:0:0:1/FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF"), std::string::npos);
  EXPECT_EQ(
      run({"openssl", "verify", "-CAfile", (files / "ca.pem").string(), (files / "localhost.pem").string()}).status, 0);
  // One private key on disk, the listener's, readable by its owner only.
  int keys = 0;
  for (const auto& entry : fs::directory_iterator(files))
    if (read_file(entry.path()).find("PRIVATE KEY") != std::string::npos) ++keys;
  EXPECT_EQ(keys, 1);
  EXPECT_EQ(fs::status(files / "localhost.key").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  const std::string key_public = run({"openssl", "pkey", "-in", (files / "localhost.key").string(), "-pubout"}).out;
  const std::string leaf_public =
      run({"openssl", "x509", "-in", (files / "localhost.pem").string(), "-noout", "-pubkey"}).out;
  const std::string ca_public = run({"openssl", "x509", "-in", (files / "ca.pem").string(), "-noout", "-pubkey"}).out;
  EXPECT_EQ(key_public, leaf_public);
  EXPECT_NE(key_public, ca_public);

  const CommandResult listed = run({"certutil", "-L", "-d", "sql:" + db.string()});
  EXPECT_NE(listed.out.find("kortti local CA"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("C,,"), std::string::npos) << listed.out;
  // A second setup replaces the CA: one entry, never two.
  ASSERT_EQ(run({kortti_binary().string(), "scs", "setup", "--dir", files.string(), "--nssdb", db.string()}).status, 0);
  const std::string again = run({"certutil", "-L", "-d", "sql:" + db.string()}).out;
  EXPECT_EQ(again.find("kortti local CA"), again.rfind("kortti local CA")) << again;

  const CommandResult removed =
      run({kortti_binary().string(), "scs", "remove", "--dir", files.string(), "--nssdb", db.string()});
  EXPECT_EQ(removed.status, 0) << removed.err;
  EXPECT_EQ(run({"certutil", "-L", "-d", "sql:" + db.string()}).out.find("kortti local CA"), std::string::npos);
  EXPECT_FALSE(fs::exists(files));
}

TEST_F(Scs, CheckConfigRefusesAWildcardOrNullOrigin) {
  TempDir dir;
  for (const std::string origin : {"*", "null", "https://ehr.example.fi/", "http://ehr.example.fi",
                                   "https://EHR.example.fi", "https://ehr.example.fi:443"}) {
    write_file(dir / "k.toml", "[scs]\nenabled = true\nallowed_origins = [\"" + origin + "\"]\n");
    const CommandResult r = run({korttid_binary().string(), "--config", (dir / "k.toml").string(), "--check-config"});
    EXPECT_EQ(r.status, 78) << origin << ": " << r.out;
    EXPECT_NE(r.err.find("allowed_origins"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace kortti::test
