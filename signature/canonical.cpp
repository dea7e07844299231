// Canonical XML with libxml2, and the Kanta body reference computed without
// xmlsec's quadratic node-set search.

#include <libxml/c14n.h>
#include <libxml/parser.h>
#include <libxml/xmlerror.h>

#include <exception>
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

// Where c14n writes: the octets (or only their count), no more than `limit`.
// Past it the write fails, and c14n with it.
struct Sink {
  Bytes* bytes = nullptr;  // null: counted only
  std::size_t written = 0;
  std::size_t limit = 0;
  bool over = false;
  std::exception_ptr failed{};  // nothing may be thrown through libxml2
};

int write_to(void* context, const char* data, int length) {
  auto* sink = static_cast<Sink*>(context);
  const auto n = static_cast<std::size_t>(length);
  if (sink->over || sink->failed) return -1;
  if (n > sink->limit - sink->written) {
    sink->over = true;
    return -1;
  }
  try {
    if (sink->bytes != nullptr) sink->bytes->insert(sink->bytes->end(), data, data + n);
  } catch (...) {
    sink->failed = std::current_exception();
    return -1;
  }
  sink->written += n;
  return length;
}

void quiet(void*, const char*, ...) {}

// libxml2 reports a failed write on stderr (korttid's journal, outside
// any log budget): not while c14n runs here. Its handler is per thread.
class QuietErrors {
 public:
  QuietErrors() : handler_(xmlGenericError), context_(xmlGenericErrorContext) {
    xmlSetGenericErrorFunc(nullptr, quiet);
  }
  ~QuietErrors() { xmlSetGenericErrorFunc(context_, handler_); }
  QuietErrors(const QuietErrors&) = delete;
  QuietErrors& operator=(const QuietErrors&) = delete;

 private:
  xmlGenericErrorFunc handler_;
  void* context_;
};

constexpr std::size_t kCanonicalTimes = 4;
constexpr std::size_t kCanonicalSlack = 1024 * 1024;

void run_c14n(xmlDoc* doc, xmlNode* element, int mode, Sink& sink) {
  const QuietErrors quiet_errors;
  int rc = -1;
  {
    const XmlOutputBufferPtr out(xmlOutputBufferCreateIO(write_to, nullptr, &sink, nullptr));
    if (!out) throw std::bad_alloc();
    rc = xmlC14NExecute(doc, element != nullptr ? visible_in : visible_all, element, mode, nullptr, 0, out.get());
  }  // closed (flushed) while errors are quiet
  if (sink.failed) std::rethrow_exception(sink.failed);
  if (sink.over)
    invalid_document("canonical_too_large",
                     "the document's canonical form (c14n) passes " + std::to_string(sink.limit) + " bytes, " +
                         std::to_string(kCanonicalTimes) + " times its size and " +
                         std::to_string(kCanonicalSlack >> 20) +
                         " MiB: a namespace declared far from where it is used is written again at every use");
  if (rc < 0) throw std::runtime_error("c14n failed");
}

}  // namespace

std::size_t canonical_limit(std::size_t document_bytes) { return kCanonicalTimes * document_bytes + kCanonicalSlack; }

Bytes canonical(xmlDoc* doc, xmlNode* element, int mode, std::size_t limit) {
  Bytes bytes;
  Sink sink{.bytes = &bytes, .limit = limit};
  run_c14n(doc, element, mode, sink);
  return bytes;
}

void check_canonical_size(xmlDoc* doc, xmlNode* element, std::size_t limit) {
  Sink sink{.limit = limit};
  run_c14n(doc, element, XML_C14N_EXCLUSIVE_1_0, sink);
}

// The same steps as the transforms, in the same order: the canonical octets
// are parsed again, as the XPath transform's input is; each node's membership
// in structuredBody is a walk up its ancestors.
Bytes kanta_body_octets(xmlDoc* doc, std::size_t limit) {
  const Bytes exclusive = canonical(doc, nullptr, XML_C14N_EXCLUSIVE_1_0, limit);
  XmlDocPtr reparsed(xmlReadMemory(reinterpret_cast<const char*>(exclusive.data()), static_cast<int>(exclusive.size()),
                                   nullptr, nullptr, XML_PARSE_NONET));  // UTF-8 (named, it stops at 10 MB)
  if (!reparsed) throw std::runtime_error("the canonical document does not parse again");
  xmlNode* component = first_child(xmlDocGetRootElement(reparsed.get()), kHl7Ns, "component");
  xmlNode* body = component != nullptr ? first_child(component, kHl7Ns, "structuredBody") : nullptr;
  if (body == nullptr) throw std::runtime_error("structuredBody vanished in canonicalisation");
  return canonical(reparsed.get(), body, XML_C14N_1_0, limit);
}

}  // namespace kortti::signature
