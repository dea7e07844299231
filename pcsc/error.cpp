#include <cstdio>

#include "pcsc/pcsc.hpp"

namespace kortti::pcsc {

std::string code_name(LONG code) {
  switch (static_cast<unsigned long>(code)) {
#define KORTTI_SCARD(name)               \
  case static_cast<unsigned long>(name): \
    return #name;
    KORTTI_SCARD(SCARD_S_SUCCESS)
    KORTTI_SCARD(SCARD_E_CANCELLED)
    KORTTI_SCARD(SCARD_E_INVALID_HANDLE)
    KORTTI_SCARD(SCARD_E_INVALID_PARAMETER)
    KORTTI_SCARD(SCARD_E_NO_MEMORY)
    KORTTI_SCARD(SCARD_E_INSUFFICIENT_BUFFER)
    KORTTI_SCARD(SCARD_E_UNKNOWN_READER)
    KORTTI_SCARD(SCARD_E_TIMEOUT)
    KORTTI_SCARD(SCARD_E_SHARING_VIOLATION)
    KORTTI_SCARD(SCARD_E_NO_SMARTCARD)
    KORTTI_SCARD(SCARD_E_UNKNOWN_CARD)
    KORTTI_SCARD(SCARD_E_PROTO_MISMATCH)
    KORTTI_SCARD(SCARD_E_NOT_READY)
    KORTTI_SCARD(SCARD_E_SYSTEM_CANCELLED)
    KORTTI_SCARD(SCARD_E_NOT_TRANSACTED)
    KORTTI_SCARD(SCARD_E_READER_UNAVAILABLE)
    KORTTI_SCARD(SCARD_E_NO_SERVICE)
    KORTTI_SCARD(SCARD_E_SERVICE_STOPPED)
    KORTTI_SCARD(SCARD_E_NO_READERS_AVAILABLE)
    KORTTI_SCARD(SCARD_E_UNSUPPORTED_FEATURE)
    KORTTI_SCARD(SCARD_W_UNRESPONSIVE_CARD)
    KORTTI_SCARD(SCARD_W_UNPOWERED_CARD)
    KORTTI_SCARD(SCARD_W_RESET_CARD)
    KORTTI_SCARD(SCARD_W_REMOVED_CARD)
    KORTTI_SCARD(SCARD_F_COMM_ERROR)
    KORTTI_SCARD(SCARD_F_INTERNAL_ERROR)
#undef KORTTI_SCARD
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "SCARD_0x%08lX", static_cast<unsigned long>(code));
      return buf;
    }
  }
}

namespace {

std::string describe(LONG code, const char* call, const std::source_location& where) {
  std::string file = where.file_name();
  if (auto slash = file.rfind('/'); slash != std::string::npos) file = file.substr(slash + 1);
  return std::string(call) + ": " + code_name(code) + " (" + pcsc_stringify_error(code) + ") at " + file + ":" +
         std::to_string(where.line());
}

}  // namespace

Error::Error(LONG code, const char* call, std::source_location where)
    : std::runtime_error(describe(code, call, where)), code_(code), call_(call) {}

bool Error::service_gone() const noexcept {
  return code_ == static_cast<LONG>(SCARD_E_NO_SERVICE) || code_ == static_cast<LONG>(SCARD_E_SERVICE_STOPPED) ||
         code_ == static_cast<LONG>(SCARD_F_COMM_ERROR);
}

bool Error::card_gone() const noexcept {
  return code_ == static_cast<LONG>(SCARD_W_REMOVED_CARD) || code_ == static_cast<LONG>(SCARD_E_NO_SMARTCARD) ||
         code_ == static_cast<LONG>(SCARD_W_UNPOWERED_CARD) || code_ == static_cast<LONG>(SCARD_E_READER_UNAVAILABLE);
}

void check(LONG code, const char* call, std::source_location where) {
  if (code != static_cast<LONG>(SCARD_S_SUCCESS)) throw Error(code, call, where);
}

}  // namespace kortti::pcsc
