#pragma once

// Internal to signature/ (docs/architecture.md, Layering); include signature/signature.hpp.
#if !defined(KORTTI_COMPONENT_SIGNATURE) && !defined(KORTTI_WHITE_BOX)
#error "signature/xml_document.hpp is internal to signature/; include signature/signature.hpp"
#endif

// Parsing a document that came from a client: bounded, no network, no DTD,
// UTF-8 only. Every refusal is Error(document_invalid) with a stable detail.

// xmlsec.h first: the other xmlsec headers need its types.
#include <xmlsec/xmlsec.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/uri.h>
#include <libxml/xmlIO.h>
#include <xmlsec/xmldsig.h>

#include <string>
#include <string_view>

#include "common/owned.hpp"
#include "signature/signature.hpp"

namespace kortti::signature {

inline constexpr const char* kHl7Ns = "urn:hl7-org:v3";
inline constexpr const char* kHl7fiNs = "urn:hl7finland";
inline constexpr const char* kDsigNs = "http://www.w3.org/2000/09/xmldsig#";

namespace xml_detail {

// xmlFree is a function pointer variable (behind a macro in threaded builds),
// so not a template argument itself.
inline void free_memory(void* p) noexcept { xmlFree(p); }

}  // namespace xml_detail

// Owning pointers for libxml2 and xmlsec (common/owned.hpp); common/ does not
// see these libraries.
using XmlDocPtr = Owned<xmlDoc, xmlFreeDoc>;
using XmlParserCtxtPtr = Owned<xmlParserCtxt, xmlFreeParserCtxt>;
using XmlUriPtr = Owned<xmlURI, xmlFreeURI>;
using XmlOutputBufferPtr = Owned<xmlOutputBuffer, xmlOutputBufferClose>;
// What libxml2 hands over as text: xmlGetNoNsProp, xmlNodeGetContent,
// xmlNodeListGetString, xmlDocDumpMemoryEnc.
using XmlStringPtr = Owned<xmlChar, xml_detail::free_memory>;
using DsigCtxPtr = Owned<xmlSecDSigCtx, xmlSecDSigCtxDestroy>;
using DsigReferenceCtxPtr = Owned<xmlSecDSigReferenceCtx, xmlSecDSigReferenceCtxDestroy>;

[[noreturn]] void invalid_document(const std::string& detail, const std::string& message);

// Parses `text`; registers every attribute named ID or Id as an XML ID
// (refusing duplicates, which would let a reference point at a decoy).
XmlDocPtr parse_document(std::string_view text, const DocumentLimits& limits);

// The root must be hl7:ClinicalDocument with a component/structuredBody.
void require_cda(xmlDoc* doc);

bool is_element(const xmlNode* node, const char* ns, const char* name);
xmlNode* first_child(xmlNode* parent, const char* ns, const char* name);
std::string attribute(const xmlNode* node, const char* name);
std::string text_of(const xmlNode* node);

// How long a document's canonical form may grow: four times the document
// and 1 MiB. c14n writes a namespace declaration again on every element
// that uses it below one that does not (exc-c14n) or on the subtree's top
// (c14n): a long declaration used by many elements would otherwise make a
// 1 MB document gigabytes. Honest documents stay within twice their size.
std::size_t canonical_limit(std::size_t document_bytes);

// c14n without comments (libxml2 xmlC14NMode `mode`) of one element and its
// subtree, or of the whole document when `element` is null; past `limit`
// bytes the document is invalid (canonical_too_large).
Bytes canonical(xmlDoc* doc, xmlNode* element, int mode, std::size_t limit);
// The same for exc-c14n of `element` (the whole document when null),
// counted and not kept: before xmlsec, which streams it into a digest,
// computes a reference to it. A subtree's exc-c14n may be far longer than
// its part of the whole document's: a namespace its ancestors use is
// written again at each of its elements that use it.
void check_canonical_size(xmlDoc* doc, xmlNode* element, std::size_t limit);

// The octets the Kanta body reference digests: URI="", exc-c14n, the XPath
// filter ancestor-or-self::hl7:structuredBody, then (the result being a node
// set) inclusive c14n. xmlsec evaluates such a filter as a node set searched
// linearly for every node — seconds at 1 MB, hours at 10 MB; this is linear.
Bytes kanta_body_octets(xmlDoc* doc, std::size_t limit);

// The facts of a parsed e-prescription (checked to be a CDA first).
PrescriptionFacts read_prescription(xmlDoc* doc);

// The document as UTF-8 text, with an XML declaration.
std::string serialise(xmlDoc* doc);

}  // namespace kortti::signature
