// CMS / CAdES-BES. OpenSSL builds the SignedData around the certificate's
// public key (CMS_PARTIAL: it never signs); we add the signed attributes,
// digest their DER the way RFC 5652 §5.4 says, and the card signs that digest.

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/ess.h>
#include <openssl/rsa.h>

#include <algorithm>

#include "common/error.hpp"
#include "common/openssl.hpp"
#include "signature/signature.hpp"
#include "signature/signer_key.hpp"

namespace kortti::signature {

namespace {

using CmsPtr = Owned<CMS_ContentInfo, CMS_ContentInfo_free>;
using PssParamsPtr = Owned<RSA_PSS_PARAMS, RSA_PSS_PARAMS_free>;
using AlgorPtr = Owned<X509_ALGOR, X509_ALGOR_free>;
using SigningCertPtr = Owned<ESS_SIGNING_CERT, ESS_SIGNING_CERT_free>;
using SigningCertV2Ptr = Owned<ESS_SIGNING_CERT_V2, ESS_SIGNING_CERT_V2_free>;

// OpenSSL failing where it should not: the text goes to the log, the client
// gets the correlation id.
[[noreturn]] void fail(const char* what) { throw internal_error("CMS", openssl_error(what)); }

void append_der_length(Bytes& out, std::size_t n) {
  if (n < 0x80) {
    out.push_back(static_cast<unsigned char>(n));
    return;
  }
  Bytes be;
  for (; n != 0; n >>= 8) be.insert(be.begin(), static_cast<unsigned char>(n & 0xff));
  out.push_back(static_cast<unsigned char>(0x80 | be.size()));
  out.insert(out.end(), be.begin(), be.end());
}

// The DER SET OF the signed attributes (tag 0x31, not the [0] of the
// SignerInfo): that is what the signature covers. DER orders a SET OF by the
// elements' encodings.
Bytes signed_attributes_der(CMS_SignerInfo* si) {
  std::vector<Bytes> items;
  for (int i = 0; i < CMS_signed_get_attr_count(si); ++i) {
    X509_ATTRIBUTE* a = CMS_signed_get_attr(si, i);
    const int len = i2d_X509_ATTRIBUTE(a, nullptr);
    if (len <= 0) fail("cannot encode a signed attribute");
    Bytes item(static_cast<std::size_t>(len));
    unsigned char* p = item.data();
    i2d_X509_ATTRIBUTE(a, &p);
    items.push_back(std::move(item));
  }
  std::sort(items.begin(), items.end(), BytesLess());
  std::size_t total = 0;
  for (const auto& i : items) total += i.size();
  Bytes out{0x31};
  append_der_length(out, total);
  for (const auto& i : items) out.insert(out.end(), i.begin(), i.end());
  return out;
}

Bytes to_der(CMS_ContentInfo* cms) {
  const int len = i2d_CMS_ContentInfo(cms, nullptr);
  if (len <= 0) fail("cannot encode the CMS structure");
  Bytes out(static_cast<std::size_t>(len));
  unsigned char* p = out.data();
  i2d_CMS_ContentInfo(cms, &p);
  return out;
}

CmsPtr from_der(ByteView der) {
  const unsigned char* p = der.data();
  CmsPtr cms(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(der.size())));
  if (!cms || p != der.data() + der.size() || OBJ_obj2nid(CMS_get0_type(cms.get())) != NID_pkcs7_signed) return {};
  return cms;
}

CMS_SignerInfo* first_signer(CMS_ContentInfo* cms) {
  STACK_OF(CMS_SignerInfo)* signers = CMS_get0_SignerInfos(cms);
  if (signers == nullptr || sk_CMS_SignerInfo_num(signers) < 1) fail("the CMS structure has no signer");
  return sk_CMS_SignerInfo_value(signers, 0);
}

// RSASSA-PSS with MGF1 over the same hash and a salt as long as the digest —
// what the token's CKM_RSA_PKCS_PSS uses (pkcs11/signing.cpp).
void set_pss_algorithm(X509_ALGOR* alg, const EVP_MD* md) {
  PssParamsPtr pss(RSA_PSS_PARAMS_new());
  AlgorPtr mgf_md(X509_ALGOR_new());
  if (!pss || !mgf_md) throw std::bad_alloc();
  pss->hashAlgorithm = X509_ALGOR_new();
  pss->maskGenAlgorithm = X509_ALGOR_new();
  pss->saltLength = ASN1_INTEGER_new();
  if (pss->hashAlgorithm == nullptr || pss->maskGenAlgorithm == nullptr || pss->saltLength == nullptr)
    throw std::bad_alloc();
  X509_ALGOR_set_md(pss->hashAlgorithm, md);
  X509_ALGOR_set_md(mgf_md.get(), md);
  ASN1_STRING* mgf_param = ASN1_item_pack(mgf_md.get(), ASN1_ITEM_rptr(X509_ALGOR), nullptr);
  if (mgf_param == nullptr) fail("cannot encode the MGF1 parameters");
  X509_ALGOR_set0(pss->maskGenAlgorithm, OBJ_nid2obj(NID_mgf1), V_ASN1_SEQUENCE, mgf_param);
  ASN1_INTEGER_set(pss->saltLength, EVP_MD_get_size(md));
  ASN1_STRING* params = ASN1_item_pack(pss.get(), ASN1_ITEM_rptr(RSA_PSS_PARAMS), nullptr);
  if (params == nullptr) fail("cannot encode the PSS parameters");
  X509_ALGOR_set0(alg, OBJ_nid2obj(NID_rsassaPss), V_ASN1_SEQUENCE, params);
}

void add_attribute(CMS_SignerInfo* si, int nid, int type, const void* value, int len) {
  if (CMS_signed_add1_attr_by_NID(si, nid, type, value, len) != 1) fail("cannot add a signed attribute");
}

std::optional<SystemTime> signing_time_of(CMS_SignerInfo* si) {
  const int at = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
  if (at < 0) return std::nullopt;
  ASN1_TYPE* value = X509_ATTRIBUTE_get0_type(CMS_signed_get_attr(si, at), 0);
  if (value == nullptr || (value->type != V_ASN1_UTCTIME && value->type != V_ASN1_GENERALIZEDTIME)) return std::nullopt;
  return to_system_time(value->value.asn1_string);
}

const ASN1_OCTET_STRING* message_digest_of(CMS_SignerInfo* si) {
  return static_cast<const ASN1_OCTET_STRING*>(
      CMS_signed_get0_data_by_OBJ(si, OBJ_nid2obj(NID_pkcs9_messageDigest), -3, V_ASN1_OCTET_STRING));
}

// signingCertificateV2 (or v1) must name the certificate that verifies.
bool signing_certificate_matches(CMS_SignerInfo* si, X509* signer) {
  const BorrowedX509StackPtr chain(sk_X509_new_null());
  if (!chain || sk_X509_push(chain.get(), signer) < 1) throw std::bad_alloc();
  bool ok = false;
  if (const auto* v2 = static_cast<const ASN1_STRING*>(
          CMS_signed_get0_data_by_OBJ(si, OBJ_nid2obj(NID_id_smime_aa_signingCertificateV2), -3, V_ASN1_SEQUENCE))) {
    const unsigned char* p = ASN1_STRING_get0_data(v2);
    const SigningCertV2Ptr ss(d2i_ESS_SIGNING_CERT_V2(nullptr, &p, ASN1_STRING_length(v2)));
    ok = ss && OSSL_ESS_check_signing_certs(nullptr, ss.get(), chain.get(), 1) == 1;
  } else if (const auto* v1 = static_cast<const ASN1_STRING*>(CMS_signed_get0_data_by_OBJ(
                 si, OBJ_nid2obj(NID_id_smime_aa_signingCertificate), -3, V_ASN1_SEQUENCE))) {
    const unsigned char* p = ASN1_STRING_get0_data(v1);
    const SigningCertPtr ss(d2i_ESS_SIGNING_CERT(nullptr, &p, ASN1_STRING_length(v1)));
    ok = ss && OSSL_ESS_check_signing_certs(ss.get(), nullptr, chain.get(), 1) == 1;
  }
  ERR_clear_error();
  return ok;
}

std::string digest_name_of(CMS_SignerInfo* si) {
  X509_ALGOR* alg = nullptr;
  CMS_SignerInfo_get0_algs(si, nullptr, nullptr, &alg, nullptr);
  const ASN1_OBJECT* oid = nullptr;
  X509_ALGOR_get0(&oid, nullptr, nullptr, alg);
  const int nid = OBJ_obj2nid(oid);
  for (DigestAlgorithm a : {DigestAlgorithm::sha256, DigestAlgorithm::sha384, DigestAlgorithm::sha512})
    if (EVP_MD_get_type(evp_md(a)) == nid) return std::string(name_of(a));
  return nid == NID_undef ? "unknown" : OBJ_nid2sn(nid);
}

}  // namespace

PreparedCms prepare_cms(const CmsInput& input, ByteView certificate_der, const std::vector<Bytes>& chain,
                        SystemTime now) {
  const SignerKey signer = signer_key(certificate_der, "CMS signatures");
  const bool ec = signer.kind == KeyType::ec;
  if (ec != (input.scheme == Scheme::ecdsa))
    throw Error(Errc::unsupported,
                ec ? "an EC key signs with ecdsa only" : "an RSA key signs with pkcs1 or pss, not ecdsa");
  const bool from_digest = !input.content.has_value();
  if (from_digest && !input.detached)
    throw Error(Errc::invalid_params, "a signature over a digest is detached: the content is not there to attach");
  const EVP_MD* md = evp_md(input.digest_algorithm);
  const Bytes content_digest = from_digest ? input.content_digest : digest(input.digest_algorithm, *input.content);
  if (content_digest.size() != digest_size(input.digest_algorithm))
    throw Error(Errc::invalid_params, "the digest does not fit " + std::string(name_of(input.digest_algorithm)));

  const unsigned int flags = CMS_PARTIAL | CMS_BINARY | CMS_NOSMIMECAP | (input.detached ? CMS_DETACHED : 0U);
  CmsPtr cms(CMS_sign(nullptr, nullptr, nullptr, nullptr, flags));
  if (!cms) fail("cannot start a CMS structure");
  // The public key stands in for the private one: CMS_PARTIAL never signs,
  // and CMS_CADES adds signingCertificateV2 (ESS, SHA-256 of the certificate).
  CMS_SignerInfo* si =
      CMS_add1_signer(cms.get(), signer.certificate.get(), signer.key, md, CMS_PARTIAL | CMS_NOSMIMECAP | CMS_CADES);
  if (si == nullptr) fail("cannot add the signer");
  for (const Bytes& der : chain) {
    X509Ptr c = parse_certificate(der);
    if (c && CMS_add1_cert(cms.get(), c.get()) != 1) fail("cannot add a chain certificate");
  }
  if (input.scheme == Scheme::pss) {
    X509_ALGOR* sig_alg = nullptr;
    CMS_SignerInfo_get0_algs(si, nullptr, nullptr, nullptr, &sig_alg);
    set_pss_algorithm(sig_alg, md);
  }

  add_attribute(si, NID_pkcs9_contentType, V_ASN1_OBJECT, OBJ_nid2obj(NID_pkcs7_data), -1);
  Asn1TimePtr when(ASN1_TIME_set(nullptr, std::chrono::system_clock::to_time_t(now)));  // UTCTime until 2050
  if (!when) fail("cannot encode the signing time");
  add_attribute(si, NID_pkcs9_signingTime, when->type, when.get(), -1);
  add_attribute(si, NID_pkcs9_messageDigest, V_ASN1_OCTET_STRING, content_digest.data(),
                static_cast<int>(content_digest.size()));

  if (!input.detached) {
    ASN1_OCTET_STRING** content = CMS_get0_content(cms.get());
    if (content == nullptr || *content == nullptr) fail("the CMS structure has no place for the content");
    if (ASN1_OCTET_STRING_set(*content, input.content->data(), static_cast<int>(input.content->size())) != 1)
      fail("cannot attach the content");
    (*content)->flags &= ~ASN1_STRING_FLAG_CONT;  // the bytes are here, not streamed
  }

  PreparedCms prepared;
  prepared.digest_algorithm = input.digest_algorithm;
  prepared.digest = digest(input.digest_algorithm, signed_attributes_der(si));
  prepared.unsigned_der = to_der(cms.get());
  return prepared;
}

Bytes PreparedCms::finish(ByteView signature) const {
  CmsPtr cms = from_der(unsigned_der);
  if (!cms) fail("the prepared CMS structure does not parse");
  if (ASN1_STRING_set(CMS_SignerInfo_get0_signature(first_signer(cms.get())), signature.data(),
                      static_cast<int>(signature.size())) != 1)
    fail("cannot set the signature value");
  return to_der(cms.get());
}

namespace {

// One SignerInfo: its value against the signer's key, the content against
// its messageDigest (or `given_digest`), and signingCertificateV2.
CmsSignerVerification verify_signer(CMS_SignerInfo* si, STACK_OF(X509) * all, ByteView data,
                                    const Bytes* given_digest) {
  CmsSignerVerification v;
  v.digest_algorithm = digest_name_of(si);
  v.signing_time = signing_time_of(si);
  X509* signer = nullptr;
  CMS_SignerInfo_get0_algs(si, nullptr, &signer, nullptr, nullptr);
  if (signer == nullptr) {
    v.message = "the signer's certificate is not in the signature";
    return v;
  }
  v.certificate = certificate_der(signer);
  const int certificate_count = all != nullptr ? sk_X509_num(all) : 0;
  for (int c = 0; c < certificate_count; ++c)
    if (X509_cmp(sk_X509_value(all, c), signer) != 0) v.chain.push_back(certificate_der(sk_X509_value(all, c)));
  v.signature_value_valid = CMS_SignerInfo_verify(si) == 1;
  ERR_clear_error();
  const ASN1_OCTET_STRING* md = message_digest_of(si);
  const auto alg = parse_digest_algorithm(v.digest_algorithm);
  if (md != nullptr && alg) {
    const Bytes want = given_digest != nullptr ? *given_digest : digest(*alg, data);
    v.content_digest_valid = static_cast<std::size_t>(ASN1_STRING_length(md)) == want.size() &&
                             std::memcmp(ASN1_STRING_get0_data(md), want.data(), want.size()) == 0;
  }
  v.signing_certificate_valid = signing_certificate_matches(si, signer);
  v.valid = v.signature_value_valid && v.content_digest_valid && v.signing_certificate_valid;
  if (!v.signature_value_valid)
    v.message = "the signature value does not verify with the signer's key";
  else if (md == nullptr || !alg)
    v.message = "no messageDigest attribute, or a digest algorithm other than SHA-2";
  else if (!v.content_digest_valid)
    v.message = "the content does not match the signed messageDigest";
  else if (!v.signing_certificate_valid)
    v.message = "signingCertificateV2 does not name the signer's certificate";
  return v;
}

}  // namespace

CmsVerification verify_cms(ByteView cms_der, const std::optional<Bytes>& content,
                           const std::optional<Bytes>& content_digest) {
  CmsPtr cms = from_der(cms_der);
  if (!cms)
    throw Error(Errc::document_invalid, "the signature is not a DER CMS SignedData structure").with_detail("not_cms");
  ERR_clear_error();
  CmsVerification out;
  ASN1_OCTET_STRING** embedded = CMS_get0_content(cms.get());
  out.detached = embedded == nullptr || *embedded == nullptr;
  // What is sent is what the answer speaks for: nothing sent is left unchecked.
  if (!out.detached && content)
    throw Error(Errc::invalid_params, "the signature carries its content; do not send it again");
  if (!out.detached && content_digest)
    throw Error(Errc::invalid_params,
                "the signature carries its content; a digest sent beside it would not be checked: send none");
  if (content && content_digest) throw Error(Errc::invalid_params, "send the content or its digest, not both");
  if (out.detached && !content && !content_digest)
    throw Error(Errc::invalid_params, "the signature is detached: send the content or its digest");
  ByteView data;
  if (!out.detached)
    data = ByteView(ASN1_STRING_get0_data(*embedded), static_cast<std::size_t>(ASN1_STRING_length(*embedded)));
  else if (content)
    data = *content;
  // Every signer is checked against every embedded certificate, and each
  // signer's chain is checked by the policy: the work grows with signers x
  // certificates, not with the size of the request (300 of each: 15 s and
  // 200 MiB). Real signatures have one or a few signers and a short chain.
  STACK_OF(CMS_SignerInfo)* signers = CMS_get0_SignerInfos(cms.get());
  const int signer_count = sk_CMS_SignerInfo_num(signers);
  if (signer_count > static_cast<int>(kMaxCmsSigners))
    throw Error(Errc::document_invalid, "the signature has " + std::to_string(signer_count) +
                                            " signers; korttid checks at most " + std::to_string(kMaxCmsSigners))
        .with_detail("too_many_signers");
  const X509StackPtr all(CMS_get1_certs(cms.get()));
  const int certificate_count = all ? sk_X509_num(all.get()) : 0;
  if (certificate_count > static_cast<int>(kMaxCmsCertificates))
    throw Error(Errc::document_invalid, "the signature carries " + std::to_string(certificate_count) +
                                            " certificates; korttid takes at most " +
                                            std::to_string(kMaxCmsCertificates))
        .with_detail("too_many_certificates");
  // Which embedded certificate signed which SignerInfo; the trust is the caller's to check.
  CMS_set1_signers_certs(cms.get(), nullptr, 0);
  ERR_clear_error();
  // A detached signature's content may come as its digest alone.
  const Bytes* given_digest = content_digest && out.detached && !content ? &*content_digest : nullptr;
  for (int i = 0; i < signer_count; ++i)
    out.signers.push_back(verify_signer(sk_CMS_SignerInfo_value(signers, i), all.get(), data, given_digest));
  return out;
}

}  // namespace kortti::signature
