// XML-DSig verification with xmlsec1: the key comes from the certificate in
// KeyInfo (its trust is checked by the caller through the policy), references
// may only point inside the document, and only the transforms our profiles
// and Kanta use are allowed — no XSLT, no network.

// xmlsec.h first: the other xmlsec headers need its types.
#include <xmlsec/xmlsec.h>

#include <xmlsec/keys.h>
#include <xmlsec/keysmngr.h>
#include <xmlsec/openssl/app.h>
#include <xmlsec/openssl/crypto.h>
#include <xmlsec/openssl/evp.h>
#include <xmlsec/transforms.h>
#include <xmlsec/xmldsig.h>

#include "common/encoding.hpp"
#include "common/error.hpp"
#include "common/openssl.hpp"
#include "signature/xml_document.hpp"

namespace kortti::signature {

namespace {

using KeysMngrPtr = std::unique_ptr<xmlSecKeysMngr, decltype(&xmlSecKeysMngrDestroy)>;
using DsigCtxPtr = std::unique_ptr<xmlSecDSigCtx, decltype(&xmlSecDSigCtxDestroy)>;

void collect_signatures(xmlNode* node, std::vector<xmlNode*>& out) {
  for (xmlNode* n = node; n != nullptr; n = n->next) {
    if (n->type != XML_ELEMENT_NODE) continue;
    if (is_element(n, kDsigNs, "Signature"))
      out.push_back(n);
    else
      collect_signatures(n->children, out);
  }
}

// Transforms inside References, and those over SignedInfo.
void restrict_transforms(xmlSecDSigCtx* ctx) {
  const xmlSecTransformId canonical[] = {xmlSecTransformExclC14NId, xmlSecTransformExclC14NWithCommentsId,
                                         xmlSecTransformInclC14NId, xmlSecTransformInclC14NWithCommentsId,
                                         xmlSecTransformInclC14N11Id};
  for (xmlSecTransformId id : canonical) {
    xmlSecDSigCtxEnableReferenceTransform(ctx, id);
    xmlSecDSigCtxEnableSignatureTransform(ctx, id);
  }
  for (xmlSecTransformId id :
       {xmlSecTransformEnvelopedId, xmlSecTransformXPathId, xmlSecTransformXPath2Id, xmlSecOpenSSLTransformSha256Id,
        xmlSecOpenSSLTransformSha384Id, xmlSecOpenSSLTransformSha512Id})
    xmlSecDSigCtxEnableReferenceTransform(ctx, id);
  for (xmlSecTransformId id :
       {xmlSecOpenSSLTransformRsaSha256Id, xmlSecOpenSSLTransformRsaSha384Id, xmlSecOpenSSLTransformRsaSha512Id,
        xmlSecOpenSSLTransformEcdsaSha256Id, xmlSecOpenSSLTransformEcdsaSha384Id, xmlSecOpenSSLTransformEcdsaSha512Id})
    xmlSecDSigCtxEnableSignatureTransform(ctx, id);
}

// Every ds:X509Certificate in the signature's KeyInfo: the one whose key
// verified is the signer's, the rest its chain.
void read_certificates(xmlNode* signature, EVP_PKEY* key, XmlVerification& out) {
  xmlNode* info = first_child(signature, kDsigNs, "KeyInfo");
  for (xmlNode* data = info != nullptr ? info->children : nullptr; data != nullptr; data = data->next) {
    if (!is_element(data, kDsigNs, "X509Data")) continue;
    for (xmlNode* c = data->children; c != nullptr; c = c->next) {
      if (!is_element(c, kDsigNs, "X509Certificate")) continue;
      std::string text = text_of(c);
      std::erase_if(text, [](char ch) { return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t'; });
      auto der = base64_decode(text);
      if (!der) continue;
      X509Ptr cert = parse_certificate(*der);
      if (!cert) continue;
      if (out.certificate.empty() && key != nullptr && EVP_PKEY_eq(X509_get0_pubkey(cert.get()), key) == 1)
        out.certificate = std::move(*der);
      else
        out.chain.push_back(std::move(*der));
    }
  }
}

XmlVerification verify_one(xmlNode* signature) {
  XmlVerification v;
  v.signature_id = attribute(signature, "Id");
  KeysMngrPtr mngr(xmlSecKeysMngrCreate(), xmlSecKeysMngrDestroy);
  if (!mngr || xmlSecOpenSSLAppDefaultKeysMngrInit(mngr.get()) < 0) throw std::runtime_error("xmlsec keys manager");
  DsigCtxPtr ctx(xmlSecDSigCtxCreate(mngr.get()), xmlSecDSigCtxDestroy);
  if (!ctx) throw std::runtime_error("xmlsec context");
  ctx->enabledReferenceUris =
      static_cast<xmlSecTransformUriType>(xmlSecTransformUriTypeEmpty | xmlSecTransformUriTypeSameDocument);
  ctx->keyInfoReadCtx.flags |= XMLSEC_KEYINFO_FLAGS_X509DATA_DONT_VERIFY_CERTS;
  restrict_transforms(ctx.get());

  const int rc = xmlSecDSigCtxVerify(ctx.get(), signature);
  // xmlsec checks the references in order, stops at the first that fails,
  // and checks the value only when all of them hold.
  std::size_t checked = 0;
  bool references_hold = true;
  for (xmlSecSize i = 0; i < xmlSecPtrListGetSize(&ctx->signedInfoReferences); ++i) {
    auto* ref = static_cast<xmlSecDSigReferenceCtx*>(xmlSecPtrListGetItem(&ctx->signedInfoReferences, i));
    if (ref == nullptr) continue;
    ReferenceResult r;
    r.uri = ref->uri != nullptr ? reinterpret_cast<const char*>(ref->uri) : "";
    r.status = ref->status == xmlSecDSigStatusSucceeded ? "valid" : "invalid";
    references_hold = references_hold && ref->status == xmlSecDSigStatusSucceeded;
    v.references.push_back(std::move(r));
    ++checked;
  }
  // References after the first failure: named, not checked.
  xmlNode* signed_info = first_child(signature, kDsigNs, "SignedInfo");
  std::size_t index = 0;
  for (xmlNode* n = signed_info != nullptr ? signed_info->children : nullptr; n != nullptr; n = n->next) {
    if (!is_element(n, kDsigNs, "Reference")) continue;
    if (index++ < checked) continue;
    v.references.push_back({attribute(n, "URI"), "not_checked"});
  }

  EVP_PKEY* key = nullptr;
  if (ctx->signKey != nullptr && xmlSecKeyGetValue(ctx->signKey) != nullptr)
    key = xmlSecOpenSSLEvpKeyDataGetEvp(xmlSecKeyGetValue(ctx->signKey));
  read_certificates(signature, key, v);

  if (rc < 0) {
    v.signature_value = "not_checked";
    v.message =
        "the signature could not be processed (unknown or forbidden algorithm or transform, a reference "
        "outside the document, or no usable certificate in KeyInfo)";
  } else if (!references_hold || checked == 0) {
    v.signature_value = "not_checked";
    v.message = checked == 0 ? "the signature has no references" : "a reference does not match the document";
  } else {
    v.signature_value = ctx->status == xmlSecDSigStatusSucceeded ? "valid" : "invalid";
    if (ctx->status != xmlSecDSigStatusSucceeded) v.message = "the signature value does not verify with the key";
  }
  v.valid = rc >= 0 && ctx->status == xmlSecDSigStatusSucceeded && !v.certificate.empty();
  if (rc >= 0 && v.valid == false && v.message.empty()) v.message = "no certificate in KeyInfo carries the key";
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
  for (xmlNode* s : signatures) out.push_back(verify_one(s));
  return out;
}

}  // namespace kortti::signature
