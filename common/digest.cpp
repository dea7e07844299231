#include "common/digest.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdexcept>

#include "common/encoding.hpp"
#include "common/names.hpp"

namespace kortti {

namespace {

constexpr Named<DigestAlgorithm> kDigests[] = {
    {DigestAlgorithm::sha256, "sha256"}, {DigestAlgorithm::sha384, "sha384"}, {DigestAlgorithm::sha512, "sha512"}};

}  // namespace

std::optional<DigestAlgorithm> parse_digest_algorithm(std::string_view name) { return parse_in(kDigests, name); }
std::string_view name_of(DigestAlgorithm alg) noexcept { return name_in(kDigests, alg); }

std::size_t digest_size(DigestAlgorithm alg) noexcept {
  switch (alg) {
    case DigestAlgorithm::sha256:
      return 32;
    case DigestAlgorithm::sha384:
      return 48;
    case DigestAlgorithm::sha512:
      return 64;
  }
  return 0;
}

const EVP_MD* evp_md(DigestAlgorithm alg) noexcept {
  switch (alg) {
    case DigestAlgorithm::sha256:
      return EVP_sha256();
    case DigestAlgorithm::sha384:
      return EVP_sha384();
    case DigestAlgorithm::sha512:
      return EVP_sha512();
  }
  return nullptr;
}

Bytes digest(DigestAlgorithm alg, ByteView data) {
  Bytes out(digest_size(alg));
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, evp_md(alg), nullptr) != 1)
    throw std::runtime_error("EVP_Digest failed");
  out.resize(len);
  return out;
}

std::string sha256_hex(ByteView data) { return hex_encode(digest(DigestAlgorithm::sha256, data)); }

std::string random_hex(std::size_t bytes) {
  Bytes raw(bytes);
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) throw std::runtime_error("RAND_bytes failed");
  return hex_encode(raw);
}

}  // namespace kortti
