#include "common/error.hpp"

#include <spdlog/spdlog.h>

#include "common/digest.hpp"
#include "common/encoding.hpp"

namespace kortti {

Error internal_error(std::string_view where, std::string_view what) {
  std::string id = "unknown";
  try {
    id = random_hex(6);
  } catch (const std::exception&) {
    // The error is still reported, under a name that says its id is lost.
  }
  spdlog::error("internal error {} in {}: {}", id, where, printable(what, 1024));
  Error error(Errc::internal_error, "internal error; the korttid log has the details under " + id);
  error.correlation_id = id;
  return error;
}

std::string_view reason_of(Errc code) noexcept {
  switch (code) {
    case Errc::parse_error:
      return "parse_error";
    case Errc::invalid_request:
      return "invalid_request";
    case Errc::method_not_found:
      return "method_not_found";
    case Errc::invalid_params:
      return "invalid_params";
    case Errc::internal_error:
      return "internal_error";
    case Errc::reader_not_found:
      return "reader_not_found";
    case Errc::token_not_found:
      return "token_not_found";
    case Errc::not_found:
      return "not_found";
    case Errc::pin_required:
      return "pin_required";
    case Errc::pin_incorrect:
      return "pin_incorrect";
    case Errc::pin_locked:
      return "pin_locked";
    case Errc::pin_entry_cancelled:
      return "pin_entry_cancelled";
    case Errc::card_removed:
      return "card_removed";
    case Errc::token_busy:
      return "token_busy";
    case Errc::policy_denied:
      return "policy_denied";
    case Errc::certificate_invalid:
      return "certificate_invalid";
    case Errc::permission_denied:
      return "permission_denied";
    case Errc::unsupported:
      return "unsupported";
    case Errc::document_invalid:
      return "document_invalid";
    case Errc::service_unavailable:
      return "service_unavailable";
  }
  return "internal_error";
}

}  // namespace kortti
