// The revocation caches are bounded: what has expired goes, a full cache
// gives up the entry that expires first, and a CRL file read again after a
// change replaces what it said before.

#include <gtest/gtest.h>
#include <openssl/pem.h>

#include "policy/revocation.hpp"
#include "tests/support/support.hpp"

namespace kortti::test {
namespace {

using namespace std::chrono_literals;

TEST(RevocationCache, MakingRoomDropsTheExpiredThenTheFirstToExpire) {
  const SystemTime now = std::chrono::system_clock::now();
  std::map<std::string, SystemTime> cache{{"gone", now - 1s}, {"soon", now + 1min}, {"late", now + 1h}};
  auto until = [](SystemTime t) { return t; };
  policy::make_room(cache, 3, now, until);
  EXPECT_EQ(cache.size(), 2U);
  EXPECT_EQ(cache.count("gone"), 0U);
  policy::make_room(cache, 2, now, until);
  ASSERT_EQ(cache.size(), 1U);
  EXPECT_EQ(cache.count("late"), 1U) << "the entry that expires first made room";
  policy::make_room(cache, 0, now, until);
  EXPECT_TRUE(cache.empty()) << "a bound of nothing holds nothing";
}

TEST(RevocationCache, ACrlFileReadAgainReplacesWhatItSaidBefore) {
  TempDir dir;
  const fs::path crl = dir / "crl.pem";
  fs::copy_file(pki_dir() / "ca" / "hc-rsa" / "crl.pem", crl);
  policy::RevocationOptions options;
  options.ocsp = false;
  options.crl_fetch = false;
  options.crl_files = {crl.string()};
  policy::CrlClient client(options);
  const X509Ptr leaf = read_pem_certificate(pki_dir() / "people" / "physician" / "sign.pem");
  const X509Ptr issuer = read_pem_certificate(pki_dir() / "intermediates" / "hc-rsa.pem");
  ASSERT_TRUE(leaf && issuer);
  const auto written = fs::last_write_time(crl);
  for (int i = 0; i < 5; ++i) {
    // As a cron job that fetches the CRL would leave it: the same path, a new mtime.
    fs::last_write_time(crl, written + std::chrono::seconds(i));
    std::string why_not;
    const auto answer = client.check(leaf.get(), issuer.get(), std::chrono::system_clock::now(), 0s, why_not);
    ASSERT_TRUE(answer.has_value()) << why_not;
    EXPECT_EQ(answer->status, "good");
    EXPECT_FALSE(answer->cached) << "a changed file is read again";
  }
  EXPECT_EQ(client.cached(), 1U) << "each of the file's earlier contents still held";
}

}  // namespace
}  // namespace kortti::test
