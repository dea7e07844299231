// A card certificate's identity: read_identity on the input as DER with the
// default mapping (and a card-type map, so the policy OIDs are read too).
// DER that is not a certificate is Error(certificate_invalid); anything else
// is a finding.

#include <openssl/crypto.h>

#include "common/error.hpp"
#include "fuzz/support.hpp"
#include "policy/policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const kortti::policy::IdentityMapping mapping = [] {
    kortti::policy::IdentityMapping m;
    m.card_types = {{"2.999.10.1", "professional"}, {"2.999.10.2", "staff"}};
    return m;
  }();
  try {
    (void)kortti::policy::read_identity(kortti::ByteView(data, size), mapping);
  } catch (const kortti::Error&) {
  } catch (const std::exception& e) {
    kortti::fuzz::unexpected_exception("identity", e);
  }
  // OpenSSL keeps the error queue's strings of this input until later
  // errors reuse their slots: libFuzzer then sees more mallocs than frees
  // and looks for a leak after most inputs, each look a walk of ASan's whole
  // quarantine (276 inputs/s instead of 3,800 for identity). Freeing the
  // thread's OpenSSL state here keeps that check exact and rare.
  OPENSSL_thread_stop();
  return 0;
}
