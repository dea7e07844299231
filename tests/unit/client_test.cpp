// The client library's reading of a refusal. The peer is a test double: a
// socket pair whose far end plays korttid refusing a connection, which the
// real daemon does only under conditions (a connection too many, a client
// still writing when the refusal's grace ends) that these pin down exactly.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <thread>

#include "client/client.hpp"

namespace kortti::client {
namespace {

constexpr const char* kRefusal =
    R"({"jsonrpc":"2.0","id":null,"error":{"code":1060,"message":"uid 1000 has 4 connections open, the most one )"
    R"(user may have; close one and retry","data":{"reason":"service_unavailable"}}})"
    "\n";

struct Pair {
  std::unique_ptr<Client> client;
  int daemon = -1;  // the far end
  Pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw std::runtime_error("socketpair");
    client = Client::adopt(fds[0]);
    daemon = fds[1];
  }
  ~Pair() { close_daemon(); }
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;
  void say(const std::string& text) const {
    ASSERT_EQ(::write(daemon, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }
  // Reads the client's request to its end (the client may write it in more
  // than one piece), as korttid does before it answers.
  void read_request() const {
    char c = 0;
    ssize_t n = 0;
    while ((n = ::read(daemon, &c, 1)) == 1 && c != '\n') {
    }
    EXPECT_EQ(n, 1) << "the request arrived whole";
  }
  void close_daemon() {
    if (daemon >= 0) ::close(daemon);
    daemon = -1;
  }
};

// What the call gets: its RpcError's code and message, or what else it threw.
std::string outcome_of(const std::function<void()>& call) {
  try {
    call();
    return "no error";
  } catch (const RpcError& e) {
    return std::to_string(e.code()) + " " + e.what();
  } catch (const std::exception& e) {
    return std::string("other: ") + e.what();
  }
}

// The request is sent; the refusal comes, then (a second later in korttid)
// the close.
TEST(ClientRefusal, ACallOnARefusedConnectionEndsWithTheRefusalNotJustTheClose) {
  Pair p;
  std::thread daemon([&] {
    p.read_request();
    p.say(kRefusal);
    p.close_daemon();
  });
  const std::string got = outcome_of([&] { (void)p.client->call("system.hello", Json::object()); });
  daemon.join();
  EXPECT_EQ(got.rfind("1060 uid 1000 has 4 connections open", 0), 0U) << got;
}

// korttid closed while the client was still writing a large request: the
// send fails (EPIPE), and what korttid said before closing is still read.
TEST(ClientRefusal, ASendThatFailsBecauseKorttidClosedStillReadsTheRefusal) {
  Pair p;
  p.say(kRefusal);
  p.close_daemon();
  const std::string got = outcome_of([&] {
    (void)p.client->call_attached("sign.data", {{"data", WipingString(4 << 20, 'x')}}, "data");
  });
  EXPECT_EQ(got.rfind("1060 uid 1000", 0), 0U) << got;
}

// korttid answers -32700 without an id (a line it could not parse), then
// the first call's answer; the call gets its own answer.
void hello_after_a_parse_error(const Pair& p) {
  p.say(R"({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}})"
        "\n"
        R"({"jsonrpc":"2.0","id":1,"result":{"daemon":"korttid"}})"
        "\n");
  EXPECT_EQ(p.client->call("system.hello", Json::object(), std::chrono::seconds(5))["daemon"], "korttid");
  p.read_request();  // the hello, answered ahead of time
}

// An error without an id that is not followed by a close (a line korttid
// could not parse) does not end the next call: its own answer does.
TEST(ClientRefusal, AnErrorWithoutAnIdOnAnOpenConnectionIsNotTheNextCallsAnswer) {
  Pair p;
  hello_after_a_parse_error(p);
}

// An earlier error without an id (a line korttid could not parse), then
// answers, then a close for another reason: the close is reported, not the
// old error.
TEST(ClientRefusal, AnOldErrorWithoutAnIdIsNotTakenForTheReasonOfALaterClose) {
  Pair p;
  hello_after_a_parse_error(p);
  std::thread daemon([&] {
    p.read_request();
    p.close_daemon();
  });
  const std::string got = outcome_of([&] { (void)p.client->call("system.status", Json::object()); });
  daemon.join();
  EXPECT_EQ(got, "other: korttid closed the connection");
}

// A close with nothing said is reported as a close.
TEST(ClientRefusal, ACloseWithoutARefusalIsReportedAsAClose) {
  Pair p;
  p.close_daemon();
  const std::string got = outcome_of([&] { (void)p.client->call("system.hello", Json::object()); });
  EXPECT_TRUE(got.find("other: ") == 0 &&
              (got.find("closed") != std::string::npos || got.find("Broken pipe") != std::string::npos))
      << got;
}

}  // namespace
}  // namespace kortti::client
