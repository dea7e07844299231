// Canonical XML with libxml2, and the Kanta body reference computed without
// xmlsec's quadratic node-set search.

#include <libxml/c14n.h>
#include <libxml/parser.h>

#include <stdexcept>

#include "signature/xml_document.hpp"

namespace kortti::signature {

namespace {

int visible_in(void* subtree, xmlNode* node, xmlNode* parent) {
  const xmlNode* n = node == nullptr || node->type == XML_NAMESPACE_DECL ? parent : node;
  for (; n != nullptr; n = n->parent)
    if (n == subtree) return 1;
  return 0;
}

int visible_all(void*, xmlNode*, xmlNode*) { return 1; }

}  // namespace

Bytes canonical(xmlDoc* doc, xmlNode* element, int mode) {
  const XmlOutputBufferPtr out(xmlAllocOutputBuffer(nullptr));
  if (!out) throw std::bad_alloc();
  const int rc =
      xmlC14NExecute(doc, element != nullptr ? visible_in : visible_all, element, mode, nullptr, 0, out.get());
  Bytes bytes;
  if (rc >= 0) {
    const auto* p = xmlOutputBufferGetContent(out.get());
    bytes.assign(p, p + xmlOutputBufferGetSize(out.get()));
  }
  if (rc < 0) throw std::runtime_error("c14n failed");
  return bytes;
}

// The same steps as the transforms, in the same order: the canonical octets
// are parsed again, as the XPath transform's input is; each node's membership
// in structuredBody is a walk up its ancestors.
Bytes kanta_body_octets(xmlDoc* doc) {
  const Bytes exclusive = canonical(doc, nullptr, XML_C14N_EXCLUSIVE_1_0);
  XmlDocPtr reparsed(xmlReadMemory(reinterpret_cast<const char*>(exclusive.data()), static_cast<int>(exclusive.size()),
                                   nullptr, "UTF-8", XML_PARSE_NONET));
  if (!reparsed) throw std::runtime_error("the canonical document does not parse again");
  xmlNode* component = first_child(xmlDocGetRootElement(reparsed.get()), kHl7Ns, "component");
  xmlNode* body = component != nullptr ? first_child(component, kHl7Ns, "structuredBody") : nullptr;
  if (body == nullptr) throw std::runtime_error("structuredBody vanished in canonicalisation");
  return canonical(reparsed.get(), body, XML_C14N_1_0);
}

}  // namespace kortti::signature
