// xmlsec.h first: the other xmlsec headers need its types.
#include <xmlsec/xmlsec.h>

#include <libxml/c14n.h>
#include <libxml/parser.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <xmlsec/errors.h>
#include <xmlsec/openssl/app.h>
#include <xmlsec/openssl/crypto.h>
#include <xmlsec/templates.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmltree.h>

#include <cstring>
#include <mutex>

#include "common/digest.hpp"
#include "common/encoding.hpp"
#include "common/error.hpp"
#include "common/names.hpp"
#include "common/openssl.hpp"
#include "signature/signer_key.hpp"
#include "signature/xml_document.hpp"

namespace kortti::signature {

namespace {

const xmlChar* x(const char* s) { return reinterpret_cast<const xmlChar*>(s); }

void silent_xmlsec(const char*, int, const char*, const char*, const char*, int, const char*) {}

std::string random_id(const char* prefix) { return prefix + random_hex(8); }

struct Algorithms {
  xmlSecTransformId sign;
  xmlSecTransformId digest;
  DigestAlgorithm digest_algorithm;
};

Algorithms algorithms_for(KeyType kind, DigestAlgorithm alg) {
  if (kind == KeyType::rsa) {
    switch (alg) {
      case DigestAlgorithm::sha256:
        return {xmlSecOpenSSLTransformRsaSha256Id, xmlSecOpenSSLTransformSha256Id, alg};
      case DigestAlgorithm::sha384:
        return {xmlSecOpenSSLTransformRsaSha384Id, xmlSecOpenSSLTransformSha384Id, alg};
      case DigestAlgorithm::sha512:
        return {xmlSecOpenSSLTransformRsaSha512Id, xmlSecOpenSSLTransformSha512Id, alg};
    }
  }
  switch (alg) {
    case DigestAlgorithm::sha256:
      return {xmlSecOpenSSLTransformEcdsaSha256Id, xmlSecOpenSSLTransformSha256Id, alg};
    case DigestAlgorithm::sha384:
      return {xmlSecOpenSSLTransformEcdsaSha384Id, xmlSecOpenSSLTransformSha384Id, alg};
    case DigestAlgorithm::sha512:
      return {xmlSecOpenSSLTransformEcdsaSha512Id, xmlSecOpenSSLTransformSha512Id, alg};
  }
  throw std::logic_error("digest algorithm");
}

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("xmlsec: ") + what + " failed");
}

// The hl7fi:signature element of a new signature, with its description and
// timestamp, where finland.md says Kanta expects it.
xmlNode* kanta_signature_element(xmlDoc* doc, const XmlOptions& o, const std::string& id, const std::string& ts_id,
                                 SystemTime now) {
  xmlNode* root = xmlDocGetRootElement(doc);
  xmlNs* fi = xmlSearchNsByHref(doc, root, x(kHl7fiNs));
  if (fi == nullptr) fi = xmlNewNs(root, x(kHl7fiNs), x("hl7fi"));
  if (fi == nullptr)
    invalid_document("wrong_namespace", "the prefix hl7fi is bound to another namespace on ClinicalDocument");
  xmlNode* header = first_child(root, kHl7fiNs, "localHeader");
  if (header == nullptr) {
    // Assumption (docs/signatures.md): a new localHeader goes before the body.
    header = xmlNewDocNode(doc, fi, x("localHeader"), nullptr);
    xmlNode* component = first_child(root, kHl7Ns, "component");
    if (component != nullptr)
      xmlAddPrevSibling(component, header);
    else
      xmlAddChild(root, header);
  }
  xmlNode* collection = first_child(header, kHl7fiNs, "signatureCollection");
  if (collection == nullptr) collection = xmlNewChild(header, fi, x("signatureCollection"), nullptr);
  xmlNode* sig = xmlNewChild(collection, fi, x("signature"), nullptr);
  xmlAddID(nullptr, doc, x(id.c_str()), xmlSetProp(sig, x("ID"), x(id.c_str())));
  xmlNode* desc = xmlNewChild(sig, fi, x("signatureDescription"), nullptr);
  xmlSetProp(desc, x("code"), x(o.signature_code.c_str()));
  xmlSetProp(desc, x("codeSystem"), x("1.2.246.537.5.40127.2006"));
  if (!o.signature_display.empty()) xmlSetProp(desc, x("displayName"), x(o.signature_display.c_str()));
  xmlNode* ts = xmlNewTextChild(sig, fi, x("signatureTimestamp"), x(to_rfc3339_local(now).c_str()));
  xmlAddID(nullptr, doc, x(ts_id.c_str()), xmlSetProp(ts, x("ID"), x(ts_id.c_str())));
  return sig;
}

}  // namespace

void initialise() {
  static std::once_flag once;
  std::call_once(once, [] {
    xmlInitParser();
    check(xmlSecInit() >= 0, "xmlSecInit");
    check(xmlSecCheckVersion() == 1, "version check");
    check(xmlSecOpenSSLAppInit(nullptr) >= 0, "xmlSecOpenSSLAppInit");
    check(xmlSecOpenSSLInit() >= 0, "xmlSecOpenSSLInit");
    xmlSecErrorsSetCallback(silent_xmlsec);
  });
}

std::optional<Profile> parse_profile(std::string_view name) {
  static constexpr Named<Profile> kProfiles[] = {{Profile::kanta_cda, "kanta-cda"}, {Profile::enveloped, "enveloped"}};
  return parse_in(kProfiles, name);
}

class PreparedXml::Impl {
 public:
  XmlDocPtr doc;
  xmlNode* signature_value = nullptr;
  DigestAlgorithm algorithm = DigestAlgorithm::sha256;
  KeyType kind = KeyType::rsa;
  std::size_t ec_half = 0;
  Bytes digest;
  std::string id;
};

PreparedXml::PreparedXml() = default;
PreparedXml::PreparedXml(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PreparedXml::~PreparedXml() = default;
PreparedXml::PreparedXml(PreparedXml&&) noexcept = default;
PreparedXml& PreparedXml::operator=(PreparedXml&&) noexcept = default;
DigestAlgorithm PreparedXml::digest_algorithm() const { return impl_->algorithm; }
const Bytes& PreparedXml::digest() const { return impl_->digest; }
const std::string& PreparedXml::signature_id() const { return impl_->id; }

std::string PreparedXml::finish(ByteView signature) {
  Bytes value(signature.begin(), signature.end());
  if (impl_->kind == KeyType::ec) {
    auto raw = ecdsa_der_to_raw(signature, impl_->ec_half);
    if (!raw) throw std::runtime_error("the token's ECDSA signature is not DER or does not fit the curve");
    value = std::move(*raw);
  }
  xmlNodeSetContent(impl_->signature_value, x(base64_encode(value).c_str()));
  return serialise(impl_->doc.get());
}

namespace {

// The ds:Signature template under `parent`: the profile's references and
// transforms, and the signer's certificate in KeyInfo.
struct Template {
  xmlNode* signature;
  xmlNode* body;  // the reference "" to the body or the whole document
};
Template signature_template(xmlDoc* doc, xmlNode* parent, Profile profile, const Algorithms& alg, const std::string& id,
                            const std::string& ts_id, ByteView certificate_der) {
  xmlNode* sig = xmlSecTmplSignatureCreateNsPref(doc, xmlSecTransformExclC14NId, alg.sign, x(id.c_str()), x("ds"));
  check(sig != nullptr, "signature template");
  xmlAddChild(parent, sig);
  xmlAddID(nullptr, doc, x(id.c_str()), xmlHasProp(sig, x("Id")));
  xmlNode* body = xmlSecTmplSignatureAddReference(sig, alg.digest, nullptr, x(""), nullptr);
  check(body != nullptr, "reference");
  if (profile == Profile::kanta_cda) {
    check(xmlSecTmplReferenceAddTransform(body, xmlSecTransformExclC14NId) != nullptr, "transform");
    xmlNode* xpath = xmlSecTmplReferenceAddTransform(body, xmlSecTransformXPathId);
    const xmlChar* ns[] = {x("hl7"), x(kHl7Ns), nullptr};
    check(xpath != nullptr && xmlSecTmplTransformAddXPath(xpath, x("ancestor-or-self::hl7:structuredBody"), ns) >= 0,
          "XPath transform");
    xmlNode* stamp = xmlSecTmplSignatureAddReference(sig, alg.digest, nullptr, x(("#" + ts_id).c_str()), nullptr);
    check(stamp != nullptr && xmlSecTmplReferenceAddTransform(stamp, xmlSecTransformExclC14NId) != nullptr,
          "timestamp reference");
  } else {
    check(xmlSecTmplReferenceAddTransform(body, xmlSecTransformEnvelopedId) != nullptr, "transform");
    check(xmlSecTmplReferenceAddTransform(body, xmlSecTransformExclC14NId) != nullptr, "transform");
  }
  xmlNode* x509 = xmlSecTmplKeyInfoAddX509Data(xmlSecTmplSignatureEnsureKeyInfo(sig, nullptr));
  xmlNode* cert_node = x509 != nullptr ? xmlSecTmplX509DataAddCertificate(x509) : nullptr;
  check(cert_node != nullptr, "KeyInfo");
  xmlNodeSetContent(cert_node, x(base64_encode(certificate_der).c_str()));
  return {sig, body};
}

// The references' digests, by xmlsec (no key is needed for them), except
// Kanta's body, whose filter is computed here.
void digest_references(xmlDoc* doc, const Template& t, Profile profile, DigestAlgorithm algorithm,
                       std::size_t canonical_bytes) {
  const DsigCtxPtr dsig(xmlSecDSigCtxCreate(nullptr));
  check(dsig != nullptr, "context");
  dsig->operation = xmlSecTransformOperationSign;
  xmlNode* signed_info = xmlSecFindChild(t.signature, xmlSecNodeSignedInfo, xmlSecDSigNs);
  if (profile == Profile::kanta_cda) {
    xmlNode* value = xmlSecFindChild(t.body, xmlSecNodeDigestValue, xmlSecDSigNs);
    check(value != nullptr, "DigestValue");
    xmlNodeSetContent(value,
                      x(base64_encode(kortti::digest(algorithm, kanta_body_octets(doc, canonical_bytes))).c_str()));
  } else {
    check_canonical_size(doc, nullptr, canonical_bytes);  // before xmlsec makes it, unbounded
  }
  for (xmlNode* ref = signed_info->children; ref != nullptr; ref = ref->next) {
    if (!is_element(ref, kDsigNs, "Reference") || (profile == Profile::kanta_cda && ref == t.body)) continue;
    const DsigReferenceCtxPtr ctx(xmlSecDSigReferenceCtxCreate(dsig.get(), xmlSecDSigReferenceOriginSignedInfo));
    check(ctx != nullptr && xmlSecDSigReferenceCtxProcessNode(ctx.get(), ref) >= 0, "reference digest");
  }
}

// The template, the references' digests and SignedInfo's digest, on a
// document already parsed (and, for the Kanta profile, checked to be a CDA).
PreparedXml prepare_parsed(XmlDocPtr parsed, std::size_t document_bytes, Profile profile, const SignerKey& signer,
                           ByteView certificate_der, const XmlOptions& options, SystemTime now) {
  const std::size_t canonical_bytes = canonical_limit(document_bytes);
  initialise();

  auto impl = std::make_unique<PreparedXml::Impl>();
  impl->kind = signer.kind;
  impl->ec_half = static_cast<std::size_t>((EVP_PKEY_get_bits(signer.key) + 7) / 8);
  const Algorithms alg =
      algorithms_for(impl->kind, impl->kind == KeyType::rsa ? options.rsa_digest : options.ec_digest);
  impl->algorithm = alg.digest_algorithm;

  impl->doc = std::move(parsed);
  xmlDoc* doc = impl->doc.get();
  xmlNode* root = xmlDocGetRootElement(doc);
  if (root == nullptr) invalid_document("not_well_formed", "the document has no root element");

  impl->id = random_id("S-");
  xmlNode* parent = root;
  std::string ts_id;
  if (profile == Profile::kanta_cda) {
    require_cda(doc);
    ts_id = random_id("TS-");
    parent = kanta_signature_element(doc, options, random_id("SIG-"), ts_id, now);
  }

  const Template t = signature_template(doc, parent, profile, alg, impl->id, ts_id, certificate_der);
  digest_references(doc, t, profile, impl->algorithm, canonical_bytes);
  xmlNode* sig = t.signature;
  xmlNode* signed_info = xmlSecFindChild(sig, xmlSecNodeSignedInfo, xmlSecDSigNs);
  // The one value the card signs: the digest of canonical SignedInfo.
  impl->digest = kortti::digest(impl->algorithm, canonical(doc, signed_info, XML_C14N_EXCLUSIVE_1_0, canonical_bytes));
  impl->signature_value = xmlSecFindChild(sig, xmlSecNodeSignatureValue, xmlSecDSigNs);
  check(impl->signature_value != nullptr, "SignatureValue");
  return PreparedXml(std::move(impl));
}

}  // namespace

PreparedXml prepare_xml(std::string_view document, Profile profile, ByteView certificate_der, const XmlOptions& options,
                        SystemTime now) {
  // The key first: a certificate the profile cannot use is refused before
  // the document costs anything.
  const SignerKey signer = signer_key(certificate_der, "XML signatures");
  return prepare_parsed(parse_document(document, options.limits), document.size(), profile, signer, certificate_der,
                        options, now);
}

PreparedPrescription prepare_prescription(std::string_view document, ByteView certificate_der,
                                          const XmlOptions& options, SystemTime now) {
  const SignerKey signer = signer_key(certificate_der, "XML signatures");
  XmlDocPtr doc = parse_document(document, options.limits);
  PreparedPrescription out;
  out.facts = read_prescription(doc.get());
  out.xml = std::make_shared<PreparedXml>(
      prepare_parsed(std::move(doc), document.size(), Profile::kanta_cda, signer, certificate_der, options, now));
  return out;
}

}  // namespace kortti::signature
