// XML-DSig verification. Only the two shapes korttid signs are examined
// (kanta-cda and enveloped, docs/signatures.md): each ds:Signature must sit
// where its profile puts it and carry exactly that profile's references and
// transforms. Anything else — a moved signature, another reference form
// (xpointer, another ID, an outside URI), another transform (XPath, XSLT) —
// is refused before any digest is computed: a verifier that follows what a
// signature says it covers can be shown a wrapped document, and made to
// evaluate arbitrary XPath. Every Reference then gets its own status and the
// signature value is checked either way, so a tampered document says exactly
// what changed. The Kanta body reference is computed as prepare_xml computes
// it (linear time); the others go through xmlsec with only the transforms
// the profiles use. The key is the certificate's in KeyInfo; its trust is
// the caller's to check (the policy).

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

constexpr const char* kExcC14n = "http://www.w3.org/2001/10/xml-exc-c14n#";
constexpr const char* kXPath = "http://www.w3.org/TR/1999/REC-xpath-19991116";
constexpr const char* kEnveloped = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
constexpr const char* kKantaFilter = "ancestor-or-self::hl7:structuredBody";

[[noreturn]] void malformed(const std::string& message) { invalid_document("malformed_signature", message); }

[[noreturn]] void unsupported_algorithm(const std::string& what, const std::string& uri) {
  throw Error(Errc::unsupported, what + " '" + uri + "' is not supported").with_detail("unsupported_algorithm");
}

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

std::vector<xmlNode*> element_children(xmlNode* parent) {
  std::vector<xmlNode*> out;
  for (xmlNode* n = parent != nullptr ? parent->children : nullptr; n != nullptr; n = n->next)
    if (n->type == XML_ELEMENT_NODE) out.push_back(n);
  return out;
}

std::string local_name(const xmlNode* n) { return reinterpret_cast<const char*>(n->name); }

// The element children of `parent` must be the ds: elements `names`, in that
// order; a name ending in '?' may be absent, one ending in '+' repeats.
std::vector<xmlNode*> expect_children(xmlNode* parent, std::initializer_list<std::string_view> names) {
  const std::vector<xmlNode*> kids = element_children(parent);
  std::size_t i = 0;
  for (std::string_view spec : names) {
    const bool optional = spec.ends_with('?');
    const bool repeated = spec.ends_with('+');
    const std::string name(optional || repeated ? spec.substr(0, spec.size() - 1) : spec);
    std::size_t seen = 0;
    while (i < kids.size() && is_element(kids[i], kDsigNs, name.c_str()) && (repeated || seen == 0)) {
      ++i;
      ++seen;
    }
    if (seen == 0 && !optional)
      malformed("ds:" + local_name(parent) + " has no ds:" + name +
                (i < kids.size() ? " where " + local_name(kids[i]) + " is" : std::string()));
  }
  if (i < kids.size())
    malformed("ds:" + local_name(parent) + " holds " + local_name(kids[i]) +
              ", which neither profile (kanta-cda, enveloped) signs or uses");
  return kids;
}

std::string algorithm_of(xmlNode* node) {
  if (xmlHasProp(node, reinterpret_cast<const xmlChar*>("Algorithm")) == nullptr)
    malformed("ds:" + local_name(node) + " has no Algorithm");
  return attribute(node, "Algorithm");
}

Bytes base64_field(xmlNode* node, const std::string& what) {
  std::string text = text_of(node);
  std::erase_if(text, [](char ch) { return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t'; });
  if (text.empty()) malformed("the " + what + " is empty");
  auto bytes = base64_decode(text);
  if (!bytes) invalid_document("bad_base64", "the " + what + " is not base64");
  return std::move(*bytes);
}

enum class RefKind { kanta_body, kanta_timestamp, whole_document };

struct PlannedReference {
  xmlNode* node = nullptr;
  xmlNode* target = nullptr;  // what it points at; null: the whole document
  std::string uri;
  RefKind kind = RefKind::whole_document;
  DigestAlgorithm algorithm = DigestAlgorithm::sha256;
  Bytes digest_value;
  std::string covers;
};

// Everything about one signature that can be read without computing a digest.
struct Plan {
  xmlNode* signature = nullptr;
  xmlNode* signed_info = nullptr;
  int c14n = XML_C14N_EXCLUSIVE_1_0;
  SignatureMethod method;
  Bytes value;
  std::vector<PlannedReference> references;
  std::vector<Bytes> certificates;
  XmlCoverage covers;
};

void collect_signatures(xmlNode* node, std::vector<xmlNode*>& out) {
  for (xmlNode* n = node; n != nullptr; n = n->next) {
    if (n->type != XML_ELEMENT_NODE) continue;
    if (is_element(n, kDsigNs, "Signature")) out.push_back(n);
    // Into signatures too: one nested in another is in no profile's place.
    collect_signatures(n->children, out);
  }
}

// ClinicalDocument/hl7fi:localHeader/hl7fi:signatureCollection/hl7fi:signature,
// or null when `signature` is not there.
xmlNode* kanta_holder(xmlNode* signature, xmlNode* root) {
  xmlNode* holder = signature->parent;
  if (!is_element(holder, kHl7fiNs, "signature")) return nullptr;
  xmlNode* collection = holder->parent;
  if (!is_element(collection, kHl7fiNs, "signatureCollection")) return nullptr;
  xmlNode* header = collection->parent;
  if (!is_element(header, kHl7fiNs, "localHeader") || header->parent != root) return nullptr;
  return is_element(root, kHl7Ns, "ClinicalDocument") ? holder : nullptr;
}

// The transforms of a reference must be exactly `expected`; only Kanta's
// XPath filter may have content, and only its one expression.
void expect_transforms(xmlNode* ref, std::initializer_list<const char*> expected, const std::string& profile) {
  xmlNode* transforms = first_child(ref, kDsigNs, "Transforms");
  const std::vector<xmlNode*> list =
      transforms != nullptr ? expect_children(transforms, {"Transform+"}) : std::vector<xmlNode*>{};
  std::string want;
  for (const char* e : expected) want += std::string(want.empty() ? "" : ", ") + e;
  auto refuse = [&](const std::string& why) {
    invalid_document("transform_not_allowed", "a " + profile + " reference (URI \"" + attribute(ref, "URI") +
                                                  "\") must have exactly the transforms " + want + ": " + why);
  };
  if (list.size() != expected.size())
    refuse("it has " + std::to_string(list.size()) + " transform" + (list.size() == 1 ? "" : "s"));
  std::size_t i = 0;
  for (const char* alg : expected) {
    xmlNode* t = list[i++];
    const std::string got = algorithm_of(t);
    if (got != alg) refuse("it has " + got);
    const auto content = element_children(t);
    if (got != kXPath) {
      if (!content.empty()) refuse(got + " has parameters (" + local_name(content[0]) + ")");
      continue;
    }
    if (content.size() != 1 || !is_element(content[0], kDsigNs, "XPath")) refuse("the XPath filter has no ds:XPath");
    const std::string expression = text_of(content[0]);
    xmlNs* ns = xmlSearchNs(content[0]->doc, content[0], reinterpret_cast<const xmlChar*>("hl7"));
    if (expression != kKantaFilter)
      refuse("its XPath filter is '" + expression + "', not Kanta's " + std::string(kKantaFilter));
    if (ns == nullptr || std::strcmp(reinterpret_cast<const char*>(ns->href), kHl7Ns) != 0)
      refuse("the prefix hl7 of its XPath filter is not bound to urn:hl7-org:v3");
  }
}

[[noreturn]] void reference_not_allowed(const std::string& profile, const std::string& uri, const std::string& want) {
  invalid_document("reference_not_allowed",
                   "a " + profile + " signature's reference URI \"" + uri + "\" is not allowed here: " + want);
}

PlannedReference plan_reference(xmlNode* ref) {
  if (xmlHasProp(ref, reinterpret_cast<const xmlChar*>("URI")) == nullptr) malformed("a ds:Reference has no URI");
  expect_children(ref, {"Transforms?", "DigestMethod", "DigestValue"});
  PlannedReference r;
  r.node = ref;
  r.uri = attribute(ref, "URI");
  const std::string method = algorithm_of(first_child(ref, kDsigNs, "DigestMethod"));
  const auto alg = digest_method(method);
  if (!alg) unsupported_algorithm("the digest method", method);
  if (!element_children(first_child(ref, kDsigNs, "DigestMethod")).empty())
    malformed("a ds:DigestMethod has parameters");
  r.algorithm = *alg;
  r.digest_value = base64_field(first_child(ref, kDsigNs, "DigestValue"), "DigestValue of reference \"" + r.uri + "\"");
  return r;
}

// SignedInfo: the canonicalization, the signature method and the references,
// each an algorithm this verifier knows, none with parameters.
void plan_signed_info(Plan& p) {
  expect_children(p.signed_info, {"CanonicalizationMethod", "SignatureMethod", "Reference+"});
  xmlNode* c14n_node = first_child(p.signed_info, kDsigNs, "CanonicalizationMethod");
  const std::string c14n = algorithm_of(c14n_node);
  const auto mode = c14n_mode(c14n);
  if (!mode) unsupported_algorithm("the canonicalization method", c14n);
  if (!element_children(c14n_node).empty())
    unsupported_algorithm("the canonicalization method with parameters (InclusiveNamespaces)", c14n);
  p.c14n = *mode;
  xmlNode* method_node = first_child(p.signed_info, kDsigNs, "SignatureMethod");
  const std::string method_uri = algorithm_of(method_node);
  const auto method = signature_method(method_uri);
  if (!method) unsupported_algorithm("the signature method", method_uri);
  if (!element_children(method_node).empty()) malformed("the ds:SignatureMethod has parameters");
  p.method = *method;
  for (xmlNode* ref : element_children(p.signed_info))
    if (is_element(ref, kDsigNs, "Reference")) p.references.push_back(plan_reference(ref));
}

// A Kanta signature: one ds:Signature and one timestamp in its hl7fi:signature,
// references to exactly the body and that timestamp, in that order.
void plan_kanta_references(Plan& p, xmlDoc* doc, xmlNode* holder) {
  const std::string profile = "kanta-cda";
  std::size_t signatures = 0;
  xmlNode* stamp = nullptr;
  std::size_t stamps = 0;
  for (xmlNode* n : element_children(holder)) {
    signatures += is_element(n, kDsigNs, "Signature");
    if (is_element(n, kHl7fiNs, "signatureTimestamp")) {
      stamp = n;
      ++stamps;
    }
  }
  if (signatures != 1 || stamps != 1)
    invalid_document("signature_misplaced",
                     "an hl7fi:signature must hold exactly one ds:Signature and one "
                     "hl7fi:signatureTimestamp; this one holds " +
                         std::to_string(signatures) + " and " + std::to_string(stamps));
  const std::string stamp_id = attribute(stamp, "ID");
  if (stamp_id.empty()) malformed("the hl7fi:signatureTimestamp has no ID");
  // xmlsec reads "#xpointer(...)" and "#xmlns(...)" as XPointer, and a
  // name with a space as several ids: an ID that is not an NCName would make
  // the reference an XPath program, or point at other elements.
  if (xmlValidateNCName(reinterpret_cast<const xmlChar*>(stamp_id.c_str()), 0) != 0)
    malformed("the hl7fi:signatureTimestamp's ID is not an XML name (NCName): " + printable(stamp_id, 64));
  require_cda(doc);  // one ClinicalDocument/component/structuredBody, no other
  if (p.references.size() != 2)
    reference_not_allowed(profile, p.references.size() > 2 ? p.references[2].uri : "(none)",
                          "exactly two references, \"\" (structuredBody) and \"#" + stamp_id + "\"");
  if (!p.references[0].uri.empty())
    reference_not_allowed(profile, p.references[0].uri, "the first reference is \"\" (structuredBody)");
  expect_transforms(p.references[0].node, {kExcC14n, kXPath}, profile);
  if (p.references[1].uri != "#" + stamp_id)
    reference_not_allowed(
        profile, p.references[1].uri,
        "the second reference is the signature's own hl7fi:signatureTimestamp, \"#" + stamp_id + "\"");
  expect_transforms(p.references[1].node, {kExcC14n}, profile);
  p.references[0].kind = RefKind::kanta_body;
  p.references[0].covers = "ClinicalDocument/component/structuredBody: the clinical content";
  p.references[1].kind = RefKind::kanta_timestamp;
  p.references[1].target = stamp;
  p.references[1].covers = "hl7fi:signatureTimestamp " + stamp_id + ": the signing time";
  p.covers.profile = profile;
  p.covers.not_covered =
      "the CDA header is NOT covered: the patient (recordTarget), the author, custodian, document id, dates and "
      "everything else outside structuredBody, and the other signatures in hl7fi:signatureCollection";
}

// An enveloped signature: one reference, to the whole document.
void plan_enveloped_reference(Plan& p) {
  const std::string profile = "enveloped";
  if (p.references.size() != 1)
    reference_not_allowed(profile, p.references[1].uri, "exactly one reference, \"\" (the whole document)");
  if (!p.references[0].uri.empty())
    reference_not_allowed(profile, p.references[0].uri, "only \"\" (the whole document)");
  expect_transforms(p.references[0].node, {kEnveloped, kExcC14n}, profile);
  p.references[0].kind = RefKind::whole_document;
  p.references[0].covers = "the whole document except this ds:Signature";
  p.covers.profile = profile;
}

// Every certificate in KeyInfo; the one whose key verifies is the signer's.
// At most kMaxKeyInfoCertificates: each is a signature check, and the rest
// a chain for the policy to build (a signer, its CA and roots need few).
std::vector<Bytes> key_info_certificates(xmlNode* signature) {
  std::vector<Bytes> certificates;
  std::size_t listed = 0;
  for (xmlNode* data : element_children(first_child(signature, kDsigNs, "KeyInfo"))) {
    if (!is_element(data, kDsigNs, "X509Data")) continue;
    for (xmlNode* c : element_children(data))
      if (is_element(c, kDsigNs, "X509Certificate")) {
        if (++listed > kMaxKeyInfoCertificates)
          malformed("a ds:KeyInfo holds more than " + std::to_string(kMaxKeyInfoCertificates) +
                    " certificates; korttid takes at most that many");
        Bytes der = base64_field(c, "X509Certificate");
        if (parse_certificate(der)) certificates.push_back(std::move(der));
      }
  }
  return certificates;
}

Plan plan_signature(xmlDoc* doc, xmlNode* signature) {
  Plan p;
  p.signature = signature;
  xmlNode* root = xmlDocGetRootElement(doc);
  xmlNode* holder = kanta_holder(signature, root);
  const bool enveloped = signature->parent == root;
  if (holder == nullptr && !enveloped)
    invalid_document("signature_misplaced",
                     "a ds:Signature is " +
                         (signature->parent->type == XML_ELEMENT_NODE ? "inside " + local_name(signature->parent)
                                                                      : std::string("the root element")) +
                         ": a kanta-cda signature belongs in ClinicalDocument/hl7fi:localHeader/"
                         "hl7fi:signatureCollection/hl7fi:signature, an enveloped one is a child of the root element");
  expect_children(signature, {"SignedInfo", "SignatureValue", "KeyInfo?"});
  p.signed_info = first_child(signature, kDsigNs, "SignedInfo");
  plan_signed_info(p);
  if (holder != nullptr)
    plan_kanta_references(p, doc, holder);
  else
    plan_enveloped_reference(p);
  for (const auto& r : p.references) p.covers.parts.push_back(r.covers);
  p.value = base64_field(first_child(signature, kDsigNs, "SignatureValue"), "SignatureValue");
  p.certificates = key_info_certificates(signature);
  return p;
}

// Only what the profiles' references use besides Kanta's body filter, which
// is computed here: no XPath, no XSLT, same-document URIs only.
DsigCtxPtr reference_context() {
  DsigCtxPtr ctx(xmlSecDSigCtxCreate(nullptr));
  if (!ctx) throw std::runtime_error("xmlsec context");
  ctx->operation = xmlSecTransformOperationVerify;
  ctx->enabledReferenceUris =
      static_cast<xmlSecTransformUriType>(xmlSecTransformUriTypeEmpty | xmlSecTransformUriTypeSameDocument);
  for (xmlSecTransformId id : {xmlSecTransformExclC14NId, xmlSecTransformEnvelopedId, xmlSecOpenSSLTransformSha256Id,
                               xmlSecOpenSSLTransformSha384Id, xmlSecOpenSSLTransformSha512Id})
    xmlSecDSigCtxEnableReferenceTransform(ctx.get(), id);
  return ctx;
}

bool verify_value(EVP_PKEY* key, const SignatureMethod& method, const Bytes& digest_value, const Bytes& value) {
  // XML-DSig carries ECDSA as r||s; OpenSSL verifies DER.
  Bytes der = value;
  if (method.ec) {
    auto converted = ecdsa_raw_to_der(value);
    if (!converted) return false;
    der = std::move(*converted);
  }
  return verify_digest_signature(key, method.ec ? Scheme::ecdsa : Scheme::pkcs1, method.digest, digest_value, der);
}

class Verifier {
 public:
  Verifier(xmlDoc* doc, std::size_t canonical_bytes)
      : doc_(doc), canonical_bytes_(canonical_bytes), ctx_(reference_context()) {}

  XmlVerification verify(Plan& p) {
    XmlVerification v;
    v.signature_id = attribute(p.signature, "Id");
    v.covers = std::move(p.covers);
    bool references_hold = true;
    for (const auto& r : p.references) {
      ReferenceResult out{r.uri, check(r) ? "valid" : "invalid"};
      references_hold = references_hold && out.status == "valid";
      v.references.push_back(std::move(out));
    }
    std::optional<std::size_t> signer;
    v.signature_value = "not_checked";
    if (p.certificates.empty()) {
      v.message = "no certificate in KeyInfo";
    } else {
      const Bytes signed_digest = digest(p.method.digest, canonical(doc_, p.signed_info, p.c14n, canonical_bytes_));
      for (std::size_t i = 0; i < p.certificates.size() && !signer; ++i) {
        X509Ptr cert = parse_certificate(p.certificates[i]);
        if (verify_value(X509_get0_pubkey(cert.get()), p.method, signed_digest, p.value)) signer = i;
      }
      v.signature_value = signer ? "valid" : "invalid";
      if (!signer) v.message = "the signature value does not verify with the key of any certificate in KeyInfo";
    }
    for (std::size_t i = 0; i < p.certificates.size(); ++i) {
      if (i == signer.value_or(0))
        v.certificate = std::move(p.certificates[i]);
      else
        v.chain.push_back(std::move(p.certificates[i]));
    }
    v.valid = signer.has_value() && references_hold;
    if (v.message.empty() && !references_hold) v.message = "a reference does not match the document";
    return v;
  }

 private:
  bool check(const PlannedReference& r) {
    if (r.kind == RefKind::kanta_body) {
      // The same octets for every Kanta signature in the document.
      if (!have_body_) {
        body_ = kanta_body_octets(doc_, canonical_bytes_);
        have_body_ = true;
      }
      return digest(r.algorithm, body_) == r.digest_value;
    }
    // xmlsec streams a reference's c14n into its digest without a bound:
    // what it points at is counted first (the enveloped reference's is the
    // whole document's less the signature).
    if (r.target != nullptr || !document_counted_) check_canonical_size(doc_, r.target, canonical_bytes_);
    if (r.target == nullptr) document_counted_ = true;
    const DsigReferenceCtxPtr ctx(xmlSecDSigReferenceCtxCreate(ctx_.get(), xmlSecDSigReferenceOriginSignedInfo));
    if (!ctx) throw std::runtime_error("xmlsec reference context");
    return xmlSecDSigReferenceCtxProcessNode(ctx.get(), r.node) >= 0 && ctx->status == xmlSecDSigStatusSucceeded;
  }

  xmlDoc* doc_;
  std::size_t canonical_bytes_;
  bool document_counted_ = false;
  DsigCtxPtr ctx_;
  // Not std::optional: GCC 12 warns (maybe-uninitialized) on optional<vector>.
  Bytes body_;
  bool have_body_ = false;
};

}  // namespace

std::vector<XmlVerification> verify_xml(std::string_view document, const DocumentLimits& limits) {
  initialise();
  XmlDocPtr doc = parse_document(document, limits);
  std::vector<xmlNode*> signatures;
  collect_signatures(xmlDocGetRootElement(doc.get()), signatures);
  if (signatures.empty()) invalid_document("no_signature", "the document has no ds:Signature element");
  if (signatures.size() > kMaxXmlSignatures)
    invalid_document("too_many_signatures", "the document has " + std::to_string(signatures.size()) +
                                                " ds:Signature elements; korttid checks at most " +
                                                std::to_string(kMaxXmlSignatures));
  // Every signature is read and its shape checked before any is computed.
  std::vector<Plan> plans;
  for (xmlNode* s : signatures) plans.push_back(plan_signature(doc.get(), s));
  Verifier verifier(doc.get(), canonical_limit(document.size()));
  std::vector<XmlVerification> out;
  for (Plan& p : plans) out.push_back(verifier.verify(p));
  return out;
}

}  // namespace kortti::signature
