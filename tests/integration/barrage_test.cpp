// A black-box barrage: for a bounded time, attackers send malformed, hostile
// and oversized requests of every kind over the socket while a well-behaved
// client calls system.hello every 100 ms. korttid must not die, must answer
// every request as protocol.md says, must keep the good client's latency
// low and its own memory bounded.
//
// KORTTI_BARRAGE_S sets the duration (default 20 s); KORTTI_BARRAGE_SEED the
// random seed (printed, so a failure can be replayed);
// KORTTI_BARRAGE_P99_MS the good client's p99 bound (default 50 ms);
// KORTTI_BARRAGE_RSS_KIB korttid's allowed RSS growth (default 128 MiB).

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "tests/integration/softhsm_fixture.hpp"

namespace kortti::test {
namespace {

long env_long(const char* name, long fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtol(v, nullptr, 10) : fallback;
}

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// The error codes of protocol.md, with their reasons.
const std::map<int, std::string>& protocol_errors() {
  static const std::map<int, std::string> codes = {
      {-32700, "parse_error"},       {-32600, "invalid_request"},  {-32601, "method_not_found"},
      {-32602, "invalid_params"},    {-32603, "internal_error"},   {1001, "reader_not_found"},
      {1002, "token_not_found"},     {1003, "not_found"},          {1010, "pin_required"},
      {1011, "pin_incorrect"},       {1012, "pin_locked"},         {1013, "pin_entry_cancelled"},
      {1020, "card_removed"},        {1021, "token_busy"},         {1030, "policy_denied"},
      {1031, "certificate_invalid"}, {1040, "permission_denied"},  {1050, "unsupported"},
      {1051, "document_invalid"},    {1060, "service_unavailable"}};
  return codes;
}

// What one attacker thread saw.
struct Tally {
  std::uint64_t sent = 0;
  std::uint64_t answered = 0;
  std::uint64_t closed_by_daemon = 0;
  std::map<int, std::uint64_t> codes;
  std::vector<std::string> violations;
};

class Attacker {
 public:
  Attacker(const std::string& socket, std::string cert_id, std::string token_id, std::uint64_t seed)
      : socket_(socket), cert_id_(std::move(cert_id)), token_id_(std::move(token_id)), rng_(seed) {}

  void run(const std::atomic<bool>& stop, uid_t uid, Tally& tally) {
    while (!stop) {
      try {
        auto c = connect_as(socket_, uid, uid);
        for (int i = 0; i < 20 && !stop; ++i)
          if (!one(*c, tally)) break;
      } catch (const std::runtime_error&) {
        // Refused at connect: try again.
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
  }

 private:
  std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }

  std::string junk(std::size_t n) {
    std::string s(n, '\0');
    for (auto& ch : s) ch = static_cast<char>(pick(256));
    return s;
  }

  Json random_value(int depth = 0) {
    switch (pick(depth > 2 ? 5 : 7)) {
      case 0:
        return nullptr;
      case 1:
        return static_cast<std::int64_t>(rng_()) - (1LL << 31);
      case 2:
        return pick(2) == 0;
      case 3:
        return wstr(std::string(pick(80), 'A'));
      case 4:
        return 1e300 * (pick(2) == 0 ? -1 : 1);
      case 5: {
        Json a = Json::array();
        for (std::size_t i = 0, n = pick(4); i < n; ++i) a.push_back(random_value(depth + 1));
        return a;
      }
      default: {
        Json o = Json::object();
        for (std::size_t i = 0, n = pick(4); i < n; ++i)
          o[wstr("k" + std::to_string(pick(9)))] = random_value(depth + 1);
        return o;
      }
    }
  }

  // A request line (and maybe raw bytes after it): malformed, hostile or
  // merely wrong. Returns whether an answer is due.
  std::string request(std::size_t& answers, bool& closes) {
    static const char* const kMethods[] = {"system.hello",     "system.status",      "readers.list",
                                           "tokens.list",      "certificates.list",  "session.login",
                                           "session.logout",   "sign.digest",        "sign.data",
                                           "sign.xml",         "sign.cms",           "sign.prescription",
                                           "sign.batch",       "verify.xml",         "verify.cms",
                                           "policy.check",     "registry.lookup",    "certificates.identity",
                                           "events.subscribe", "events.unsubscribe", "no.such.method"};
    static const char* const kKeys[] = {"cert_id",
                                        "token_id",
                                        "digest",
                                        "digest_algorithm",
                                        "data",
                                        "document",
                                        "profile",
                                        "content",
                                        "detached",
                                        "scheme",
                                        "pin",
                                        "pinpad",
                                        "items",
                                        "topics",
                                        "context",
                                        "action",
                                        "registration_number",
                                        "client",
                                        "cms",
                                        "final_try"};
    answers = 1;
    closes = false;
    const std::string id = std::to_string(++next_id_);
    switch (pick(12)) {
      case 0: {  // not JSON at all: one line, not blank
        std::string line = "#" + junk(pick(200));
        std::replace(line.begin(), line.end(), '\n', '?');
        return line + "\n";
      }
      case 1:  // JSON, but not a request
        return to_std(random_value().dump(-1, ' ', false, Json::error_handler_t::replace)) + "\n";
      case 2: {  // nested deeper than korttid takes
        closes = true;
        return std::string(40 + pick(2000), '[') + "\n";
      }
      case 3: {  // an attachment that is not UTF-8
        const std::string bytes = junk(1 + pick(64)) + "\xff";
        return R"({"jsonrpc":"2.0","id":)" + id + R"(,"method":"session.login","params":{"pin":"1234"},)" +
               R"("attachment":{"name":"token_id","bytes":)" + std::to_string(bytes.size()) + "}}\n" + bytes;
      }
      case 4: {  // an unusable attachment header
        closes = true;
        return R"({"jsonrpc":"2.0","id":)" + id +
               R"(,"method":"verify.xml","attachment":{"name":"document","bytes":-)" + std::to_string(pick(100)) +
               "}}\n";
      }
      case 5: {  // a hostile document to verify
        static const char* const kDocs[] = {
            "<!DOCTYPE a [<!ENTITY x \"xx\"><!ENTITY y \"&x;&x;&x;&x;\">]><a>&y;</a>",
            "<a xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:Signature><ds:SignedInfo/></ds:Signature></a>",
            "<ClinicalDocument xmlns=\"urn:hl7-org:v3\"><component/><component/></ClinicalDocument>",
            "<a><b Id=\"x\"/><c Id=\"x\"/></a>",
            "<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>",
            "<a>\xc3</a>"};
        Json params = {{"document", wstr(kDocs[pick(std::size(kDocs))])}};
        return to_std(Json{{"jsonrpc", "2.0"}, {"id", next_id_}, {"method", "verify.xml"}, {"params", params}}.dump(
                   -1, ' ', false, Json::error_handler_t::replace)) +
               "\n";
      }
      case 6: {  // a sign request with a wrong or no PIN, a bad digest
        Json params = {{"cert_id", wstr(pick(2) == 0 ? cert_id_ : cert_id_ + "x")},
                       {"digest_algorithm", pick(3) == 0 ? "md5" : "sha256"},
                       {"digest", wstr(base64_encode(Bytes(pick(40), 7)))}};
        if (pick(2) == 0) params["pin"] = wstr(std::to_string(100000 + pick(900000)));
        return to_std(
                   Json{{"jsonrpc", "2.0"}, {"id", next_id_}, {"method", "sign.digest"}, {"params", params}}.dump()) +
               "\n";
      }
      case 7: {  // a long client name cut inside a character, then an audited call
        const std::string name = std::string(pick(70), 'n') + "\xc3\xa4\xe2\x82\xac";
        answers = 2;
        return to_std(Json{{"jsonrpc", "2.0"},
                           {"id", next_id_},
                           {"method", "system.hello"},
                           {"params", {{"client", wstr(name)}}}}
                          .dump()) +
               "\n" + R"({"jsonrpc":"2.0","id":)" + id + R"(0,"method":"session.login","params":{"token_id":")" +
               token_id_ + R"(x","pin":"0000"}})" + "\n";
      }
      case 8: {  // an oversized but legal string
        Json params = {{"registration_number", wstr(std::string(20000 + pick(100000), '9'))},
                       {"action", "sign_prescription"}};
        return to_std(
                   Json{{"jsonrpc", "2.0"}, {"id", next_id_}, {"method", "policy.check"}, {"params", params}}.dump()) +
               "\n";
      }
      default: {  // any method, random params
        Json params = Json::object();
        for (std::size_t i = 0, n = pick(5); i < n; ++i) params[wstr(kKeys[pick(std::size(kKeys))])] = random_value();
        Json req = {{"jsonrpc", "2.0"}, {"id", next_id_}, {"method", kMethods[pick(std::size(kMethods))]}};
        if (pick(8) != 0) req["params"] = params;
        return to_std(req.dump(-1, ' ', false, Json::error_handler_t::replace)) + "\n";
      }
    }
  }

  // Sends one request and checks its answers. False when the connection is
  // over (the daemon closed it, as it must after some of them).
  bool one(client::Client& c, Tally& tally) {
    std::size_t expected = 1;
    bool closes = false;
    const std::string text = request(expected, closes);
    try {
      c.send_raw(text);
      ++tally.sent;
      for (std::size_t i = 0; i < expected; ++i) {
        const auto answer = c.receive(std::chrono::seconds(30));
        if (!answer) {
          tally.violations.push_back("no answer within 30 s to: " + printable(text, 120));
          return false;
        }
        ++tally.answered;
        check(*answer, text, tally);
        // A framing error, or a refused connection (1060 without an id), is
        // the last answer on the connection.
        if (answer->contains("error") && (closes || (*answer)["id"].is_null())) break;
      }
      if (closes) return false;
    } catch (const std::runtime_error&) {
      ++tally.closed_by_daemon;  // after a framing error, or a limit
      return false;
    }
    return true;
  }

  static void check(const Json& a, const std::string& request, Tally& tally) {
    auto bad = [&](const std::string& why) {
      tally.violations.push_back(why + ": " +
                                 printable(to_std(a.dump(-1, ' ', false, Json::error_handler_t::replace)), 200) +
                                 " for " + printable(request, 120));
    };
    if (!a.is_object() || a.value("jsonrpc", WipingString()) != "2.0") return bad("not a JSON-RPC 2.0 message");
    if (a.contains("method")) return;  // an event (subscribed by a random request)
    if (a.contains("result") == a.contains("error")) return bad("neither result nor error, or both");
    if (!a.contains("error")) return;
    const Json& e = a["error"];
    if (!e.contains("code") || !e["code"].is_number_integer() || !e.contains("message") || !e["message"].is_string())
      return bad("error without code and message");
    const int code = e["code"].get<int>();
    ++tally.codes[code];
    const auto known = protocol_errors().find(code);
    if (known == protocol_errors().end()) return bad("error code not in protocol.md");
    if (!e.contains("data") || e["data"].value("reason", WipingString()) != wstr(known->second))
      return bad("reason does not match the code");
    if (code == -32603 && !e["data"].contains("correlation_id")) return bad("internal_error without correlation_id");
    if (code == -32603) bad("internal_error (a bug in korttid)");
  }

  std::string socket_;
  std::string cert_id_;
  std::string token_id_;
  std::mt19937_64 rng_;
  std::int64_t next_id_ = 0;
};

using Barrage = SoftHsmDaemonTest;

TEST_F(Barrage, NoInputKillsOrStallsKorttid) {
  const auto duration = std::chrono::seconds(env_long("KORTTI_BARRAGE_S", 20));
  const auto seed = static_cast<std::uint64_t>(env_long("KORTTI_BARRAGE_SEED", std::random_device{}()));
  const long p99_bound_ms = env_long("KORTTI_BARRAGE_P99_MS", 50);
  // ASan's quarantine keeps freed memory on purpose: its run sets a bound of its own.
  const long rss_bound_kib = env_long("KORTTI_BARRAGE_RSS_KIB", 128 * 1024);
  std::cout << "barrage: " << duration.count() << " s, seed " << seed << "\n";
  // Each attacker thread is another uid, as on a shared workstation.
  const long rss_before = rss_kib(daemon_->pid());

  std::atomic<bool> stop{false};
  constexpr int kAttackers = 3;
  std::vector<Tally> tallies(kAttackers);
  std::vector<std::thread> attackers;
  for (int i = 0; i < kAttackers; ++i)
    attackers.emplace_back([&, i] {
      Attacker(daemon_->socket(), rsa_sign_cert(), token_ids_.at("cardA"), seed + static_cast<std::uint64_t>(i))
          .run(stop, static_cast<uid_t>(2000 + i), tallies[static_cast<std::size_t>(i)]);
    });

  // The good client: one connection, system.hello every 100 ms.
  std::vector<double> latencies_ms;
  std::uint64_t good_failures = 0;
  {
    auto good = daemon_->connect();
    good->call("system.hello", {{"client", "good"}});
    const auto end = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < end) {
      const auto t0 = std::chrono::steady_clock::now();
      try {
        if (good->call("system.hello", Json::object(), std::chrono::seconds(10))["daemon"] != "korttid")
          ++good_failures;
      } catch (const std::exception&) {
        ++good_failures;
        good = daemon_->connect();
      }
      latencies_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  stop = true;
  for (auto& t : attackers) t.join();

  Tally all;
  for (auto& t : tallies) {
    all.sent += t.sent;
    all.answered += t.answered;
    all.closed_by_daemon += t.closed_by_daemon;
    for (auto [code, n] : t.codes) all.codes[code] += n;
    all.violations.insert(all.violations.end(), t.violations.begin(), t.violations.end());
  }
  ASSERT_FALSE(latencies_ms.empty());
  std::sort(latencies_ms.begin(), latencies_ms.end());
  const double p50 = latencies_ms[latencies_ms.size() / 2];
  const double p99 = latencies_ms[std::min(latencies_ms.size() - 1, latencies_ms.size() * 99 / 100)];
  const long rss_after = rss_kib(daemon_->pid());
  std::cout << "barrage: " << all.sent << " requests sent, " << all.answered << " answers, " << all.closed_by_daemon
            << " connections closed by korttid; good client " << latencies_ms.size() << " calls, p50 " << p50
            << " ms, p99 " << p99 << " ms; RSS " << rss_before << " -> " << rss_after << " KiB\n  error codes:";
  for (auto [code, n] : all.codes) std::cout << " " << code << "x" << n;
  std::cout << "\n";

  EXPECT_TRUE(daemon_->running()) << "korttid died under the barrage";
  EXPECT_GT(all.sent, 100U) << "the barrage hardly ran";
  for (std::size_t i = 0; i < std::min<std::size_t>(all.violations.size(), 10); ++i) ADD_FAILURE() << all.violations[i];
  EXPECT_EQ(all.violations.size(), 0U);
  EXPECT_EQ(good_failures, 0U);
  EXPECT_LT(p99, static_cast<double>(p99_bound_ms)) << "the good client's p99";
  EXPECT_LT(rss_after - rss_before, rss_bound_kib) << "RSS grew by " << (rss_after - rss_before) << " KiB";
}

}  // namespace
}  // namespace kortti::test
