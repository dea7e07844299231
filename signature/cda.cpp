#include <algorithm>
#include <cstring>

#include "common/codes.hpp"
#include "common/encoding.hpp"
#include "signature/xml_document.hpp"

namespace kortti::signature {

namespace {

constexpr const char* kAtc = "1.2.246.537.6.32.2007";
constexpr const char* kHetu = "1.2.246.21";
constexpr const char* kRegistrationNumber = "1.2.246.537.26";
constexpr const char* kPrescriberId = "1.2.246.537.25";

void collect_atc(xmlNode* node, std::vector<std::string>& out) {
  for (xmlNode* n = node; n != nullptr; n = n->next) {
    if (n->type != XML_ELEMENT_NODE) continue;
    if (is_element(n, kHl7Ns, "code") && attribute(n, "codeSystem") == kAtc) {
      const std::string code = attribute(n, "code");
      if (code.empty()) invalid_document("missing_atc", "an ATC code element (1.2.246.537.6.32.2007) has no code");
      // The rules compare codes by their standard form: 'n02aa01' or
      // ' N02AA01' would pass a restriction on N02AA01 unseen.
      if (!is_atc_code(code))
        invalid_document("invalid_atc", "an ATC code element (1.2.246.537.6.32.2007) has code '" + printable(code, 64) +
                                            "', which is not an ATC code (capital letters and digits, as N02AA01)");
      if (std::find(out.begin(), out.end(), code) == out.end()) out.push_back(code);
    }
    collect_atc(n->children, out);
  }
}

// The extension of the first <id root="..."> child of `parent`.
std::optional<std::string> id_with_root(xmlNode* parent, const char* root) {
  if (parent == nullptr) return std::nullopt;
  for (xmlNode* n = parent->children; n != nullptr; n = n->next)
    if (is_element(n, kHl7Ns, "id") && attribute(n, "root") == root) {
      const std::string ext = attribute(n, "extension");
      if (!ext.empty()) return ext;
    }
  return std::nullopt;
}

}  // namespace

PrescriptionFacts read_prescription(std::string_view document, const DocumentLimits& limits) {
  XmlDocPtr doc = parse_document(document, limits);
  return read_prescription(doc.get());
}

PrescriptionFacts read_prescription(xmlDoc* doc) {
  require_cda(doc);
  xmlNode* root = xmlDocGetRootElement(doc);
  PrescriptionFacts facts;
  collect_atc(first_child(root, kHl7Ns, "component"), facts.atc_codes);
  if (facts.atc_codes.empty())
    invalid_document("missing_atc",
                     "the prescription names no medicine by ATC code (code system 1.2.246.537.6.32.2007)");
  xmlNode* patient = first_child(first_child(root, kHl7Ns, "recordTarget"), kHl7Ns, "patientRole");
  facts.patient_id = id_with_root(patient, kHetu);
  // The prescriber is the (first) author.
  xmlNode* author = first_child(first_child(root, kHl7Ns, "author"), kHl7Ns, "assignedAuthor");
  if (author == nullptr) invalid_document("missing_author", "the prescription has no author/assignedAuthor");
  facts.author_registration_number = id_with_root(author, kRegistrationNumber);
  facts.author_prescriber_id = id_with_root(author, kPrescriberId);
  if (!facts.author_registration_number && !facts.author_prescriber_id)
    invalid_document(
        "missing_author",
        "the author has neither a registration number (1.2.246.537.26) nor a prescriber ID (1.2.246.537.25)");
  return facts;
}

}  // namespace kortti::signature
