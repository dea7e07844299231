#include "pkcs11/signing.hpp"

#include <openssl/objects.h>

#include "common/error.hpp"
#include "common/openssl.hpp"

namespace kortti::pkcs11 {

void check_scheme_fits(Scheme scheme, KeyType key) {
  const bool fits = key == KeyType::ec ? scheme == Scheme::ecdsa : scheme != Scheme::ecdsa;
  if (!fits)
    throw Error(Errc::unsupported, std::string("scheme '") + std::string(name_of(scheme)) + "' does not apply to a " +
                                       std::string(name_of(key)) + " key");
}

CK_MECHANISM_TYPE mechanism_of(Scheme scheme) noexcept {
  switch (scheme) {
    case Scheme::pkcs1:
      return CKM_RSA_PKCS;
    case Scheme::pss:
      return CKM_RSA_PKCS_PSS;
    case Scheme::ecdsa:
      return CKM_ECDSA;
  }
  return CKM_RSA_PKCS;
}

CK_RSA_PKCS_PSS_PARAMS pss_params(DigestAlgorithm alg) noexcept {
  switch (alg) {
    case DigestAlgorithm::sha256:
      return {CKM_SHA256, CKG_MGF1_SHA256, 32};
    case DigestAlgorithm::sha384:
      return {CKM_SHA384, CKG_MGF1_SHA384, 48};
    case DigestAlgorithm::sha512:
      return {CKM_SHA512, CKG_MGF1_SHA512, 64};
  }
  return {CKM_SHA256, CKG_MGF1_SHA256, 32};
}

Bytes digest_info(DigestAlgorithm alg, ByteView digest) {
  X509SigPtr sig(X509_SIG_new());
  X509_ALGOR* algor = nullptr;
  ASN1_OCTET_STRING* octets = nullptr;
  X509_SIG_getm(sig.get(), &algor, &octets);
  if (X509_ALGOR_set0(algor, OBJ_nid2obj(EVP_MD_get_type(evp_md(alg))), V_ASN1_NULL, nullptr) != 1 ||
      ASN1_OCTET_STRING_set(octets, digest.data(), static_cast<int>(digest.size())) != 1)
    throw internal_error("DigestInfo", openssl_error("cannot build DigestInfo"));
  const int len = i2d_X509_SIG(sig.get(), nullptr);
  Bytes out(static_cast<std::size_t>(len));
  unsigned char* p = out.data();
  i2d_X509_SIG(sig.get(), &p);
  return out;
}

Bytes ecdsa_raw_to_der(ByteView raw) {
  auto der = kortti::ecdsa_raw_to_der(raw);
  if (!der) throw Error(Errc::service_unavailable, "the card returned a malformed ECDSA signature");
  return std::move(*der);
}

std::string signature_algorithm_name(Scheme scheme, DigestAlgorithm alg) {
  int nid = NID_undef;
  switch (scheme) {
    case Scheme::pss:
      return OBJ_nid2ln(NID_rsassaPss);
    case Scheme::pkcs1:
      nid = alg == DigestAlgorithm::sha256   ? NID_sha256WithRSAEncryption
            : alg == DigestAlgorithm::sha384 ? NID_sha384WithRSAEncryption
                                             : NID_sha512WithRSAEncryption;
      return OBJ_nid2ln(nid);
    case Scheme::ecdsa:
      nid = alg == DigestAlgorithm::sha256   ? NID_ecdsa_with_SHA256
            : alg == DigestAlgorithm::sha384 ? NID_ecdsa_with_SHA384
                                             : NID_ecdsa_with_SHA512;
      return OBJ_nid2sn(nid);
  }
  return {};
}

}  // namespace kortti::pkcs11
