// verify.xml: verify_xml on the input as a document, with the default limits.
// Every refusal is Error(document_invalid) or Error(unsupported); anything
// else is a finding.

#include "common/error.hpp"
#include "fuzz/support.hpp"
#include "signature/signature.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  kortti::signature::initialise();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    (void)kortti::signature::verify_xml(kortti::fuzz::as_text(data, size), kortti::signature::DocumentLimits{});
  } catch (const kortti::Error&) {
  } catch (const std::exception& e) {
    kortti::fuzz::unexpected_exception("xml_verify", e);
  }
  return 0;
}
