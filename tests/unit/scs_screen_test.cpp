// The SCS interface's answers that need no card: a request's headers
// screened in the defences' order, a /sign body read, and how each answer is
// dressed (CORS for a listed origin only, keep-alive, no-store).

#include <gtest/gtest.h>

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

Request request(http::verb method, const std::string& target, const std::string& origin = kPage,
                const std::string& host = "localhost:53952") {
  Request r(method, target, 11);
  r.set(http::field::host, host);
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
      screen.headers(request(http::verb::post, "/sign", "https://evil.example", "evil.example:53952"), 0);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->result_int(), 421);
  EXPECT_EQ(body_of(*answer)["reasonCode"], static_cast<int>(Reason::host_not_allowed));
  EXPECT_FALSE(answer->keep_alive());
}

TEST(ScsScreen, AnUnlistedOriginLearnsNothingAndKeepsNoConnection) {
  const Options o = options();
  const Screen screen(o);
  const auto answer = screen.headers(request(http::verb::options, "/sign", "https://evil.example"), 0);
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
  Request preflight = request(http::verb::options, "/sign");
  preflight.set("Access-Control-Request-Private-Network", "true");
  const auto answer = screen.headers(preflight, 0);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->result_int(), 204);
  EXPECT_EQ(header(*answer, http::field::access_control_allow_origin), kPage);
  EXPECT_EQ(header(*answer, http::field::access_control_allow_methods), "POST");
  EXPECT_EQ(std::string((*answer)["Access-Control-Allow-Private-Network"]), "true");
  EXPECT_EQ(header(*answer, http::field::cache_control), "no-store");
  EXPECT_TRUE(answer->keep_alive());
}

TEST(ScsScreen, SignNeedsPostAnOriginAndJsonAndRoomToWait) {
  const Options o = options();
  const Screen screen(o);
  const auto status = [&](const Request& r, std::size_t pending) {
    const auto answer = screen.headers(r, pending);
    return answer ? answer->result_int() : 0;
  };
  EXPECT_EQ(status(request(http::verb::get, "/sign"), 0), 405);
  EXPECT_EQ(status(request(http::verb::post, "/elsewhere"), 0), 404);
  EXPECT_EQ(status(request(http::verb::post, "/sign", ""), 0), 403);
  Request plain = request(http::verb::post, "/sign");
  plain.set(http::field::content_type, "text/plain");  // a "simple" request, no preflight
  EXPECT_EQ(status(plain, 0), 415);
  const Request json = sign_request(Json::object());
  EXPECT_EQ(status(json, o.max_pending_signatures), 503);
  EXPECT_EQ(status(json, 0), 0);  // its body may be read
  // /version answers any page on the loopback, a query string aside.
  EXPECT_EQ(status(request(http::verb::get, "/version?x=1", ""), 0), 200);
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

  Request deep = sign_request(Json::object());
  deep.body() = std::string(40, '[') + std::string(40, ']');
  read = screen.body(deep);
  ASSERT_TRUE(std::holds_alternative<Response>(read));
  EXPECT_NE(reason_text(std::get<Response>(read)).find("nests deeper"), std::string::npos);
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
