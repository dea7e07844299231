// Soak: many mixed requests against one korttid. After a warm-up its memory,
// descriptors and threads must stay where they were: nothing a request
// leaves behind may add up.
//
// KORTTI_SOAK_REQUESTS sets the count (default 100,000; the first tenth is
// the warm-up); KORTTI_SOAK_RSS_KIB the allowed RSS growth (default 1024).

#include <dirent.h>

#include <cstdlib>
#include <fstream>
#include <thread>

#include "tests/integration/softhsm_fixture.hpp"

namespace kortti::test {
namespace {

long env_long(const char* name, long fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtol(v, nullptr, 10) : fallback;
}

struct Footprint {
  long rss_kib = 0;
  std::size_t fds = 0;
  std::size_t threads = 0;
};

std::size_t entries(const std::string& dir) {
  std::size_t n = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}

Footprint footprint(pid_t pid) {
  Footprint f;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) f.rss_kib = std::stol(line.substr(6));
  f.fds = entries("/proc/" + std::to_string(pid) + "/fd");
  f.threads = entries("/proc/" + std::to_string(pid) + "/task");
  return f;
}

// Taken when nothing is in flight, and once two readings 50 ms apart agree:
// a request's tail (a registry lookup's file, an audit line) may hold a
// descriptor for a moment after its answer.
Footprint quiet_footprint(pid_t pid) {
  Footprint f = footprint(pid);
  for (int i = 0; i < 40; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const Footprint next = footprint(pid);
    if (next.fds == f.fds && next.threads == f.threads) return next;
    f = next;
  }
  return f;
}

using Soak = SoftHsmDaemonTest;

TEST_F(Soak, ManyMixedRequestsLeaveNothingBehind) {
  const long total = env_long("KORTTI_SOAK_REQUESTS", 100000);
  const long allowed_kib = env_long("KORTTI_SOAK_RSS_KIB", 1024);
  const long warmup = total / 10;
  ASSERT_GT(warmup, 0);

  auto session = daemon_->connect();
  session->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}});
  const std::string bad_document = "<a><b>unsigned</b></a>";

  // One request of the mix; what it is follows from its number.
  auto request = [&](long i) -> std::pair<std::string, Json> {
    switch (i % 8) {
      case 0:
        return {"sign.digest",
                {{"cert_id", wstr(rsa_auth_cert())},
                 {"digest_algorithm", "sha256"},
                 {"digest", wstr(base64_encode(random_bytes(32)))}}};
      case 1:
        return {"policy.check", {{"registration_number", "10000001"}, {"action", "sign_prescription"}}};
      case 2:
        return {"verify.xml", {{"document", wstr(bad_document)}}};
      case 3:
        return {"sign.digest",
                {{"cert_id", "no-such-token/01"},
                 {"digest_algorithm", "sha256"},
                 {"digest", wstr(base64_encode(Bytes(32, 1)))}}};
      case 4:
        return {"no.such.method", Json::object()};
      case 5:
        return {"system.status", Json::object()};
      default:
        return {"system.hello", {{"client", "soak"}}};
    }
  };
  constexpr int kWindow = 16;  // requests in flight on the connection
  Footprint after_warmup;
  long answered = 0;
  long errors_unexpected = 0;
  std::map<std::int64_t, std::string> pending;
  long sent = 0;
  bool measured = false;
  while (answered < total) {
    // The warm-up's footprint is taken with nothing in flight, as the end's is.
    const bool draining = !measured && sent >= warmup;
    if (draining && pending.empty()) {
      after_warmup = quiet_footprint(daemon_->pid());
      measured = true;
      continue;
    }
    while (!draining && sent < total && static_cast<int>(pending.size()) < kWindow) {
      auto [method, params] = request(sent);
      pending[session->send(method, std::move(params))] = method;
      ++sent;
    }
    const auto m = session->receive(std::chrono::seconds(60));
    ASSERT_TRUE(m.has_value()) << "no answer after " << answered;
    const auto it = pending.find((*m)["id"].get<std::int64_t>());
    ASSERT_NE(it, pending.end());
    if (m->contains("error")) {
      const int code = (*m)["error"]["code"].get<int>();
      // The mix's own errors: unknown token, unknown method, nothing imported, no signature.
      if (code != 1002 && code != -32601 && code != 1003 && code != 1051 && code != 1030) {
        ++errors_unexpected;
        ADD_FAILURE() << it->second << ": " << to_std(m->dump());
      }
    }
    pending.erase(it);
    ++answered;
    if (errors_unexpected > 5) break;
  }
  ASSERT_TRUE(measured);
  const Footprint end = quiet_footprint(daemon_->pid());
  std::cout << "soak: " << answered << " requests; after warm-up RSS " << after_warmup.rss_kib << " KiB, fds "
            << after_warmup.fds << ", threads " << after_warmup.threads << "; at the end RSS " << end.rss_kib
            << " KiB, fds " << end.fds << ", threads " << end.threads << "\n";
  EXPECT_EQ(errors_unexpected, 0);
  EXPECT_LE(end.rss_kib - after_warmup.rss_kib, allowed_kib);
  EXPECT_EQ(end.fds, after_warmup.fds);
  EXPECT_EQ(end.threads, after_warmup.threads);
}

}  // namespace
}  // namespace kortti::test
