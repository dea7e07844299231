#include <gtest/gtest.h>

#include "ipc/jsonrpc.hpp"

namespace kortti::ipc {
namespace {

int code_of(const std::variant<Request, Json>& parsed) {
  const Json* error = std::get_if<Json>(&parsed);
  if (error == nullptr) return 0;
  return (*error)["error"]["code"].get<int>();
}

Json id_of(const std::variant<Request, Json>& parsed) { return std::get<Json>(parsed)["id"]; }

TEST(JsonRpc, AcceptsAWellFormedRequest) {
  auto parsed = parse_request(R"({"jsonrpc":"2.0","id":7,"method":"system.hello","params":{"client":"x"}})");
  ASSERT_TRUE(std::holds_alternative<Request>(parsed));
  const auto& r = std::get<Request>(parsed);
  EXPECT_EQ(r.id, 7);
  EXPECT_EQ(r.method, "system.hello");
  EXPECT_EQ(r.params["client"], "x");
}

TEST(JsonRpc, StringIdsAndMissingParamsAreFine) {
  auto parsed = parse_request(R"({"jsonrpc":"2.0","id":"abc","method":"tokens.list"})");
  ASSERT_TRUE(std::holds_alternative<Request>(parsed));
  EXPECT_TRUE(std::get<Request>(parsed).params.is_object());
}

TEST(JsonRpc, NotJsonIsAParseError) {
  EXPECT_EQ(code_of(parse_request("{not json")), -32700);
  EXPECT_EQ(code_of(parse_request("\xff\xfe")), -32700);
  EXPECT_TRUE(id_of(parse_request("{")).is_null());
}

TEST(JsonRpc, NotARequestIsInvalidRequest) {
  EXPECT_EQ(code_of(parse_request("[1,2]")), -32600);
  EXPECT_EQ(code_of(parse_request("42")), -32600);
  EXPECT_EQ(code_of(parse_request(R"({"id":1,"method":"x"})")), -32600);
  EXPECT_EQ(code_of(parse_request(R"({"jsonrpc":"1.0","id":1,"method":"x"})")), -32600);
  EXPECT_EQ(code_of(parse_request(R"({"jsonrpc":"2.0","method":"x"})")), -32600);
  EXPECT_EQ(code_of(parse_request(R"({"jsonrpc":"2.0","id":1.5,"method":"x"})")), -32600);
  EXPECT_EQ(code_of(parse_request(R"({"jsonrpc":"2.0","id":{},"method":"x"})")), -32600);
  EXPECT_EQ(code_of(parse_request(R"({"jsonrpc":"2.0","id":1,"method":""})")), -32600);
  EXPECT_EQ(code_of(parse_request(R"({"jsonrpc":"2.0","id":1,"method":5})")), -32600);
  EXPECT_EQ(code_of(parse_request(R"({"jsonrpc":"2.0","id":1,"method":"x","params":[1]})")), -32600);
}

TEST(JsonRpc, InvalidRequestKeepsAReadableId) {
  EXPECT_EQ(id_of(parse_request(R"({"jsonrpc":"2.0","id":9,"method":"x","params":"p"})")), 9);
  EXPECT_TRUE(id_of(parse_request(R"({"jsonrpc":"2.0","id":[9],"method":"x"})")).is_null());
}

TEST(JsonRpc, ErrorObjectsCarryReasonAndDetails) {
  Error e(Errc::pin_incorrect, "the PIN is incorrect");
  e.tries_left = 2;
  e.detail = "C_Login: CKR_PIN_INCORRECT";
  const Json j = make_error(3, e, "abc123");
  EXPECT_EQ(j["jsonrpc"], "2.0");
  EXPECT_EQ(j["id"], 3);
  EXPECT_EQ(j["error"]["code"], 1011);
  EXPECT_EQ(j["error"]["message"], "the PIN is incorrect");
  EXPECT_EQ(j["error"]["data"]["reason"], "pin_incorrect");
  EXPECT_EQ(j["error"]["data"]["tries_left"], 2);
  EXPECT_EQ(j["error"]["data"]["correlation_id"], "abc123");
}

TEST(JsonRpc, EventsHaveNoId) {
  const Json j = make_event("card", {{"type", "inserted"}});
  EXPECT_FALSE(j.contains("id"));
  EXPECT_EQ(j["method"], "event");
  EXPECT_EQ(j["params"]["topic"], "card");
}

}  // namespace
}  // namespace kortti::ipc
