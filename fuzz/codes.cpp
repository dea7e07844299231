// The code sets of `korttid registry import-codes`: import_codes on the input
// as CSV (header code,name,valid_from,valid_to, RFC 4180 quoting) and as JSON
// Lines, into an in-memory registry. The first byte picks the set and the
// form. A bad file is std::invalid_argument("line N: ..."); anything else is
// a finding.

#include <spdlog/spdlog.h>

#include <sstream>

#include "fuzz/support.hpp"
#include "policy/policy.hpp"

namespace {

kortti::policy::Registry& registry() {
  static kortti::policy::Registry r(":memory:");
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  (void)registry();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const char* const kSets[] = {"rights", "restriction_targets", "medicine_classes"};
  const char* set = kSets[(data[0] >> 1) % 3];
  const bool csv = (data[0] & 1) == 0;
  std::istringstream in(std::string(kortti::fuzz::as_text(data + 1, size - 1)));
  try {
    (void)registry().import_codes(set, in, csv);
  } catch (const std::invalid_argument&) {
  } catch (const std::exception& e) {
    kortti::fuzz::unexpected_exception("codes", e);
  }
  return 0;
}
