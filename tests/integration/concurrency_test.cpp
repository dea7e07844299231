// Many clients, pipelined requests, two tokens: every answer matches its
// request and every signature verifies.

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <atomic>
#include <thread>

#include "common/openssl.hpp"
#include "tests/integration/softhsm_fixture.hpp"

namespace kortti::test {
namespace {

using Concurrency = SoftHsmDaemonTest;

// OpenSSL (the library, not korttid) checks a signature over a digest.
bool verify(const Bytes& certificate, const Bytes& digest, const Bytes& signature, const EVP_MD* md) {
  X509Ptr cert = parse_certificate(certificate);
  if (!cert) return false;
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(X509_get0_pubkey(cert.get()), nullptr));
  if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1) return false;
  if (EVP_PKEY_CTX_set_signature_md(ctx.get(), md) != 1) return false;
  return EVP_PKEY_verify(ctx.get(), signature.data(), signature.size(), digest.data(), digest.size()) == 1;
}

TEST_F(Concurrency, PipelinedRequestsOnOneConnectionAreAnsweredById) {
  auto c = daemon_->connect();
  c->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}});
  std::map<std::int64_t, Bytes> digests;
  std::map<std::int64_t, std::string> methods;
  for (int i = 0; i < 60; ++i) {
    if (i % 3 == 0) {
      methods[c->send("tokens.list", Json::object())] = "tokens.list";
      continue;
    }
    Bytes d = random_bytes(32);
    const auto id = c->send(
        "sign.digest",
        {{"cert_id", wstr(rsa_auth_cert())}, {"digest_algorithm", "sha256"}, {"digest", wstr(base64_encode(d))}});
    digests[id] = d;
    methods[id] = "sign.digest";
  }
  std::set<std::int64_t> seen;
  while (seen.size() < methods.size()) {
    auto m = c->receive(std::chrono::seconds(30));
    ASSERT_TRUE(m.has_value());
    const auto id = (*m)["id"].get<std::int64_t>();
    ASSERT_TRUE(seen.insert(id).second) << "two answers for id " << id;
    const Json result = client::result_of(*m);
    if (methods[id] == "tokens.list") {
      EXPECT_TRUE(result.is_array());
    } else {
      EXPECT_TRUE(verify(b64(result["certificate"]), digests[id], b64(result["signature"]), EVP_sha256())) << id;
    }
  }
}

TEST_F(Concurrency, ThirtyTwoClientsTimesAHundredSignaturesAcrossTwoTokens) {
  // One uid with 32 clients: more than a user gets by default.
  DaemonOptions o;
  o.ipc = "max_connections_per_uid = 64\n";
  start(std::move(o));
  constexpr int kClients = 32;
  constexpr int kPerClient = 100;
  constexpr int kWindow = 4;  // requests each client keeps in flight
  {
    auto c = daemon_->connect();
    c->call("session.login", {{"token_id", wstr(token_ids_.at("cardA"))}, {"pin", kPin}});
  }
  std::atomic<int> verified{0};
  std::atomic<int> failures{0};
  std::vector<std::string> errors(kClients);
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      try {
        auto c = daemon_->connect();
        // Even clients use the RSA key in the session; odd ones the EC key
        // with its PIN each time (context-specific login).
        const bool rsa = t % 2 == 0;
        const std::string cert = rsa ? rsa_auth_cert() : ec_sign_cert();
        const std::string alg = rsa ? "sha256" : "sha384";
        std::map<std::int64_t, Bytes> pending;
        int sent = 0, done = 0;
        while (done < kPerClient) {
          while (sent < kPerClient && static_cast<int>(pending.size()) < kWindow) {
            Bytes d = random_bytes(rsa ? 32 : 48);
            Json p = {{"cert_id", wstr(cert)}, {"digest_algorithm", wstr(alg)}, {"digest", wstr(base64_encode(d))}};
            if (!rsa) p["pin"] = kPin;
            pending[c->send("sign.digest", p)] = std::move(d);
            ++sent;
          }
          auto m = c->receive(std::chrono::seconds(120));
          if (!m) throw std::runtime_error("timed out");
          const auto id = (*m)["id"].get<std::int64_t>();
          auto it = pending.find(id);
          if (it == pending.end()) throw std::runtime_error("answer for an id never sent or answered twice");
          const Json r = client::result_of(*m);
          if (verify(b64(r["certificate"]), it->second, b64(r["signature"]), rsa ? EVP_sha256() : EVP_sha384()))
            ++verified;
          else
            ++failures;
          pending.erase(it);
          ++done;
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
        ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kClients; ++t) EXPECT_TRUE(errors[t].empty()) << "client " << t << ": " << errors[t];
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(verified.load(), kClients * kPerClient);
  // A few of them once more with the openssl CLI as well.
  auto c = daemon_->connect();
  auto [answer, digest] = sign_digest(*c, ec_sign_cert(), "sha384");
  EXPECT_TRUE(openssl_verify_digest(b64(answer["certificate"]), digest, b64(answer["signature"]), "sha384", "ecdsa"));
  // The lines of 32 clients, written in groups: one chain, none missing
  // (the login, then begun and ok for each of 3,200 signatures and the last).
  ASSERT_EQ(daemon_->audit().size(), 2U * (kClients * kPerClient + 1) + 1);
  const auto chain = run({korttid_binary().string(), "audit", "verify", (daemon_->dir() / "audit.log").string()});
  EXPECT_EQ(chain.status, 0) << chain.out << chain.err;
  EXPECT_NE(chain.out.find("OK: " + std::to_string(2 * (kClients * kPerClient + 1) + 1) + " lines"), std::string::npos)
      << chain.out;
}

}  // namespace
}  // namespace kortti::test
