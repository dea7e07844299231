// A certificate checked against a large CRL: korttid's CrlClient::check with
// the CRL kept from an earlier check, against OpenSSL's own lookup of the
// certificate in the same CRL already in memory (the least a check can
// cost), and against reading and verifying the CRL once (what a check costs
// that keeps nothing), in the same run.
//
// The CRL is the test CA's (hc-rsa), signed with its key, listing N serials
// that are not the certificate's: a "good" answer, which must look through
// the whole list. DVV's CRLs list tens of thousands of certificates.
//
//   KORTTI_BENCH_CRL_ENTRIES (default 100000), KORTTI_BENCH_CRL_CHECKS (2000)

#include <openssl/err.h>
#include <openssl/pem.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "bench/timing.hpp"
#include "policy/revocation.hpp"
#include "tests/support/support.hpp"

namespace {

using namespace kortti;
using namespace kortti::bench;
namespace fs = std::filesystem;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::max(1, std::atoi(v)) : fallback;
}

X509CrlPtr read_crl(const fs::path& file) {
  BioPtr bio(BIO_new_file(file.c_str(), "r"));
  return X509CrlPtr(bio ? PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr) : nullptr);
}

// The issuer's CRL of `entries` serials (none the leaf's), valid for a day.
void write_crl(const fs::path& file, X509* issuer, EVP_PKEY* key, int entries) {
  const X509CrlPtr crl(X509_CRL_new());
  X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2);
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(issuer));
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  const Asn1TimePtr last(ASN1_TIME_set(nullptr, now - 3600));
  const Asn1TimePtr next(ASN1_TIME_set(nullptr, now + 86400));
  X509_CRL_set1_lastUpdate(crl.get(), last.get());
  X509_CRL_set1_nextUpdate(crl.get(), next.get());
  for (int i = 0; i < entries; ++i) {
    X509_REVOKED* entry = X509_REVOKED_new();
    const Asn1IntegerPtr serial(ASN1_INTEGER_new());
    // Serials of 64 bits, as CAs give them, far from the leaf's.
    ASN1_INTEGER_set_uint64(serial.get(), 0x7000000000000000ULL + static_cast<std::uint64_t>(i) * 7919);
    X509_REVOKED_set_serialNumber(entry, serial.get());
    X509_REVOKED_set_revocationDate(entry, last.get());
    X509_CRL_add0_revoked(crl.get(), entry);
  }
  X509_CRL_sort(crl.get());
  if (X509_CRL_sign(crl.get(), key, EVP_sha256()) <= 0) throw std::runtime_error("cannot sign the CRL");
  BioPtr out(BIO_new_file(file.c_str(), "w"));
  if (!out || PEM_write_bio_X509_CRL(out.get(), crl.get()) != 1) throw std::runtime_error("cannot write the CRL");
}

}  // namespace

int main() {
  const int entries = env_int("KORTTI_BENCH_CRL_ENTRIES", 100000);
  const int checks = env_int("KORTTI_BENCH_CRL_CHECKS", 2000);
  const fs::path pki = test::pki_dir();
  const X509Ptr leaf = test::read_pem_certificate(pki / "people" / "physician" / "sign.pem");
  const X509Ptr issuer = test::read_pem_certificate(pki / "ca" / "hc-rsa.pem");
  const EvpPkeyPtr key = test::read_pem_key(pki / "ca" / "hc-rsa.key");
  if (!leaf || !issuer || !key) {
    std::fprintf(stderr, "the test PKI is missing under %s\n", pki.c_str());
    return 1;
  }
  test::TempDir dir;
  const fs::path file = dir / "hc-rsa.crl.pem";
  write_crl(file, issuer.get(), key.get(), entries);

  policy::RevocationOptions options;
  options.ocsp = false;
  options.crl_fetch = false;
  options.crl_files = {file.string()};
  policy::CrlClient client(options);
  const auto check = [&] {
    std::string why_not;
    const auto a =
        client.check(leaf.get(), issuer.get(), std::chrono::system_clock::now(), std::chrono::seconds(0), why_not);
    if (!a || a->status != "good") throw std::runtime_error("the check did not say good: " + why_not);
  };
  const auto first_start = Clock::now();
  check();
  const double first_us = us_since(first_start);

  const X509CrlPtr in_memory = read_crl(file);
  X509_REVOKED* none = nullptr;
  (void)X509_CRL_get0_by_cert(in_memory.get(), &none, leaf.get());  // sorted once, as korttid's

  // Interleaved, so neither side always finds the caches warm.
  std::vector<double> korttid, lookup, read_once;
  for (int i = 0; i < checks; ++i) {
    auto start = Clock::now();
    check();
    korttid.push_back(us_since(start));
    start = Clock::now();
    X509_REVOKED* found = nullptr;
    if (X509_CRL_get0_by_cert(in_memory.get(), &found, leaf.get()) != 0) throw std::runtime_error("listed");
    lookup.push_back(us_since(start));
    if (i % 100 == 0) {
      start = Clock::now();
      const X509CrlPtr fresh = read_crl(file);
      if (!fresh || X509_CRL_verify(fresh.get(), X509_get0_pubkey(issuer.get())) != 1)
        throw std::runtime_error("the CRL does not verify");
      X509_REVOKED* listed = nullptr;
      (void)X509_CRL_get0_by_cert(fresh.get(), &listed, leaf.get());
      read_once.push_back(us_since(start));
    }
  }
  ERR_clear_error();

  const double k = median(korttid);
  const double l = median(lookup);
  const double r = median(read_once);
  std::printf("\nA certificate against a CRL of %d entries (%ju bytes), median of %d checks; same run\n\n", entries,
              static_cast<std::uintmax_t>(fs::file_size(file)), checks);
  std::printf("%-58s %12s %10s\n", "", "us", "ratio");
  std::printf("%-58s %12.1f %10s\n", "OpenSSL's lookup in the CRL in memory (the least)", l, "1");
  std::printf("%-58s %12.1f %9.1fx\n", "korttid CrlClient::check, the CRL kept", k, l > 0 ? k / l : 0);
  std::printf("%-58s %12.1f %9.1fx\n", "OpenSSL reading, verifying and looking up the file", r, l > 0 ? r / l : 0);
  std::printf("%-58s %12.1f %9.1fx\n", "korttid's first check (reads, verifies, keeps)", first_us,
              l > 0 ? first_us / l : 0);
  std::printf("\nkept check / reading once: %.4f (goal: a kept CRL costs a check well under 1%% of reading it)\n",
              r > 0 ? k / r : 0);
  return 0;
}
