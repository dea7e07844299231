// sign.xml and sign.prescription's XML side: prepare_xml on the input as a
// document (the first byte picks kanta-cda or enveloped), signed with the
// test physician's key as the card would sign the digest, finished, and then
// verified. A document prepare_xml accepts must come out as a signature
// verify_xml finds valid: anything else is a finding, as is an exception
// other than Error.

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "common/digest.hpp"
#include "common/error.hpp"
#include "common/openssl.hpp"
#include "fuzz/support.hpp"
#include "signature/signature.hpp"

namespace {

using namespace kortti;

struct Signer {
  Bytes certificate = fuzz::data_file("leaf.der");
  EvpPkeyPtr key;
  Signer() {
    const Bytes der = fuzz::data_file("leaf.key.der");
    const unsigned char* p = der.data();
    key.reset(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(der.size())));
    if (!key) std::abort();
  }
};

const Signer& signer() {
  static const Signer s;
  return s;
}

// RSA PKCS#1 v1.5 over a digest, as CKM_RSA_PKCS signs a DigestInfo.
Bytes sign_digest(DigestAlgorithm algorithm, const Bytes& digest) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(signer().key.get(), nullptr));
  std::size_t n = 0;
  if (!ctx || EVP_PKEY_sign_init(ctx.get()) <= 0 || EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) <= 0 ||
      EVP_PKEY_CTX_set_signature_md(ctx.get(), evp_md(algorithm)) <= 0 ||
      EVP_PKEY_sign(ctx.get(), nullptr, &n, digest.data(), digest.size()) <= 0)
    std::abort();
  Bytes out(n);
  if (EVP_PKEY_sign(ctx.get(), out.data(), &n, digest.data(), digest.size()) <= 0) std::abort();
  out.resize(n);
  return out;
}

[[noreturn]] void not_valid(const std::string& why) {
  fuzz::unexpected_exception("xml_sign (round trip)", std::logic_error(why));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  signature::initialise();
  (void)signer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto profile = (data[0] & 1) ? signature::Profile::enveloped : signature::Profile::kanta_cda;
  const std::string_view document = fuzz::as_text(data + 1, size - 1);
  const SystemTime now = std::chrono::system_clock::from_time_t(1796169600);
  std::string signed_document;
  try {
    signature::PreparedXml prepared =
        signature::prepare_xml(document, profile, signer().certificate, signature::XmlOptions{}, now);
    signed_document = prepared.finish(sign_digest(prepared.digest_algorithm(), prepared.digest()));
  } catch (const Error&) {
    return 0;
  } catch (const std::exception& e) {
    fuzz::unexpected_exception("xml_sign", e);
  }
  try {
    const auto results = signature::verify_xml(signed_document, signature::DocumentLimits{});
    bool ours = false;
    for (const auto& r : results) ours = ours || r.valid;
    if (!ours)
      not_valid("verify_xml finds no valid signature in what prepare_xml signed: " +
                (results.empty() ? std::string("none") : results.back().message));
  } catch (const Error& e) {
    not_valid(std::string("verify_xml refuses what prepare_xml signed: ") + e.what() + " (" + e.detail + ")");
  } catch (const std::exception& e) {
    fuzz::unexpected_exception("xml_sign (verify)", e);
  }
  return 0;
}
