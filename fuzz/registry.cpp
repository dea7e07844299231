// A Valvira extract as `korttid registry import` reads it: import_professionals
// (the ExtractReader's line splitting, hashing and parse_professional per line,
// the duplicate check) into an in-memory registry, then every line that parses
// through to_json, which registry.lookup answers with, and back.
//
// A bad extract is std::invalid_argument("line N: ..."); anything else is a
// finding.

#include <spdlog/spdlog.h>

#include <sstream>

#include "fuzz/support.hpp"
#include "ipc/convert.hpp"
#include "policy/extract.hpp"
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
  const std::string text(kortti::fuzz::as_text(data, size));
  try {
    std::istringstream in(text);
    (void)registry().import_professionals(in, "fuzz");
  } catch (const std::invalid_argument&) {
  } catch (const std::exception& e) {
    kortti::fuzz::unexpected_exception("registry (import)", e);
  }
  // Line by line, as the lookups parse the stored lines again.
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (kortti::policy::blank_line(line)) continue;
    kortti::policy::Professional p;
    try {
      p = kortti::policy::parse_professional(std::string_view(line));
    } catch (const std::invalid_argument&) {
      continue;
    } catch (const std::exception& e) {
      kortti::fuzz::unexpected_exception("registry (line)", e);
    }
    try {
      // What a lookup answers must read back as the same professional.
      const kortti::Json answer = kortti::ipc::to_json(p);
      (void)answer.dump();
      const kortti::policy::Professional again = kortti::policy::parse_professional(answer);
      if (again.registration_number != p.registration_number || again.rights.size() != p.rights.size() ||
          again.restrictions.size() != p.restrictions.size())
        kortti::fuzz::unexpected_exception("registry (round trip)", std::logic_error("to_json lost a field"));
    } catch (const std::exception& e) {
      kortti::fuzz::unexpected_exception("registry (to_json)", e);
    }
  }
  return 0;
}
