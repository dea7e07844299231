#include "signature/xml_document.hpp"

#include <libxml/parser.h>
#include <libxml/uri.h>
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
  // After a UTF-8 byte order mark too: libxml2 reads the declaration there.
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.remove_prefix(3);
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

// Linear in the text, before libxml2 sees it: counts what libxml2 would
// spend quadratic time (attributes of one element) or memory (nodes) on.
// Exact for well-formed XML; on anything else libxml2 stops at the first
// error, so a count thrown off by broken markup cannot let more through.
void prescan(std::string_view text, const DocumentLimits& limits) {
  std::size_t nodes = 0;
  std::size_t depth = 0;
  auto skip_past = [&](std::size_t from, std::string_view end) {
    const auto at = text.find(end, from);
    return at == std::string_view::npos ? text.size() : at + end.size();
  };
  auto count_node = [&] {
    if (++nodes > limits.max_nodes)
      invalid_document("too_many_nodes", "the document has more than " + std::to_string(limits.max_nodes) +
                                             " elements, attributes, comments and processing instructions");
  };
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lt = text.find('<', i);
    if (lt == std::string_view::npos) break;
    const std::string_view rest = text.substr(lt);
    if (rest.starts_with("<!--")) {
      count_node();
      i = skip_past(lt + 4, "-->");
    } else if (rest.starts_with("<![CDATA[")) {
      i = skip_past(lt + 9, "]]>");
    } else if (rest.starts_with("<?")) {
      count_node();
      i = skip_past(lt + 2, "?>");
    } else if (rest.starts_with("</")) {
      if (depth > 0) --depth;
      i = skip_past(lt + 2, ">");
    } else if (rest.starts_with("<!")) {
      i = skip_past(lt + 2, ">");
    } else {
      count_node();
      std::size_t attributes = 0;
      char quote = 0;
      char last = 0;
      std::size_t k = lt + 1;
      for (; k < text.size(); ++k) {
        const char ch = text[k];
        if (quote != 0) {
          if (ch == quote) quote = 0;
        } else if (ch == '"' || ch == '\'') {
          quote = ch;
        } else if (ch == '=') {
          count_node();
          if (++attributes > limits.max_attributes_per_element)
            invalid_document("too_many_attributes", "an element has more than " +
                                                        std::to_string(limits.max_attributes_per_element) +
                                                        " attributes and namespace declarations");
        } else if (ch == '>') {
          break;
        }
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') last = ch;
      }
      if (last != '/' && ++depth > limits.max_depth)
        invalid_document("too_deep",
                         "the document nests elements more than " + std::to_string(limits.max_depth) + " levels deep");
      i = k + 1;
    }
  }
}

// libxml2's c14n refuses relative namespace URIs, and every signature and
// digest goes through c14n; they are deprecated by Namespaces in XML anyway.
void require_absolute_namespaces(xmlNode* node) {
  for (xmlNode* n = node; n != nullptr; n = n->next) {
    if (n->type != XML_ELEMENT_NODE) continue;
    for (xmlNs* ns = n->nsDef; ns != nullptr; ns = ns->next) {
      const std::string_view href = ns->href != nullptr ? reinterpret_cast<const char*>(ns->href) : "";
      if (href.empty()) continue;
      const XmlUriPtr uri(xmlParseURI(reinterpret_cast<const char*>(ns->href)));
      if (!uri || uri->scheme == nullptr)
        invalid_document("relative_namespace", "the namespace name '" + std::string(href) +
                                                   "' is not an absolute URI; canonical XML cannot sign it");
    }
    require_absolute_namespaces(n->children);
  }
}

bool is_id_attribute(const xmlAttr* a) {
  const char* name = reinterpret_cast<const char*>(a->name);
  if (a->ns == nullptr) return std::strcmp(name, "ID") == 0 || std::strcmp(name, "Id") == 0;
  // xml:id is an ID to libxml2 (the parser registers it), so a reference
  // "#x" could resolve to it; ID or Id in another namespace (wsu:Id) is one
  // to other tools.
  if (std::strcmp(reinterpret_cast<const char*>(a->ns->href), reinterpret_cast<const char*>(XML_XML_NAMESPACE)) == 0)
    return std::strcmp(name, "id") == 0;
  return std::strcmp(name, "ID") == 0 || std::strcmp(name, "Id") == 0;
}

void register_ids(xmlDoc* doc, xmlNode* node, std::set<std::string>& seen) {
  for (xmlNode* n = node; n != nullptr; n = n->next) {
    if (n->type != XML_ELEMENT_NODE) continue;
    for (xmlAttr* a = n->properties; a != nullptr; a = a->next) {
      if (!is_id_attribute(a)) continue;
      const XmlStringPtr value(xmlNodeListGetString(doc, a->children, 1));
      const std::string id = value ? reinterpret_cast<const char*>(value.get()) : "";
      if (!seen.insert(id).second)
        invalid_document("duplicate_id", "the ID '" + id + "' appears twice in the document");
      if (a->ns == nullptr && xmlGetID(doc, value.get()) == nullptr) xmlAddID(nullptr, doc, value.get(), a);
    }
    register_ids(doc, n->children, seen);
  }
}

void count_bodies(xmlNode* node, std::size_t& count) {
  for (xmlNode* n = node; n != nullptr; n = n->next) {
    if (n->type != XML_ELEMENT_NODE) continue;
    if (is_element(n, kHl7Ns, "structuredBody")) ++count;
    count_bodies(n->children, count);
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
  // No XML character, and what makes the parser take the bytes for UTF-16
  // or UCS-4, which it is not told otherwise (below).
  if (text.find('\0') != std::string_view::npos)
    invalid_document("not_well_formed", "the document has a NUL byte, which XML does not allow");
  if (const auto enc = declared_encoding(text); !enc.empty() && enc != "utf-8")
    invalid_document("not_utf8", "the document declares encoding '" + enc + "'; only UTF-8 is accepted");
  // No DTD at all: it is the door to external entities and entity expansion.
  if (text.find("<!DOCTYPE") != std::string_view::npos || text.find("<!ENTITY") != std::string_view::npos)
    invalid_document("dtd_not_allowed", "the document has a DOCTYPE or ENTITY declaration; DTDs are not accepted");
  prescan(text, limits);

  const XmlParserCtxtPtr ctxt(xmlNewParserCtxt());
  if (!ctxt) throw std::bad_alloc();
  ctxt->sax->serror = silent;  // errors are reported in the answer, not on stderr
  // NONET: never fetch anything. Without NOENT/DTDLOAD/DTDATTR nothing
  // external is loaded or substituted; without HUGE libxml2 keeps its depth
  // and text-size limits. No encoding is named: the text is UTF-8 (checked
  // above), and libxml2 2.9.14 sends a named one through a converter that
  // stops at 10,000,000 bytes of input ("Huge input lookup").
  XmlDocPtr doc(xmlCtxtReadMemory(ctxt.get(), text.data(), static_cast<int>(text.size()), "document.xml", nullptr,
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
  // libxml2 only warns about namespace errors (a prefix with a colon, an
  // undeclared prefix); XML-DSig's canonical form needs namespace-well-formed
  // XML, or a document korttid signs is one it cannot verify.
  if (ctxt->nsWellFormed == 0) {
    const xmlError* e = xmlCtxtGetLastError(ctxt.get());
    std::string why = e != nullptr && e->message != nullptr ? e->message : "a namespace error";
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    invalid_document("not_namespace_well_formed", "the document's namespaces are not well-formed" +
                                                      (e != nullptr ? " at line " + std::to_string(e->line) : "") +
                                                      ": " + why);
  }
  if (doc->intSubset != nullptr || doc->extSubset != nullptr)
    invalid_document("dtd_not_allowed", "the document has a DTD; DTDs are not accepted");
  require_absolute_namespaces(xmlDocGetRootElement(doc.get()));
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
  const XmlStringPtr v(xmlGetNoNsProp(node, reinterpret_cast<const xmlChar*>(name)));
  if (!v) return {};
  return reinterpret_cast<const char*>(v.get());
}

std::string text_of(const xmlNode* node) {
  const XmlStringPtr v(xmlNodeGetContent(node));
  if (!v) return {};
  return reinterpret_cast<const char*>(v.get());
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
  // The Kanta body reference's filter, ancestor-or-self::hl7:structuredBody,
  // selects every structuredBody wherever it is; the facts and the linear
  // digest read the first. A second one would be read by nobody here and
  // shown by someone else: signature wrapping.
  std::size_t components = 0;
  for (xmlNode* n = root->children; n != nullptr; n = n->next) components += is_element(n, kHl7Ns, "component");
  std::size_t bodies = 0;
  count_bodies(root, bodies);
  if (components != 1 || bodies != 1)
    invalid_document("extra_body", "the CDA has " + std::to_string(components) + " component and " +
                                       std::to_string(bodies) +
                                       " structuredBody elements; exactly one ClinicalDocument/component/"
                                       "structuredBody is accepted");
}

std::string serialise(xmlDoc* doc) {
  xmlChar* mem = nullptr;
  int size = 0;
  xmlDocDumpMemoryEnc(doc, &mem, &size, "UTF-8");
  const XmlStringPtr owned(mem);
  if (!owned) throw std::bad_alloc();
  return std::string(reinterpret_cast<const char*>(mem), static_cast<std::size_t>(size));
}

}  // namespace kortti::signature
