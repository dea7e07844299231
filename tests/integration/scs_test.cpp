// The SCS interface as a browser page and an attacker reach it: curl over
// HTTPS against korttid (--user-instance, [scs] enabled) over SoftHSM2, the
// pinentry test double answering korttid's PIN dialog. Signatures are
// checked with the openssl CLI, never with korttid's own code.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "tests/integration/softhsm_fixture.hpp"

namespace kortti::test {
namespace {

constexpr const char* kOrigin = "https://ehr.example.fi";
constexpr const char* kForeign = "https://evil.example";

struct Http {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case; the last of a name
  std::string body;
  std::string err;
  [[nodiscard]] Json json() const { return Json::parse(body, nullptr, false); }
  [[nodiscard]] bool has(const std::string& name) const { return headers.contains(name); }
  [[nodiscard]] std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// The listener's certificate as the user makes it: kortti scs setup,
// leaving the browsers' databases alone.
void make_listener_certificate(const fs::path& dir) {
  const CommandResult r = run({kortti_binary().string(), "scs", "setup", "--dir", dir.string(), "--no-nss"});
  if (r.status != 0) throw std::runtime_error("kortti scs setup: " + r.err);
}

// A page's connection that makes its TLS handshake and then sends nothing:
// a browser's preconnect, or a page holding slots.
class IdleTlsConnection {
 public:
  explicit IdleTlsConnection(int port) : ctx_(SSL_CTX_new(TLS_client_method())) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return;
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    char name[] = "localhost";
    SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, name);
    open_ = SSL_connect(ssl_) == 1;
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~IdleTlsConnection() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
  }
  IdleTlsConnection(const IdleTlsConnection&) = delete;
  IdleTlsConnection& operator=(const IdleTlsConnection&) = delete;

  // The handshake was made (not refused before TLS).
  [[nodiscard]] bool handshake_made() const { return open_; }
  // Whether korttid closed it within `timeout` (session tickets aside,
  // nothing else ever comes).
  bool closed_within(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      char byte = 0;
      const int n = SSL_read(ssl_, &byte, 1);
      if (n <= 0 && SSL_get_error(ssl_, n) != SSL_ERROR_WANT_READ) return true;
    }
    return false;
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool open_ = false;
};

class Scs : public SoftHsmDaemonTest {
 protected:
  void SetUp() override {
    make_listener_certificate(files_.path());
    port_ = closed_port();
    launch("");
  }

  // korttid with [scs] enabled and `more` lines added to the table.
  void launch(const std::string& more, std::vector<std::string> args = {"--user-instance"}, DaemonOptions o = {}) {
    o.extra = "[scs]\nenabled = true\nport = " + std::to_string(port_) + "\nallowed_origins = [\"" + kOrigin +
              "\", \"" + page_origin_ + "\"]\ncertificate = \"" + (files_ / "localhost.pem").string() + "\"\nkey = \"" +
              (files_ / "localhost.key").string() + "\"\n" + more;
    dialogs_.use_in(o);
    o.args = std::move(args);
    start(std::move(o));
    dialogs_.answer({"pin:" + std::string(kPin)});
  }

  [[nodiscard]] std::string url(const std::string& path) const {
    return "https://localhost:" + std::to_string(port_) + path;
  }

  // One request with curl, trusting only the listener's CA. `headers` as
  // "Name: value"; a body is POSTed.
  Http curl(const std::string& method, const std::string& path, const std::vector<std::string>& headers,
            const std::optional<std::string>& body = std::nullopt, const std::string& host = "localhost") {
    TempDir tmp;
    std::vector<std::string> argv = {"curl",       "-sS",
                                     "--cacert",   (files_ / "ca.pem").string(),
                                     "-X",         method,
                                     "-o",         (tmp / "body").string(),
                                     "-D",         (tmp / "headers").string(),
                                     "-w",         "%{http_code}",
                                     "--max-time", "60"};
    for (const auto& h : headers) argv.insert(argv.end(), {"-H", h});
    if (body) {
      write_file(tmp / "request", *body);
      argv.insert(argv.end(), {"--data-binary", "@" + (tmp / "request").string()});
    }
    argv.push_back("https://" + host + ":" + std::to_string(port_) + path);
    const CommandResult r = run(argv);
    Http out;
    out.err = r.err;
    out.status = std::atoi(r.out.c_str());
    if (fs::exists(tmp / "body")) out.body = read_file(tmp / "body");
    if (fs::exists(tmp / "headers")) {
      std::istringstream lines(read_file(tmp / "headers"));
      std::string line;
      while (std::getline(lines, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        out.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      }
    }
    return out;
  }

  Http sign(const Json& request, const std::string& origin = kOrigin) {
    return curl("POST", "/sign", {"Origin: " + origin, "Content-Type: application/json"}, to_std(request.dump()));
  }

  static Json signature_request(const std::string& type, const std::string& content_type, const Bytes& content,
                                const std::string& hash = "SHA256", const Json& selector = Json()) {
    Json r = {{"version", "1.1"},
              {"signatureType", wstr(type)},
              {"hashAlgorithm", wstr(hash)},
              {"contentType", wstr(content_type)},
              {"content", wstr(base64_encode(content))}};
    if (!selector.is_null()) r["selector"] = selector;
    return r;
  }

  // The card's certificate (certificates.list) whose DER is `der`; null
  // when no card has it.
  Json card_certificate(const Json& der, const char* purpose) {
    for (const Json& c : daemon_->connect()->call("certificates.list", {{"purpose", purpose}}))
      if (c["der"] == der) return c;
    return Json();
  }
  static std::string scheme_of(const Json& card_cert) { return card_cert["key_type"] == "ec" ? "ecdsa" : "pkcs1"; }

  static int reason(const Http& h) {
    const Json j = h.json();
    return j.is_object() && j.contains("reasonCode") ? j["reasonCode"].get<int>() : -1;
  }

  // A page's /sign sent by curl in the background (its answer's body to
  // `body`), once korttid's dialog for it is up (`dialog`: the dialog's pid,
  // or -1 if none came within 10 s).
  struct Background {
    std::unique_ptr<BackgroundCommand> curl;
    pid_t dialog = -1;
    fs::path body;
  };
  Background sign_in_background(const Json& request, const TempDir& dir) {
    write_file(dir / "request", to_std(request.dump()));
    Background b;
    b.body = dir / "body";
    b.curl = std::make_unique<BackgroundCommand>(
        std::vector<std::string>{"curl", "-sS", "--cacert", (files_ / "ca.pem").string(), "-H",
                                 std::string("Origin: ") + kOrigin, "-H", "Content-Type: application/json",
                                 "--data-binary", "@" + (dir / "request").string(), "-o", b.body.string(),
                                 url("/sign")},
        dir / "curl.log");
    const fs::path shown = dialogs_.dir() / "pid-1";
    std::string pid;
    if (eventually([&] { return fs::exists(shown) && !(pid = read_file(shown)).empty(); }, std::chrono::seconds(10)))
      b.dialog = std::stoi(pid);
    return b;
  }

  TempDir files_;
  PinentryDouble dialogs_;
  int port_ = 0;
  std::string page_origin_ = "https://localhost:8443";
};

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
  EXPECT_EQ(curl("GET", "/version", {}).status, 200) << "the listener serves on";
}

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
  // -k: nobody cannot read the test's CA file, and the handshake is never
  // reached anyway.
  const CommandResult r = run({"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "curl", "-sSk",
                               "--max-time", "20", url("/version")});
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.err.find("curl: (35)"), std::string::npos) << "the connection ends before TLS: " << r.err;
  EXPECT_TRUE(eventually([&] { return daemon_->log().find("is not this instance's user") != std::string::npos; },
                         std::chrono::seconds(5)))
      << daemon_->log();
  EXPECT_EQ(curl("GET", "/version", {}).status, 200);
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
  const fs::path nssdb = home / ".pki/nssdb";
  fs::create_directories(nssdb);
  ASSERT_EQ(run({"certutil", "-N", "--empty-password", "-d", "sql:" + nssdb.string()}).status, 0);
  ASSERT_EQ(run({"certutil", "-A", "-d", "sql:" + nssdb.string(), "-n", "site", "-t", "C,,", "-i", pages.ca().string()})
                .status,
            0);
  const CommandResult setup = run({kortti_binary().string(), "scs", "setup", "--dir", files_.path().string()},
                                  {{"HOME", home.path().string()}});
  ASSERT_EQ(setup.status, 0) << setup.out << setup.err;
  ASSERT_NE(setup.out.find(nssdb.string()), std::string::npos) << "setup found the browser's database: " << setup.out;
  launch("");  // korttid with the new certificate and the page's origin

  const auto browse = [&](const std::string& url) {
    const CommandResult r =
        run({"timeout", "90", "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--user-data-dir=" + (home / "profile").string(), "--dump-dom", url},
            {{"HOME", home.path().string()}});
    const std::string marker = "<pre id=\"out\">";
    const auto begin = r.out.find(marker);
    const auto end = r.out.find("</pre>");
    if (begin == std::string::npos || end == std::string::npos) {
      ADD_FAILURE() << "no page from chromium (" << r.status << "): " << r.out << r.err;
      return Json();
    }
    const std::string text = r.out.substr(begin + marker.size(), end - begin - marker.size());
    Json out = Json::parse(text, nullptr, false);
    if (!out.is_object()) ADD_FAILURE() << "the page says: " << text;
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
