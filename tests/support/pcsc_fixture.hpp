#pragma once

#include <gtest/gtest.h>

#include <chrono>

#include "common/digest.hpp"
#include "common/encoding.hpp"
#include "tests/support/rpc_error.hpp"
#include "tests/support/support.hpp"

namespace kortti::test {

using Clock = std::chrono::steady_clock;

// korttid on OpenSC, through a private pcscd with two virtual readers.
class PcscDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override { start_daemon({}); }

  // OpenSC is always loaded; `also` adds other modules after it.
  void start_daemon(DaemonOptions options, std::vector<std::string> also = {}) {
    options.pcsc = true;
    options.modules = {kOpenScModule};
    options.modules.insert(options.modules.end(), also.begin(), also.end());
    for (const auto& [k, v] : pcscd_.env()) options.env[k] = v;
    // OpenSC's own file cache would outlive a test's throw-away cards.
    options.env["OPENSC_CONF"] = "/dev/null";
    for (const auto& [k, v] : extra_env_) options.env[k] = v;
    daemon_.reset();
    daemon_ = std::make_unique<Daemon>(std::move(options));
  }

  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "---- korttid log ----\n" << daemon_->log() << "---------------------\n";
  }

  // A client subscribed to every topic.
  std::unique_ptr<client::Client> watcher() {
    auto c = daemon_->connect();
    c->call("events.subscribe", {{"topics", Json::array({"reader", "card", "token", "session"})}});
    return c;
  }

  // The next event of `topic`/`type`; fails the test after `timeout`.
  // Events of other kinds that come first are passed over, and named if
  // the awaited one does not come (one that came too early is lost so).
  static Json expect_event(client::Client& c, const std::string& topic, const std::string& type,
                           std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    std::string passed;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) break;
      auto e = c.next_event(left);
      if (!e) break;
      const Json& p = (*e)["params"];
      if (p["topic"] == wstr(topic) && p["type"] == wstr(type)) return p;
      passed += "\n  " + p.dump();
    }
    ADD_FAILURE() << "no " << topic << " " << type << " event within " << timeout.count() << " ms"
                  << (passed.empty() ? "" : "; passed over:") << passed;
    return Json();
  }

  // Waits until tokens.list shows the token (insertions take a moment).
  void wait_for_token(const std::string& token_id, bool present = true) {
    auto c = daemon_->connect();
    for (int i = 0; i < 100; ++i) {
      bool found = false;
      for (const auto& t : c->call("tokens.list"))
        if (str(t["token_id"]) == token_id) found = true;
      if (found == present) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL() << "token " << token_id << (present ? " never appeared" : " never went away");
  }

  Json sign_params(const std::string& cert_id, const std::string& alg, Bytes& digest) {
    digest = random_bytes(digest_size(parse_digest_algorithm(alg).value()));
    return {{"cert_id", wstr(cert_id)},
            {"digest_algorithm", wstr(alg)},
            {"digest", wstr(base64_encode(digest))},
            {"pin", kPin}};
  }

  Pcscd pcscd_;
  std::map<std::string, std::string> extra_env_;
  std::unique_ptr<Daemon> daemon_;
};

}  // namespace kortti::test
