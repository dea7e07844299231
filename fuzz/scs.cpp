// The SCS interface's request rules: a /sign body as a page sends it (the
// depth guard, the JSON parser, parse_sign_request, the authentication key's
// rule) and the header rules (Host, Content-Type) and DN comparison on the
// same bytes. None may throw: a bad request is a Refusal.

#include <spdlog/spdlog.h>

#include "common/json.hpp"
#include "fuzz/support.hpp"
#include "scs/rules.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kortti;
  const std::string_view text = fuzz::as_text(data, size);
  try {
    (void)scs::host_allowed(text, 53952);
    (void)scs::is_json_content_type(text);
    const auto half = text.size() / 2;
    (void)scs::same_name(text.substr(0, half), text.substr(half));
    if (json_cost(text, kMaxJsonNesting, kMaxJsonValues) != JsonCost::fine) return 0;
    const Json body = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) return 0;
    auto parsed = scs::parse_sign_request(body);
    if (auto* request = std::get_if<scs::SignRequest>(&parsed)) {
      (void)scs::check_authentication_use(*request, "https://ehr.example.fi");
      const std::vector<pkcs11::CertificateInfo> none;
      (void)scs::select_certificate(none, request->selector);
    }
  } catch (const std::exception& e) {
    fuzz::unexpected_exception("scs", e);
  }
  return 0;
}
