// XML-DSig verification. Every Reference gets its own status (not only up to
// the first that fails), and the signature value is checked either way, so a
// tampered document says exactly what changed. The Kanta body reference is
// computed as prepare_xml computes it (linear time); any other reference goes
// through xmlsec, restricted to same-document URIs and the transforms our
// profiles and Kanta use — no XSLT, no network. The key is the certificate's
// in KeyInfo; its trust is the caller's to check (the policy).

// xmlsec.h first: the other xmlsec headers need its types.
#include <xmlsec/xmlsec.h>

#include <libxml/c14n.h>
#include <openssl/rsa.h>
#include <xmlsec/openssl/crypto.h>
#include <xmlsec/transforms.h>
#include <xmlsec/xmldsig.h>

#include <cstring>

#include "common/encoding.hpp"
#include "common/error.hpp"
#include "common/openssl.hpp"
#include "signature/xml_document.hpp"

namespace kortti::signature {

namespace {

using DsigCtxPtr = std::unique_ptr<xmlSecDSigCtx, decltype(&xmlSecDSigCtxDestroy)>;
using RefCtxPtr = std::unique_ptr<xmlSecDSigReferenceCtx, decltype(&xmlSecDSigReferenceCtxDestroy)>;

constexpr const char* kExcC14n = "http://www.w3.org/2001/10/xml-exc-c14n#";
constexpr const char* kXPath = "http://www.w3.org/TR/1999/REC-xpath-19991116";
constexpr const char* kXPath2 = "http://www.w3.org/2002/06/xmldsig-filter2";
// xmlsec's node-set search is quadratic: XPath filters other than Kanta's
// are evaluated only on documents up to this size.
constexpr std::size_t kXPathLimit = 1024 * 1024;

std::optional<DigestAlgorithm> digest_method(const std::string& uri) {
  if (uri == "http://www.w3.org/2001/04/xmlenc#sha256") return DigestAlgorithm::sha256;
  if (uri == "http://www.w3.org/2001/04/xmldsig-more#sha384") return DigestAlgorithm::sha384;
  if (uri == "http://www.w3.org/2001/04/xmlenc#sha512") return DigestAlgorithm::sha512;
  return std::nullopt;
}

struct SignatureMethod {
  bool ec = false;
  DigestAlgorithm digest = DigestAlgorithm::sha256;
};

std::optional<SignatureMethod> signature_method(const std::string& uri) {
  const std::string base = "http://www.w3.org/2001/04/xmldsig-more#";
  if (uri.rfind(base, 0) != 0) return std::nullopt;
  const std::string name = uri.substr(base.size());
  for (auto [suffix, alg] : {std::pair{"sha256", DigestAlgorithm::sha256}, std::pair{"sha384", DigestAlgorithm::sha384},
                             std::pair{"sha512", DigestAlgorithm::sha512}}) {
    if (name == std::string("rsa-") + suffix) return SignatureMethod{false, alg};
    if (name == std::string("ecdsa-") + suffix) return SignatureMethod{true, alg};
  }
  return std::nullopt;
}

std::optional<int> c14n_mode(const std::string& uri) {
  if (uri == kExcC14n) return XML_C14N_EXCLUSIVE_1_0;
  if (uri == "http://www.w3.org/TR/2001/REC-xml-c14n-20010315") return XML_C14N_1_0;
  if (uri == "http://www.w3.org/2006/12/xml-c14n11") return XML_C14N_1_1;
  return std::nullopt;
}

std::vector<xmlNode*> children(xmlNode* parent, const char* name) {
  std::vector<xmlNode*> out;
  for (xmlNode* n = parent != nullptr ? parent->children : nullptr; n != nullptr; n = n->next)
    if (is_element(n, kDsigNs, name)) out.push_back(n);
  return out;
}

void collect_signatures(xmlNode* node, std::vector<xmlNode*>& out) {
  for (xmlNode* n = node; n != nullptr; n = n->next) {
    if (n->type != XML_ELEMENT_NODE) continue;
    if (is_element(n, kDsigNs, "Signature"))
      out.push_back(n);
    else
      collect_signatures(n->children, out);
  }
}

// Exactly the body reference prepare_xml writes for kanta-cda.
bool is_kanta_body_reference(xmlNode* ref) {
  if (xmlHasProp(ref, reinterpret_cast<const xmlChar*>("URI")) == nullptr || !attribute(ref, "URI").empty())
    return false;
  const auto transforms = children(first_child(ref, kDsigNs, "Transforms"), "Transform");
  if (transforms.size() != 2 || attribute(transforms[0], "Algorithm") != kExcC14n ||
      transforms[0]->children != nullptr || attribute(transforms[1], "Algorithm") != kXPath)
    return false;
  xmlNode* xpath = first_child(transforms[1], kDsigNs, "XPath");
  if (xpath == nullptr || text_of(xpath) != "ancestor-or-self::hl7:structuredBody") return false;
  xmlNs* ns = xmlSearchNs(xpath->doc, xpath, reinterpret_cast<const xmlChar*>("hl7"));
  return ns != nullptr && std::strcmp(reinterpret_cast<const char*>(ns->href), kHl7Ns) == 0;
}

bool uses_xpath(xmlNode* ref) {
  for (xmlNode* t : children(first_child(ref, kDsigNs, "Transforms"), "Transform")) {
    const std::string alg = attribute(t, "Algorithm");
    if (alg == kXPath || alg == kXPath2) return true;
  }
  return false;
}

std::optional<Bytes> base64_of(xmlNode* node) {
  if (node == nullptr) return std::nullopt;
  std::string text = text_of(node);
  std::erase_if(text, [](char ch) { return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t'; });
  return base64_decode(text);
}

// Only the transforms our profiles and Kanta use, and only same-document URIs.
DsigCtxPtr reference_context() {
  DsigCtxPtr ctx(xmlSecDSigCtxCreate(nullptr), xmlSecDSigCtxDestroy);
  if (!ctx) throw std::runtime_error("xmlsec context");
  ctx->operation = xmlSecTransformOperationVerify;
  ctx->enabledReferenceUris =
      static_cast<xmlSecTransformUriType>(xmlSecTransformUriTypeEmpty | xmlSecTransformUriTypeSameDocument);
  for (xmlSecTransformId id :
       {xmlSecTransformExclC14NId, xmlSecTransformExclC14NWithCommentsId, xmlSecTransformInclC14NId,
        xmlSecTransformInclC14NWithCommentsId, xmlSecTransformInclC14N11Id, xmlSecTransformEnvelopedId,
        xmlSecTransformXPathId, xmlSecTransformXPath2Id, xmlSecOpenSSLTransformSha256Id, xmlSecOpenSSLTransformSha384Id,
        xmlSecOpenSSLTransformSha512Id})
    xmlSecDSigCtxEnableReferenceTransform(ctx.get(), id);
  return ctx;
}

std::string check_reference(xmlSecDSigCtx* ctx, xmlDoc* doc, xmlNode* ref, std::size_t document_bytes) {
  if (is_kanta_body_reference(ref)) {
    const auto alg = digest_method(attribute(first_child(ref, kDsigNs, "DigestMethod"), "Algorithm"));
    const auto want = base64_of(first_child(ref, kDsigNs, "DigestValue"));
    if (!alg || !want) return "invalid";
    return digest(*alg, kanta_body_octets(doc)) == *want ? "valid" : "invalid";
  }
  if (uses_xpath(ref) && document_bytes > kXPathLimit) return "not_checked";
  RefCtxPtr r(xmlSecDSigReferenceCtxCreate(ctx, xmlSecDSigReferenceOriginSignedInfo), xmlSecDSigReferenceCtxDestroy);
  if (!r) throw std::runtime_error("xmlsec reference context");
  if (xmlSecDSigReferenceCtxProcessNode(r.get(), ref) < 0) return "invalid";  // forbidden URI or transform, or broken
  return r->status == xmlSecDSigStatusSucceeded ? "valid" : "invalid";
}

bool verify_value(EVP_PKEY* key, const SignatureMethod& method, const Bytes& digest_value, const Bytes& value) {
  // XML-DSig carries ECDSA as r||s; OpenSSL verifies DER.
  Bytes der = value;
  if (method.ec) {
    auto converted = ecdsa_raw_to_der(value);
    if (!converted) return false;
    der = std::move(*converted);
  }
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(key, nullptr));
  const bool ok = ctx && EVP_PKEY_verify_init(ctx.get()) == 1 &&
                  (method.ec || EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) == 1) &&
                  EVP_PKEY_CTX_set_signature_md(ctx.get(), evp_md(method.digest)) == 1 &&
                  EVP_PKEY_verify(ctx.get(), der.data(), der.size(), digest_value.data(), digest_value.size()) == 1;
  ERR_clear_error();
  return ok;
}

XmlVerification verify_one(xmlDoc* doc, xmlNode* signature, std::size_t document_bytes) {
  XmlVerification v;
  v.signature_id = attribute(signature, "Id");
  v.signature_value = "not_checked";
  xmlNode* signed_info = first_child(signature, kDsigNs, "SignedInfo");
  if (signed_info == nullptr) {
    v.message = "the signature has no SignedInfo";
    return v;
  }
  DsigCtxPtr ctx = reference_context();
  bool references_hold = true;
  for (xmlNode* ref : children(signed_info, "Reference")) {
    ReferenceResult r{attribute(ref, "URI"), check_reference(ctx.get(), doc, ref, document_bytes)};
    references_hold = references_hold && r.status == "valid";
    v.references.push_back(std::move(r));
  }

  // Every certificate in KeyInfo; the one whose key verifies is the signer's.
  std::vector<Bytes> certificates;
  for (xmlNode* data : children(first_child(signature, kDsigNs, "KeyInfo"), "X509Data"))
    for (xmlNode* c : children(data, "X509Certificate"))
      if (auto der = base64_of(c); der && parse_certificate(*der)) certificates.push_back(std::move(*der));

  const auto c14n = c14n_mode(attribute(first_child(signed_info, kDsigNs, "CanonicalizationMethod"), "Algorithm"));
  const auto method = signature_method(attribute(first_child(signed_info, kDsigNs, "SignatureMethod"), "Algorithm"));
  const auto value = base64_of(first_child(signature, kDsigNs, "SignatureValue"));
  std::optional<std::size_t> signer;
  if (!c14n || !method) {
    v.message = "unsupported canonicalization or signature method";
  } else if (certificates.empty()) {
    v.message = "no certificate in KeyInfo";
  } else {
    const Bytes signed_digest = digest(method->digest, canonical(doc, signed_info, *c14n));
    for (std::size_t i = 0; i < certificates.size() && !signer; ++i) {
      X509Ptr cert = parse_certificate(certificates[i]);
      if (value && verify_value(X509_get0_pubkey(cert.get()), *method, signed_digest, *value)) signer = i;
    }
    v.signature_value = signer ? "valid" : "invalid";
    if (!signer) v.message = "the signature value does not verify with the key of any certificate in KeyInfo";
  }
  for (std::size_t i = 0; i < certificates.size(); ++i) {
    if (i == signer.value_or(0))
      v.certificate = std::move(certificates[i]);
    else
      v.chain.push_back(std::move(certificates[i]));
  }
  if (v.references.empty()) v.message = "the signature has no references";
  v.valid = signer.has_value() && references_hold && !v.references.empty();
  if (v.message.empty() && !references_hold) {
    bool unchecked = false;
    for (const auto& r : v.references) unchecked = unchecked || r.status == "not_checked";
    v.message = unchecked ? "an XPath-filtered reference is checked only in documents up to 1 MiB"
                          : "a reference does not match the document";
  }
  return v;
}

}  // namespace

std::vector<XmlVerification> verify_xml(std::string_view document, const DocumentLimits& limits) {
  initialise();
  XmlDocPtr doc = parse_document(document, limits);
  std::vector<xmlNode*> signatures;
  collect_signatures(xmlDocGetRootElement(doc.get()), signatures);
  if (signatures.empty()) invalid_document("no_signature", "the document has no ds:Signature element");
  std::vector<XmlVerification> out;
  for (xmlNode* s : signatures) out.push_back(verify_one(doc.get(), s, document.size()));
  return out;
}

}  // namespace kortti::signature
