#include <gtest/gtest.h>

#include "common/result.hpp"
#include "ipc/jsonrpc.hpp"

namespace kortti::ipc {
namespace {

constexpr std::size_t kMaxAttachment = 1024;

std::variant<Request, Json> parse(std::string_view line) { return parse_request(line, kMaxAttachment).message; }

int code_of(const std::variant<Request, Json>& parsed) {
  const Json* error = std::get_if<Json>(&parsed);
  if (error == nullptr) return 0;
  return (*error)["error"]["code"].get<int>();
}

Json id_of(const std::variant<Request, Json>& parsed) { return std::get<Json>(parsed)["id"]; }

std::string str_of(const Json& j) { return to_std(j.get_ref<const WipingString&>()); }

TEST(JsonRpc, AcceptsAWellFormedRequest) {
  auto parsed = parse(R"({"jsonrpc":"2.0","id":7,"method":"system.hello","params":{"client":"x"}})");
  ASSERT_TRUE(std::holds_alternative<Request>(parsed));
  const auto& r = std::get<Request>(parsed);
  EXPECT_EQ(r.id, 7);
  EXPECT_EQ(r.method, "system.hello");
  EXPECT_EQ(r.params["client"], "x");
}

TEST(JsonRpc, StringIdsAndMissingParamsAreFine) {
  auto parsed = parse(R"({"jsonrpc":"2.0","id":"abc","method":"tokens.list"})");
  ASSERT_TRUE(std::holds_alternative<Request>(parsed));
  EXPECT_TRUE(std::get<Request>(parsed).params.is_object());
}

TEST(JsonRpc, NotJsonIsAParseError) {
  EXPECT_EQ(code_of(parse("{not json")), -32700);
  EXPECT_EQ(code_of(parse("\xff\xfe")), -32700);
  EXPECT_TRUE(id_of(parse("{")).is_null());
}

TEST(JsonRpc, NotARequestIsInvalidRequest) {
  EXPECT_EQ(code_of(parse("[1,2]")), -32600);
  EXPECT_EQ(code_of(parse("42")), -32600);
  EXPECT_EQ(code_of(parse(R"({"id":1,"method":"x"})")), -32600);
  EXPECT_EQ(code_of(parse(R"({"jsonrpc":"1.0","id":1,"method":"x"})")), -32600);
  EXPECT_EQ(code_of(parse(R"({"jsonrpc":"2.0","method":"x"})")), -32600);
  EXPECT_EQ(code_of(parse(R"({"jsonrpc":"2.0","id":1.5,"method":"x"})")), -32600);
  EXPECT_EQ(code_of(parse(R"({"jsonrpc":"2.0","id":{},"method":"x"})")), -32600);
  EXPECT_EQ(code_of(parse(R"({"jsonrpc":"2.0","id":1,"method":""})")), -32600);
  EXPECT_EQ(code_of(parse(R"({"jsonrpc":"2.0","id":1,"method":5})")), -32600);
  EXPECT_EQ(code_of(parse(R"({"jsonrpc":"2.0","id":1,"method":"x","params":[1]})")), -32600);
}

TEST(JsonRpc, InvalidRequestKeepsAReadableId) {
  EXPECT_EQ(id_of(parse(R"({"jsonrpc":"2.0","id":9,"method":"x","params":"p"})")), 9);
  EXPECT_TRUE(id_of(parse(R"({"jsonrpc":"2.0","id":[9],"method":"x"})")).is_null());
}

// An answer repeats the id and, in some errors, a name the client sent: a
// 16 MiB id or name made a 16 MiB answer, held for a client that need not
// read it.
TEST(JsonRpc, LongIdsAreRefusedAndLongNamesAreCutInAnswers) {
  const std::string id(kMaxIdBytes, 'i');
  EXPECT_TRUE(std::holds_alternative<Request>(parse(R"({"jsonrpc":"2.0","id":")" + id + R"(","method":"x"})")));
  const auto too_long = parse(R"({"jsonrpc":"2.0","id":")" + id + R"(i","method":"x"})");
  EXPECT_EQ(code_of(too_long), -32600);
  EXPECT_TRUE(id_of(too_long).is_null());

  EXPECT_EQ(echo("tokens.list"), "tokens.list");
  const std::string name = std::string(63, 'm') + "\xc3\xa4" + std::string(1 << 20, 'm');
  EXPECT_EQ(echo(name), std::string(63, 'm') + "...") << "cut before the character the limit splits";
  const auto both = parse(R"({"jsonrpc":"2.0","id":1,"method":"x","attachment":{"name":")" + name +
                          R"(","bytes":1},"params":{")" + name + R"(":1}})");
  EXPECT_EQ(code_of(both), -32600);
  EXPECT_LT(std::get<Json>(both).dump().size(), 512U);
}

TEST(JsonRpc, AnAttachmentNamesAParamsMemberAndItsLength) {
  auto in = parse_request(R"({"jsonrpc":"2.0","id":1,"method":"sign.xml","params":{"profile":"enveloped"},)"
                          R"("attachment":{"name":"document","bytes":1024}})",
                          kMaxAttachment);
  ASSERT_TRUE(std::holds_alternative<Request>(in.message));
  EXPECT_EQ(std::get<Request>(in.message).attachment, "document");
  EXPECT_EQ(in.attachment_bytes, 1024U);
  EXPECT_FALSE(in.framing_lost);
  // Without one, nothing follows the line.
  auto plain = parse_request(R"({"jsonrpc":"2.0","id":1,"method":"x"})", kMaxAttachment);
  EXPECT_TRUE(std::get<Request>(plain.message).attachment.empty());
  EXPECT_EQ(plain.attachment_bytes, 0U);
}

TEST(JsonRpc, AnUnusableAttachmentHeaderLosesTheFraming) {
  for (const char* header : {R"("x")", R"({"name":"document"})", R"({"bytes":5})", R"({"name":"","bytes":5})",
                             R"({"name":7,"bytes":5})", R"({"name":"d","bytes":-1})", R"({"name":"d","bytes":1.5})",
                             R"({"name":"d","bytes":"5"})", R"({"name":"d","bytes":1025})"}) {
    auto in = parse_request(std::string(R"({"jsonrpc":"2.0","id":4,"method":"x","attachment":)") + header + "}",
                            kMaxAttachment);
    EXPECT_TRUE(in.framing_lost) << header;
    EXPECT_EQ(code_of(in.message), -32600) << header;
    EXPECT_EQ(id_of(in.message), 4) << header;
  }
  auto over =
      parse_request(R"({"jsonrpc":"2.0","id":4,"method":"x","attachment":{"name":"d","bytes":1025}})", kMaxAttachment);
  EXPECT_NE(str_of(std::get<Json>(over.message)["error"]["message"]).find("limit of 1024"), std::string::npos);
}

TEST(JsonRpc, AnInvalidRequestWithAnAttachmentStillSaysHowManyBytesToSkip) {
  for (const char* line : {R"({"jsonrpc":"1.0","id":1,"method":"x","attachment":{"name":"d","bytes":9}})",
                           R"({"jsonrpc":"2.0","id":1,"method":"x","params":[],"attachment":{"name":"d","bytes":9}})",
                           R"({"jsonrpc":"2.0","id":1,"method":"x","params":{"d":"twice"},)"
                           R"("attachment":{"name":"d","bytes":9}})"}) {
    auto in = parse_request(line, kMaxAttachment);
    EXPECT_EQ(code_of(in.message), -32600) << line;
    EXPECT_EQ(in.attachment_bytes, 9U) << line;
    EXPECT_FALSE(in.framing_lost) << line;
  }
}

TEST(JsonRpc, ErrorObjectsCarryReasonAndDetails) {
  Error e(Errc::pin_incorrect, "the PIN is incorrect");
  e.tries_left = 2;
  e.detail = "C_Login: CKR_PIN_INCORRECT";
  e.correlation_id = "abc123";
  const Json j = make_error(3, e);
  EXPECT_EQ(j["jsonrpc"], "2.0");
  EXPECT_EQ(j["id"], 3);
  EXPECT_EQ(j["error"]["code"], 1011);
  EXPECT_EQ(j["error"]["message"], "the PIN is incorrect");
  EXPECT_EQ(j["error"]["data"]["reason"], "pin_incorrect");
  EXPECT_EQ(j["error"]["data"]["tries_left"], 2);
  EXPECT_EQ(j["error"]["data"]["correlation_id"], "abc123");
}

// A bug's text stays in the log; the client gets the id that finds it there.
TEST(JsonRpc, InternalErrorsCarryACorrelationIdAndNoInternalText) {
  const Error e = internal_error("sign.xml", "std::bad_variant_access at xml_sign.cpp:42");
  EXPECT_EQ(e.code(), Errc::internal_error);
  ASSERT_EQ(e.correlation_id.size(), 12U);
  const Json j = make_error(7, e);
  EXPECT_EQ(j["error"]["data"]["correlation_id"], wstr(e.correlation_id));
  const std::string text = to_std(j.dump());
  EXPECT_EQ(text.find("bad_variant_access"), std::string::npos) << text;
  EXPECT_NE(text.find(e.correlation_id), std::string::npos) << text;
}

TEST(JsonRpc, CaptureTurnsAnyExceptionIntoALoggedInternalError) {
  const Result<int> r = capture([]() -> int { throw std::out_of_range("vector::_M_range_check: secret detail"); });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::internal_error);
  EXPECT_FALSE(r.error().correlation_id.empty());
  EXPECT_EQ(std::string(r.error().what()).find("secret detail"), std::string::npos);
  const Result<int> unknown = capture([]() -> int { throw 42; });
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), Errc::internal_error);
}

TEST(JsonRpc, EventsHaveNoId) {
  const Json j = make_event("card", {{"type", "inserted"}});
  EXPECT_FALSE(j.contains("id"));
  EXPECT_EQ(j["method"], "event");
  EXPECT_EQ(j["params"]["topic"], "card");
}

}  // namespace
}  // namespace kortti::ipc
