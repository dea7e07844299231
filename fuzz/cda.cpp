// What sign.prescription reads from an e-prescription CDA: read_prescription
// on the input as a document, with the default limits and with small ones
// (so that the limits checked on the text before libxml2 are reached).
// A refused document is Error(document_invalid); anything else is a finding.

#include "common/error.hpp"
#include "fuzz/support.hpp"
#include "signature/signature.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  kortti::signature::initialise();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view document = kortti::fuzz::as_text(data, size);
  static const kortti::signature::DocumentLimits small{
      .max_bytes = 4096, .max_attributes_per_element = 4, .max_nodes = 200, .max_depth = 12};
  for (const auto& limits : {kortti::signature::DocumentLimits{}, small}) {
    try {
      (void)kortti::signature::read_prescription(document, limits);
    } catch (const kortti::Error&) {
    } catch (const std::exception& e) {
      kortti::fuzz::unexpected_exception("cda", e);
    }
  }
  return 0;
}
