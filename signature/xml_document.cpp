#include "signature/xml_document.hpp"

#include <libxml/parser.h>
#include <libxml/valid.h>

#include <cctype>
#include <cstdint>
#include <cstring>
#include <set>

#include "common/error.hpp"

namespace kortti::signature {

namespace {

// RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  while (i < s.size()) {
    const unsigned char c = p[i];
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07u;
    } else {
      return false;
    }
    for (std::size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size() || (p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

// The encoding named in the XML declaration, if any.
std::string declared_encoding(std::string_view text) {
  if (text.rfind("<?xml", 0) != 0) return {};
  const auto end = text.find("?>");
  const std::string_view decl = text.substr(0, end);
  const auto at = decl.find("encoding");
  if (at == std::string_view::npos) return {};
  const auto quote = decl.find_first_of("\"'", at);
  if (quote == std::string_view::npos) return {};
  const auto close = decl.find(decl[quote], quote + 1);
  std::string name(decl.substr(quote + 1, close - quote - 1));
  for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return name;
}

void silent(void*, xmlErrorPtr) {}

void register_ids(xmlDoc* doc, xmlNode* node, std::set<std::string>& seen) {
  for (xmlNode* n = node; n != nullptr; n = n->next) {
    if (n->type != XML_ELEMENT_NODE) continue;
    for (xmlAttr* a = n->properties; a != nullptr; a = a->next) {
      if (a->ns != nullptr) continue;
      const char* name = reinterpret_cast<const char*>(a->name);
      if (std::strcmp(name, "ID") != 0 && std::strcmp(name, "Id") != 0) continue;
      xmlChar* value = xmlNodeListGetString(doc, a->children, 1);
      const std::string id = value != nullptr ? reinterpret_cast<const char*>(value) : "";
      if (!seen.insert(id).second) {
        xmlFree(value);
        invalid_document("duplicate_id", "the ID '" + id + "' appears twice in the document");
      }
      if (xmlGetID(doc, value) == nullptr) xmlAddID(nullptr, doc, value, a);
      xmlFree(value);
    }
    register_ids(doc, n->children, seen);
  }
}

}  // namespace

void invalid_document(const std::string& detail, const std::string& message) {
  throw Error(Errc::document_invalid, message).with_detail(detail);
}

XmlDocPtr parse_document(std::string_view text, const DocumentLimits& limits) {
  if (text.empty()) invalid_document("empty", "the document is empty");
  if (text.size() > limits.max_bytes)
    invalid_document("too_large", "the document is " + std::to_string(text.size()) + " bytes, more than the limit of " +
                                      std::to_string(limits.max_bytes));
  if (!valid_utf8(text)) invalid_document("not_utf8", "the document is not valid UTF-8");
  if (const auto enc = declared_encoding(text); !enc.empty() && enc != "utf-8")
    invalid_document("not_utf8", "the document declares encoding '" + enc + "'; only UTF-8 is accepted");
  // No DTD at all: it is the door to external entities and entity expansion.
  if (text.find("<!DOCTYPE") != std::string_view::npos || text.find("<!ENTITY") != std::string_view::npos)
    invalid_document("dtd_not_allowed", "the document has a DOCTYPE or ENTITY declaration; DTDs are not accepted");

  std::unique_ptr<xmlParserCtxt, decltype(&xmlFreeParserCtxt)> ctxt(xmlNewParserCtxt(), xmlFreeParserCtxt);
  if (!ctxt) throw std::bad_alloc();
  ctxt->sax->serror = silent;  // errors are reported in the answer, not on stderr
  // NONET: never fetch anything. Without NOENT/DTDLOAD/DTDATTR nothing
  // external is loaded or substituted; without HUGE libxml2 keeps its depth
  // and text-size limits.
  XmlDocPtr doc(xmlCtxtReadMemory(ctxt.get(), text.data(), static_cast<int>(text.size()), "document.xml", "UTF-8",
                                  XML_PARSE_NONET));
  if (!doc || ctxt->wellFormed == 0) {
    const xmlError* e = xmlCtxtGetLastError(ctxt.get());
    std::string why = e != nullptr && e->message != nullptr ? e->message : "not well-formed";
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    const bool deep = e != nullptr && e->code == XML_ERR_INTERNAL_ERROR && why.find("depth") != std::string::npos;
    invalid_document(deep ? "too_deep" : "not_well_formed",
                     "the document is not well-formed XML" +
                         (e != nullptr ? " at line " + std::to_string(e->line) : "") + ": " + why);
  }
  if (doc->intSubset != nullptr || doc->extSubset != nullptr)
    invalid_document("dtd_not_allowed", "the document has a DTD; DTDs are not accepted");
  std::set<std::string> seen;
  register_ids(doc.get(), xmlDocGetRootElement(doc.get()), seen);
  return doc;
}

bool is_element(const xmlNode* node, const char* ns, const char* name) {
  return node != nullptr && node->type == XML_ELEMENT_NODE && node->ns != nullptr &&
         std::strcmp(reinterpret_cast<const char*>(node->ns->href), ns) == 0 &&
         std::strcmp(reinterpret_cast<const char*>(node->name), name) == 0;
}

xmlNode* first_child(xmlNode* parent, const char* ns, const char* name) {
  if (parent == nullptr) return nullptr;
  for (xmlNode* n = parent->children; n != nullptr; n = n->next)
    if (is_element(n, ns, name)) return n;
  return nullptr;
}

std::string attribute(const xmlNode* node, const char* name) {
  xmlChar* v = xmlGetNoNsProp(node, reinterpret_cast<const xmlChar*>(name));
  if (v == nullptr) return {};
  std::string out(reinterpret_cast<const char*>(v));
  xmlFree(v);
  return out;
}

std::string text_of(const xmlNode* node) {
  xmlChar* v = xmlNodeGetContent(node);
  if (v == nullptr) return {};
  std::string out(reinterpret_cast<const char*>(v));
  xmlFree(v);
  return out;
}

void require_cda(xmlDoc* doc) {
  xmlNode* root = xmlDocGetRootElement(doc);
  if (root == nullptr || std::strcmp(reinterpret_cast<const char*>(root->name), "ClinicalDocument") != 0)
    invalid_document("not_cda", "the document is not an HL7 CDA: its root is not ClinicalDocument");
  if (!is_element(root, kHl7Ns, "ClinicalDocument"))
    invalid_document("wrong_namespace", "ClinicalDocument is not in the HL7 v3 namespace (urn:hl7-org:v3)");
  xmlNode* body = first_child(first_child(root, kHl7Ns, "component"), kHl7Ns, "structuredBody");
  if (body == nullptr)
    invalid_document("no_structured_body", "the CDA has no component/structuredBody, which the signature covers");
}

std::string serialise(xmlDoc* doc) {
  xmlChar* mem = nullptr;
  int size = 0;
  xmlDocDumpMemoryEnc(doc, &mem, &size, "UTF-8");
  if (mem == nullptr) throw std::bad_alloc();
  std::string out(reinterpret_cast<const char*>(mem), static_cast<std::size_t>(size));
  xmlFree(mem);
  return out;
}

}  // namespace kortti::signature
