#pragma once

// A SoftHSM2 token for the benchmarks: label "bench", one self-signed key
// and certificate per entry, left beside it for the baselines that sign
// without a token (DIR/ID.key, DIR/ID.pem, DIR/ID.der).

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/support.hpp"

namespace kortti::bench {

// `keys`: CKA_ID (hex) and the `openssl req` -newkey arguments.
inline void make_token(const std::filesystem::path& dir, const std::vector<std::pair<std::string, std::string>>& keys) {
  auto sh = [&](const std::string& cmd) {
    auto r = test::run(
        {"sh", "-c", cmd},
        {{"BENCH_PIN", test::kPin}, {"BENCH_SO", test::kSoPin}, {"SOFTHSM2_CONF", (dir / "softhsm2.conf").string()}});
    if (r.status != 0) throw std::runtime_error(cmd + ": " + r.err);
  };
  std::filesystem::create_directories(dir / "tokens");
  test::write_file(dir / "softhsm2.conf", "directories.tokendir = " + (dir / "tokens").string() +
                                              "\nobjectstore.backend = file\nlog.level = ERROR\n");
  const std::string m = "pkcs11-tool --module " + std::string(test::SoftHsm::kModule) + " ";
  sh(m + "--slot-index 0 --init-token --label bench --so-pin env:BENCH_SO >/dev/null");
  sh(m + "--token-label bench --init-pin --so-pin env:BENCH_SO --pin env:BENCH_PIN >/dev/null");
  for (const auto& [id, newkey] : keys) {
    const std::string base = (dir / id).string();
    sh("openssl req -x509 " + newkey + " -nodes -keyout " + base + ".key -out " + base + ".pem -subj /CN=bench" + id +
       " -days 2 2>/dev/null && openssl pkcs8 -topk8 -nocrypt -in " + base + ".key -out " + base +
       ".p8 && openssl x509 -in " + base + ".pem -outform DER -out " + base + ".der");
    sh(m + "--token-label bench --login --pin env:BENCH_PIN --write-object " + base + ".p8 --type privkey --id " + id +
       " --usage-sign >/dev/null");
    sh(m + "--token-label bench --login --pin env:BENCH_PIN --write-object " + base + ".pem --type cert --id " + id +
       " >/dev/null");
  }
}

}  // namespace kortti::bench
