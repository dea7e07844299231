// The SCS interface's answers that need no card: a request's headers
// screened in the defences' order, a /sign body read, and how each answer is
// dressed (CORS for a listed origin only, keep-alive, no-store).

#include <gtest/gtest.h>

#include <memory>
#include <variant>

#include "common/encoding.hpp"
#include "scs/screen.hpp"

namespace kortti::scs {
namespace {

namespace http = boost::beast::http;

constexpr const char* kPage = "https://ehr.example.fi";

Options options() {
  Options o;
  o.allowed_origins = {kPage};
  return o;
}

// A parser that has read `text` as the listener reads it (headers first:
// the body stays unread unless `body` is set).
std::unique_ptr<Parser> parsed(const Options& o, const std::string& text, bool body = false) {
  auto parser = std::make_unique<Parser>();
  bound(*parser, o);
  boost::beast::error_code ec;
  std::size_t used = parser->put(boost::asio::buffer(text), ec);
  if (body && !ec) {
    parser->eager(true);
    used += parser->put(boost::asio::buffer(text.data() + used, text.size() - used), ec);
  }
  EXPECT_FALSE(ec) << ec.message() << " in " << text;
  return parser;
}

// The request line and headers of a page's request, without a body.
std::string http_request(const std::string& line, const std::string& origin = kPage,
                         const std::string& host = "localhost:53952", const std::string& more = "") {
  return line + " HTTP/1.1\r\nHost: " + host + "\r\n" + (origin.empty() ? "" : "Origin: " + origin + "\r\n") + more +
         "\r\n";
}

Request request(http::verb method, const std::string& target, const std::string& origin = kPage) {
  Request r(method, target, 11);
  r.set(http::field::host, "localhost:53952");
  if (!origin.empty()) r.set(http::field::origin, origin);
  r.keep_alive(true);
  return r;
}

Request sign_request(const Json& body, const std::string& origin = kPage) {
  Request r = request(http::verb::post, "/sign", origin);
  r.set(http::field::content_type, "application/json");
  r.body() = to_std(body.dump());
  r.prepare_payload();
  return r;
}

std::string header(const Response& response, http::field field) { return std::string(response[field]); }

Json body_of(const Response& response) { return Json::parse(response.body()); }

std::string reason_text(const Response& response) {
  return to_std(body_of(response)["reasonText"].get_ref<const WipingString&>());
}

TEST(ScsScreen, AHostOtherThanTheLoopbackIsRefusedFirst) {
  const Options o = options();
  const Screen screen(o);
  // A rebinding page: its own name and origin, both wrong; the Host is named.
  const auto answer =
      screen.headers(*parsed(o, http_request("POST /sign", "https://evil.example", "evil.example:53952")), 0);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->result_int(), 421);
  EXPECT_EQ(body_of(*answer)["reasonCode"], static_cast<int>(Reason::host_not_allowed));
  EXPECT_FALSE(answer->keep_alive());
}

TEST(ScsScreen, AnUnlistedOriginLearnsNothingAndKeepsNoConnection) {
  const Options o = options();
  const Screen screen(o);
  const auto answer = screen.headers(*parsed(o, http_request("OPTIONS /sign", "https://evil.example")), 0);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->result_int(), 403);
  EXPECT_TRUE(header(*answer, http::field::access_control_allow_origin).empty());
  EXPECT_TRUE(header(*answer, http::field::access_control_allow_methods).empty());
  EXPECT_EQ(header(*answer, http::field::vary), "Origin");
  EXPECT_FALSE(answer->keep_alive());
}

TEST(ScsScreen, AListedOriginsPreflightIsAnsweredForItAlone) {
  const Options o = options();
  const Screen screen(o);
  const auto answer = screen.headers(*parsed(o, http_request("OPTIONS /sign", kPage, "localhost:53952",
                                                             "Access-Control-Request-Private-Network: true\r\n")),
                                     0);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->result_int(), 204);
  EXPECT_EQ(header(*answer, http::field::access_control_allow_origin), kPage);
  EXPECT_EQ(header(*answer, http::field::access_control_allow_methods), "POST");
  EXPECT_EQ(std::string((*answer)["Access-Control-Allow-Private-Network"]), "true");
  EXPECT_EQ(header(*answer, http::field::cache_control), "no-store");
  EXPECT_TRUE(answer->keep_alive());
}

// Its body unread, a request answered from its headers takes its connection
// with it: the body would otherwise be read as the page's next request.
TEST(ScsScreen, AnAnswerGivenBeforeTheBodyWasReadClosesTheConnection) {
  const Options o = options();
  const Screen screen(o);
  const std::string smuggled = "GET /version HTTP/1.1\r\nHost: localhost:53952\r\n\r\n";
  const auto answer =
      screen.headers(*parsed(o, http_request("OPTIONS /sign", kPage, "localhost:53952",
                                             "Content-Length: " + std::to_string(smuggled.size()) + "\r\n") +
                                    smuggled),
                     0);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->result_int(), 204);
  EXPECT_FALSE(answer->keep_alive());
}

TEST(ScsScreen, SignNeedsPostAnOriginAndJsonAndRoomToWait) {
  const Options o = options();
  const Screen screen(o);
  const auto status = [&](const std::string& text, std::size_t pending) {
    const auto answer = screen.headers(*parsed(o, text), pending);
    return answer ? answer->result_int() : 0;
  };
  const std::string json = "Content-Type: application/json\r\n";
  EXPECT_EQ(status(http_request("GET /sign"), 0), 405);
  EXPECT_EQ(status(http_request("POST /elsewhere"), 0), 404);
  EXPECT_EQ(status(http_request("POST /sign", "", "localhost:53952", json), 0), 403);
  // Busy comes before the Origin's check: a page told to retry does not spend its tries.
  EXPECT_EQ(status(http_request("POST /sign", "", "localhost:53952", json), o.max_pending_signatures), 503);
  // text/plain would make a "simple" request, which no preflight precedes.
  EXPECT_EQ(status(http_request("POST /sign", kPage, "localhost:53952", "Content-Type: text/plain\r\n"), 0), 415);
  EXPECT_EQ(status(http_request("POST /sign", kPage, "localhost:53952", json), 0), 0);  // its body may be read
  // /version answers any page on the loopback, a query string aside.
  EXPECT_EQ(status(http_request("GET /version?x=1", ""), 0), 200);
}

TEST(ScsScreen, ABodyIsReadIntoTheRequestItMakesOrRefused) {
  const Options o = options();
  const Screen screen(o);
  const Json digest = {{"version", "1.1"},
                       {"selector", {{"keyusages", Json::array({"nonrepudiation"})}}},
                       {"signatureType", "signature"},
                       {"hashAlgorithm", "SHA256"},
                       {"contentType", "digest"},
                       {"content", wstr(base64_encode(Bytes(32, 1)))}};
  auto read = screen.body(sign_request(digest));
  ASSERT_TRUE(std::holds_alternative<SignRequest>(read));
  EXPECT_EQ(std::get<SignRequest>(read).content, Bytes(32, 1));

  // The authentication key never signs a digest for a page.
  Json auth = digest;
  auth["selector"]["keyusages"] = Json::array({"digitalsignature"});
  read = screen.body(sign_request(auth));
  ASSERT_TRUE(std::holds_alternative<Response>(read));
  EXPECT_EQ(std::get<Response>(read).result_int(), 403);
  EXPECT_EQ(body_of(std::get<Response>(read))["reasonCode"], static_cast<int>(Reason::authentication_rule));

  // The authentication key signs data that begins with the page's origin.
  auth["contentType"] = "data";
  auth["content"] = wstr(base64_encode(as_bytes(std::string(kPage) + "\nlogin")));
  EXPECT_TRUE(std::holds_alternative<SignRequest>(screen.body(sign_request(auth))));
  auth["content"] = wstr(base64_encode(as_bytes("https://other.example\nlogin")));
  read = screen.body(sign_request(auth));
  ASSERT_TRUE(std::holds_alternative<Response>(read));
  EXPECT_EQ(body_of(std::get<Response>(read))["reasonCode"], static_cast<int>(Reason::authentication_rule));

  Request deep = sign_request(Json::object());
  deep.body() = std::string(40, '[') + std::string(40, ']');
  read = screen.body(deep);
  ASSERT_TRUE(std::holds_alternative<Response>(read));
  EXPECT_NE(reason_text(std::get<Response>(read)).find("nests deeper"), std::string::npos);
}

TEST(ScsScreen, ABodyOverTheLimitIsKnownFromItsLength) {
  Options o = options();
  o.max_body_bytes = 1000;
  Parser parser;
  bound(parser, o);
  const std::string text = http_request("POST /sign", kPage, "localhost:53952", "Content-Length: 1001\r\n");
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(text), ec);
  EXPECT_EQ(ec, http::error::body_limit);
}

TEST(ScsScreen, TooLargeNamesTheLimitAndClosesTheConnection) {
  Options o = options();
  o.max_body_bytes = 1000;
  const Screen screen(o);
  const Response answer = screen.too_large(request(http::verb::post, "/sign"));
  EXPECT_EQ(answer.result_int(), 413);
  EXPECT_NE(reason_text(answer).find("1000 bytes ([scs] max_body_bytes)"), std::string::npos);
  EXPECT_EQ(header(answer, http::field::access_control_allow_origin), kPage);  // the page may read why
  EXPECT_FALSE(answer.keep_alive());
}

}  // namespace
}  // namespace kortti::scs
