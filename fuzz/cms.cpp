// verify.cms: verify_cms on the input as DER, detached (with a content or
// with its SHA-256 digest) and, for a signature that carries its content,
// attached, as the handler passes what the client sent. Bytes that are not
// SignedData are Error(document_invalid); anything else is a finding.

#include <openssl/crypto.h>

#include "common/digest.hpp"
#include "common/error.hpp"
#include "fuzz/support.hpp"
#include "signature/signature.hpp"

namespace {

// verify_cms as the handler calls it; true when it refused the parameters
// (invalid_params), as it refuses a content sent beside a signature that
// carries its own.
bool refused_params(kortti::ByteView cms, const std::optional<kortti::Bytes>& content,
                    const std::optional<kortti::Bytes>& content_digest) {
  try {
    (void)kortti::signature::verify_cms(cms, content, content_digest);
  } catch (const kortti::Error& e) {
    return e.code() == kortti::Errc::invalid_params;
  } catch (const std::exception& e) {
    kortti::fuzz::unexpected_exception("cms", e);
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using kortti::Bytes;
  static const Bytes content = {'h', 'e', 'l', 'l', 'o', '\n'};
  static const Bytes content_digest = kortti::digest(kortti::DigestAlgorithm::sha256, content);
  const kortti::ByteView cms(data, size);
  // Each call parses the whole input, its certificates' public keys through
  // OpenSSL's decoder framework, which is most of the time an input takes:
  // one detached call, the content or its digest as the input's bytes pick
  // (the fuzzer mutates them into both), and the attached call only for a
  // signature that turns out to carry its content.
  std::uint32_t h = 2166136261U;
  for (std::size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 16777619U;
  const bool by_digest = (h & 1U) != 0;
  if (refused_params(cms, by_digest ? std::nullopt : std::optional<Bytes>(content),
                     by_digest ? std::optional<Bytes>(content_digest) : std::nullopt))
    (void)refused_params(cms, std::nullopt, std::nullopt);
  // OpenSSL keeps the error queue's strings of this input until later
  // errors reuse their slots: libFuzzer then sees more mallocs than frees
  // and looks for a leak after most inputs, each look a walk of ASan's whole
  // quarantine (276 inputs/s instead of 3,800 for identity). Freeing the
  // thread's OpenSSL state here keeps that check exact and rare.
  OPENSSL_thread_stop();
  return 0;
}
