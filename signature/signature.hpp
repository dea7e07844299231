#pragma once

// signature/: signed documents. XML-DSig with libxml2 and xmlsec1 — the Kanta
// CDA profile (finland.md) and a plain enveloped signature — and what
// sign.prescription reads from an e-prescription CDA. The card signs one
// digest per document: prepare_xml() canonicalises and digests everything,
// the token signs SignedInfo's digest, PreparedXml::finish() puts the value in.

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "common/keys.hpp"
#include "common/result.hpp"
#include "common/task.hpp"
#include "common/time.hpp"

namespace kortti::signature {

// Once per process, before any other call here (libxml2, xmlsec1).
void initialise();

struct DocumentLimits {
  std::size_t max_bytes = 16 * 1024 * 1024;
  // Checked on the text before libxml2 sees it: libxml2 2.9 compares each
  // attribute of an element with every earlier one (80,000 attributes took a
  // minute), and every node costs it 100-200 bytes of memory. A CDA element
  // has a handful of attributes; a real 16 MiB CDA has about 400,000 nodes.
  // Depth is libxml2's own limit without XML_PARSE_HUGE.
  std::size_t max_attributes_per_element = 256;
  std::size_t max_nodes = 1'000'000;  // elements, attributes, comments, PIs
  std::size_t max_depth = 256;
  bool operator==(const DocumentLimits&) const = default;
};

enum class Profile { kanta_cda, enveloped };
std::optional<Profile> parse_profile(std::string_view name);

struct XmlOptions {
  // hl7fi:signatureDescription code (code system 1.2.246.537.5.40127.2006).
  std::string signature_code = "1";
  std::string signature_display = "Sähköinen allekirjoitus";
  // Digest for references and SignedInfo, per key kind.
  DigestAlgorithm rsa_digest = DigestAlgorithm::sha256;
  DigestAlgorithm ec_digest = DigestAlgorithm::sha384;
  DocumentLimits limits;
  // Documents waiting for the documents thread, in bytes; one document
  // always gets in. Past it a request is refused with 1060.
  std::size_t max_queued_bytes = 64 * 1024 * 1024;
  bool operator==(const XmlOptions&) const = default;
};

// A document parsed, templated and digested, waiting for the card's
// signature over `digest`. Not thread-safe; may move between threads.
class PreparedXml {
 public:
  PreparedXml();
  ~PreparedXml();
  PreparedXml(PreparedXml&&) noexcept;
  PreparedXml& operator=(PreparedXml&&) noexcept;

  [[nodiscard]] DigestAlgorithm digest_algorithm() const;
  [[nodiscard]] const Bytes& digest() const;  // of canonical SignedInfo
  [[nodiscard]] const std::string& signature_id() const;
  // `signature` as the token returns it (ECDSA DER-encoded); returns the
  // signed document.
  std::string finish(ByteView signature);

  class Impl;
  explicit PreparedXml(std::unique_ptr<Impl> impl);  // only xml_sign.cpp can make an Impl

 private:
  std::unique_ptr<Impl> impl_;
};

// Throws Error(document_invalid) with a specific detail for a document that
// is not acceptable, Error(unsupported) for a key type it cannot use.
PreparedXml prepare_xml(std::string_view document, Profile profile, ByteView certificate_der, const XmlOptions& options,
                        SystemTime now = std::chrono::system_clock::now());

// What sign.prescription needs from an e-prescription CDA.
struct PrescriptionFacts {
  std::vector<std::string> atc_codes;                     // code system 1.2.246.537.6.32.2007
  std::optional<std::string> patient_id;                  // hetu, root 1.2.246.21
  std::optional<std::string> author_registration_number;  // root 1.2.246.537.26
  std::optional<std::string> author_prescriber_id;        // root 1.2.246.537.25
};
PrescriptionFacts read_prescription(std::string_view document, const DocumentLimits& limits);

// sign.prescription's one parse: what the policy needs to know, and the
// document prepared for the card (Kanta profile). A denial just drops it.
struct PreparedPrescription {
  PrescriptionFacts facts;
  std::shared_ptr<PreparedXml> xml;
};
PreparedPrescription prepare_prescription(std::string_view document, ByteView certificate_der,
                                          const XmlOptions& options, SystemTime now = std::chrono::system_clock::now());

struct ReferenceResult {
  std::string uri;
  std::string status;  // "valid" or "invalid"
};

// What a signature protects: its profile, what each reference resolved to
// (in the order of the references), and what it leaves open. A client must
// not read "valid" as "the whole document is as signed" for kanta-cda.
struct XmlCoverage {
  std::string profile;             // "kanta-cda" or "enveloped"
  std::vector<std::string> parts;  // one per reference
  std::string not_covered;         // empty when the signature covers everything but itself
};

struct XmlVerification {
  std::string signature_id;
  bool valid = false;           // the signature value and every reference
  std::string signature_value;  // "valid", "invalid", or "not_checked" (no usable certificate)
  std::vector<ReferenceResult> references;
  XmlCoverage covers;
  Bytes certificate;         // the signer's, from KeyInfo (DER)
  std::vector<Bytes> chain;  // the other certificates in KeyInfo
  std::string message;       // why not valid
};

// Every ds:Signature in the document, in document order. Checks the
// signature values and references with the key of the certificate in each
// KeyInfo; the certificate's trust is the caller's to check. A document
// without a signature is Error(document_invalid, "no_signature"). Only the
// two profiles' shapes are examined: a signature elsewhere than its profile
// puts it, another reference or transform, or a malformed signature is
// Error(document_invalid) with a specific detail, an unknown algorithm
// Error(unsupported) — all before any digest is computed.
std::vector<XmlVerification> verify_xml(std::string_view document, const DocumentLimits& limits);

// CMS SignedData with CAdES-BES signed attributes: content-type, signing-time,
// message-digest and signingCertificateV2. Like XML, the card signs one
// digest: that of the DER signed attributes.
struct CmsInput {
  // The content, or (detached only) its digest.
  std::optional<Bytes> content;
  Bytes content_digest;
  DigestAlgorithm digest_algorithm = DigestAlgorithm::sha256;
  bool detached = false;
  Scheme scheme = Scheme::pkcs1;
};

struct PreparedCms {
  DigestAlgorithm digest_algorithm = DigestAlgorithm::sha256;
  Bytes digest;        // of the signed attributes: what the card signs
  Bytes unsigned_der;  // the ContentInfo, its signature value still empty
  // `signature` as the token returns it (ECDSA DER); returns the CMS (DER).
  [[nodiscard]] Bytes finish(ByteView signature) const;
};

// Throws Error(unsupported) for a key the scheme does not fit,
// Error(invalid_params) for a digest of the wrong size or attached-from-digest.
PreparedCms prepare_cms(const CmsInput& input, ByteView certificate_der, const std::vector<Bytes>& chain,
                        SystemTime now = std::chrono::system_clock::now());

struct CmsSignerVerification {
  bool valid = false;  // every check below
  bool signature_value_valid = false;
  bool content_digest_valid = false;       // messageDigest matches the content
  bool signing_certificate_valid = false;  // signingCertificate(V2) names the signer
  std::string digest_algorithm;
  std::optional<SystemTime> signing_time;
  Bytes certificate;         // the signer's (DER)
  std::vector<Bytes> chain;  // the other certificates the signature carries
  std::string message;       // why not valid
};

struct CmsVerification {
  bool detached = false;
  std::vector<CmsSignerVerification> signers;
};

// What verify_cms() takes: more is 1051 too_many_signers /
// too_many_certificates before any signer is checked.
inline constexpr std::size_t kMaxCmsSigners = 16;
inline constexpr std::size_t kMaxCmsCertificates = 64;
// What verify_xml() takes: more is 1051 too_many_signatures before any is
// computed. Each enveloped signature canonicalises and digests the whole
// document again; a Kanta document carries one or a few.
inline constexpr std::size_t kMaxXmlSignatures = 16;
// Certificates in one signature's ds:KeyInfo: more is 1051
// malformed_signature. Each is tried as the signer.
inline constexpr std::size_t kMaxKeyInfoCertificates = 8;

// A detached signature needs `content` or `content_digest`; an attached one
// neither. Throws Error(document_invalid, "not_cms") for bytes that are not
// SignedData. The certificates' trust is the caller's to check.
CmsVerification verify_cms(ByteView cms_der, const std::optional<Bytes>& content,
                           const std::optional<Bytes>& content_digest);

// --- Web eID authentication tokens (format web-eid:1.0) ---
//
// A login challenge signed the Web eID way, so a relying party that validates
// Web eID tokens accepts it: the card signs hash(origin) || hash(nonce), each
// hash the algorithm's over the UTF-8 text (the nonce as its base64 text, not
// decoded). docs/authentication.md has the whole rule.

inline constexpr std::string_view kWebEidFormat = "web-eid:1.0";

struct WebEidAlgorithm {
  std::string_view name;  // JWS: ES256, ES384, ES512, PS256, ..., RS512
  DigestAlgorithm digest;
  Scheme scheme;
};

// Every name a token may carry; nullptr for any other.
const WebEidAlgorithm* parse_web_eid_algorithm(std::string_view name);
// What a key makes: ES256/ES384/ES512 by curve; PS256 for RSA where the token
// signs PSS, RS256 where it cannot. Error(unsupported) for another curve.
const WebEidAlgorithm& web_eid_algorithm_for(KeyType type, std::string_view curve, bool rsa_pss);

// Error(invalid_params) naming the rule: a nonce is 44 to 1024 base64
// characters. (The origin's rule: check_web_origin, common/origin.hpp.)
void check_web_eid_nonce(std::string_view nonce);

// The digest the card signs: the algorithm's hash of hash(origin) || hash(nonce).
Bytes web_eid_digest(const WebEidAlgorithm& algorithm, std::string_view origin, std::string_view nonce);

struct WebEidToken {
  Bytes certificate;  // unverifiedCertificate, DER
  std::string algorithm;
  Bytes signature;  // ECDSA as raw r||s, as JWS has it
  std::string format = std::string(kWebEidFormat);
  std::string app_version;
};

// The card's signature (ECDSA in DER) as a token carries it; `curve` sizes r
// and s. Error(internal) for a DER signature that does not fit the curve.
Bytes web_eid_signature(const WebEidAlgorithm& algorithm, std::string_view curve, ByteView card_signature);

// What a relying party checks of the token itself, before the certificate's
// trust: the format, the algorithm against the key, and the signature over
// this origin and nonce. `reason` is empty when it holds.
struct WebEidCheck {
  std::string reason;  // format_unsupported, algorithm_unsupported, algorithm_mismatch, certificate_unreadable,
                       // signature_invalid
  std::string message;
  [[nodiscard]] bool valid() const noexcept { return reason.empty(); }
};
WebEidCheck verify_web_eid_token(const WebEidToken& token, std::string_view origin, std::string_view nonce);

// The daemon's side: parsing, templating and serialising run on one
// "documents" thread, never on the socket loop; completions come back there.
class DocumentService {
 public:
  DocumentService(boost::asio::io_context& io, XmlOptions options);
  ~DocumentService();
  DocumentService(const DocumentService&) = delete;
  DocumentService& operator=(const DocumentService&) = delete;

  // Each job may carry the request's Ticket: it is not run once its request
  // is over, and its bytes count against XmlOptions::max_queued_bytes (a job
  // past that is refused at once with service_unavailable); one uid (the
  // ticket's owner) may have a quarter of the jobs and half the bytes. finish and
  // finish_cms carry none: the card has signed, so they are neither refused
  // nor dropped, and a signature made is not lost to a queue full of others'.
  [[nodiscard]] const XmlOptions& options() const;
  Task<std::shared_ptr<PreparedXml>> prepare(std::string document, Profile profile, Bytes certificate_der,
                                             Ticket ticket = {});
  Task<PreparedPrescription> prepare_prescription(std::string document, Bytes certificate_der, Ticket ticket = {});
  Task<std::string> finish(std::shared_ptr<PreparedXml> prepared, Bytes signature);
  Task<PreparedCms> prepare_cms(CmsInput input, Bytes certificate_der, std::vector<Bytes> chain, Ticket ticket = {});
  Task<Bytes> finish_cms(PreparedCms prepared, Bytes signature);
  Task<std::vector<XmlVerification>> verify_xml(std::string document, Ticket ticket = {});
  Task<CmsVerification> verify_cms(Bytes cms, std::optional<Bytes> content, std::optional<Bytes> content_digest,
                                   Ticket ticket = {});
  // verify_web_eid_token here: the key is the caller's, and so is what its
  // signature check costs.
  Task<WebEidCheck> verify_web_eid(WebEidToken token, std::string origin, std::string nonce, Ticket ticket = {});
  // Lets queued work finish and waits up to `timeout` for the thread to end
  // (shutdown). False if it is still busy.
  bool stop(std::chrono::milliseconds timeout);

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace kortti::signature
