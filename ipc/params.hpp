#pragma once

// Internal to ipc/ (docs/architecture.md, Layering); include ipc/ipc.hpp.
#if !defined(KORTTI_COMPONENT_IPC) && !defined(KORTTI_WHITE_BOX)
#error "ipc/params.hpp is internal to ipc/; include ipc/ipc.hpp"
#endif

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "common/json.hpp"
#include "pkcs11/pkcs11.hpp"

namespace kortti::ipc {

// Typed access to a request's params. Every problem is an invalid_params
// error that names the parameter and what was expected.
class Params {
 public:
  explicit Params(Json& params) : params_(params) {}

  [[nodiscard]] const Json* find(std::string_view key) const;
  [[nodiscard]] std::string string(std::string_view key) const;
  [[nodiscard]] std::optional<std::string> optional_string(std::string_view key) const;
  // A token_id or cert_id (docs/protocol.md, Identifiers): 1 to 512 of
  // [A-Za-z0-9._/-]. Checked before anything is looked up, so that no
  // log or audit line carries what a client made up beyond that.
  [[nodiscard]] std::string identifier(std::string_view key) const;
  [[nodiscard]] std::optional<std::string> optional_identifier(std::string_view key) const;
  [[nodiscard]] bool boolean(std::string_view key, bool fallback) const;
  [[nodiscard]] std::int64_t integer(std::string_view key, std::int64_t fallback, std::int64_t min,
                                     std::int64_t max) const;
  [[nodiscard]] Bytes base64(std::string_view key) const;
  [[nodiscard]] std::optional<Bytes> optional_base64(std::string_view key) const;
  [[nodiscard]] std::vector<std::string> string_array(std::string_view key) const;
  [[nodiscard]] DigestAlgorithm digest_algorithm(std::string_view key, std::optional<DigestAlgorithm> fallback) const;
  [[nodiscard]] std::optional<pkcs11::Scheme> scheme(std::string_view key) const;

  // Takes "pin" out of the request (its JSON copy is wiped) and "pinpad".
  [[nodiscard]] pkcs11::Credentials credentials();
  // A PIN-like member, moved into secure memory and wiped from the request.
  [[nodiscard]] std::optional<SecretString> secret(std::string_view key);

 private:
  Json& params_;
};

[[noreturn]] void invalid_param(std::string_view key, std::string_view expectation);

}  // namespace kortti::ipc
