#include "ipc/params.hpp"

#include <algorithm>

#include "common/encoding.hpp"
#include "ipc/jsonrpc.hpp"

namespace kortti::ipc {

namespace {
constexpr std::size_t kMaxPin = 64;
}

void invalid_param(std::string_view key, std::string_view expectation) {
  throw Error(Errc::invalid_params, "parameter '" + std::string(key) + "' " + std::string(expectation));
}

const Json* Params::find(std::string_view key) const {
  auto it = params_.find(wstr(key));
  return it == params_.end() || it->is_null() ? nullptr : &*it;
}

std::string Params::string(std::string_view key) const {
  auto v = optional_string(key);
  if (!v) invalid_param(key, "is required");
  return *v;
}

std::optional<std::string> Params::optional_string(std::string_view key) const {
  const Json* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) invalid_param(key, "must be a string");
  return to_std(v->get_ref<const WipingString&>());
}

std::string Params::identifier(std::string_view key) const {
  auto v = optional_identifier(key);
  if (!v) invalid_param(key, "is required");
  return *v;
}

std::optional<std::string> Params::optional_identifier(std::string_view key) const {
  constexpr std::size_t kMaxIdentifier = 512;
  auto v = optional_string(key);
  if (!v) return v;
  const bool fits = !v->empty() && v->size() <= kMaxIdentifier && std::all_of(v->begin(), v->end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-' || c == '/';
  });
  if (!fits)
    invalid_param(key, "must be an identifier as tokens.list and certificates.list give them (1 to " +
                           std::to_string(kMaxIdentifier) + " of A-Z a-z 0-9 . _ - /)");
  return v;
}

bool Params::boolean(std::string_view key, bool fallback) const {
  const Json* v = find(key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) invalid_param(key, "must be true or false");
  return v->get<bool>();
}

std::int64_t Params::integer(std::string_view key, std::int64_t fallback, std::int64_t min, std::int64_t max) const {
  const Json* v = find(key);
  if (v == nullptr) return fallback;
  if (!v->is_number_integer()) invalid_param(key, "must be an integer");
  const auto n = v->get<std::int64_t>();
  if (n < min || n > max) invalid_param(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  return n;
}

Bytes Params::base64(std::string_view key) const {
  auto v = optional_base64(key);
  if (!v) invalid_param(key, "is required");
  return std::move(*v);
}

std::optional<Bytes> Params::optional_base64(std::string_view key) const {
  const Json* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) invalid_param(key, "must be a base64 string");
  const auto& text = v->get_ref<const WipingString&>();
  auto bytes = base64_decode(std::string_view(text.data(), text.size()));
  if (!bytes) invalid_param(key, "is not valid base64 (RFC 4648, standard alphabet, padded)");
  return bytes;
}

std::vector<std::string> Params::string_array(std::string_view key) const {
  const Json* v = find(key);
  std::vector<std::string> out;
  if (v == nullptr) return out;
  if (!v->is_array()) invalid_param(key, "must be an array of strings");
  for (const auto& item : *v) {
    if (!item.is_string()) invalid_param(key, "must be an array of strings");
    out.push_back(to_std(item.get_ref<const WipingString&>()));
  }
  return out;
}

DigestAlgorithm Params::digest_algorithm(std::string_view key, std::optional<DigestAlgorithm> fallback) const {
  auto name = optional_string(key);
  if (!name) {
    if (fallback) return *fallback;
    invalid_param(key, "is required (sha256, sha384 or sha512)");
  }
  auto alg = parse_digest_algorithm(*name);
  if (!alg) invalid_param(key, "must be sha256, sha384 or sha512, not '" + echo(*name) + "'");
  return *alg;
}

std::optional<pkcs11::Scheme> Params::scheme(std::string_view key) const {
  auto name = optional_string(key);
  if (!name) return std::nullopt;
  auto s = pkcs11::parse_scheme(*name);
  if (!s) invalid_param(key, "must be pkcs1, pss or ecdsa, not '" + echo(*name) + "'");
  return s;
}

std::optional<SecretString> Params::secret(std::string_view key) {
  auto it = params_.find(key);
  if (it == params_.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) invalid_param(key, "must be a string");
  auto& text = it->get_ref<WipingString&>();
  if (text.empty() || text.size() > kMaxPin) {
    wipe_string(text);
    invalid_param(key, "must be 1 to " + std::to_string(kMaxPin) + " characters");
  }
  SecretString out = SecretString::take(text);
  params_.erase(it);
  return out;
}

pkcs11::Credentials Params::credentials() {
  pkcs11::Credentials c;
  c.pinpad = boolean("pinpad", false);
  c.final_try = boolean("final_try", false);
  c.prompt = boolean("pin_prompt", false);
  if (c.prompt && c.pinpad) throw Error(Errc::invalid_params, "give either 'pinpad' or 'pin_prompt', not both");
  c.pin = secret("pin");
  if (!c.pin) return c;
  if (c.pinpad) throw Error(Errc::invalid_params, "give either 'pin' or 'pinpad', not both");
  if (c.prompt) throw Error(Errc::invalid_params, "give either 'pin' or 'pin_prompt', not both");
  return c;
}

}  // namespace kortti::ipc
