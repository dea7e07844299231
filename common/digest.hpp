#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <openssl/types.h>

#include "common/bytes.hpp"

namespace kortti {

enum class DigestAlgorithm { sha256, sha384, sha512 };

std::optional<DigestAlgorithm> parse_digest_algorithm(std::string_view name);
std::string_view name_of(DigestAlgorithm alg) noexcept;
std::size_t digest_size(DigestAlgorithm alg) noexcept;
const EVP_MD* evp_md(DigestAlgorithm alg) noexcept;

Bytes digest(DigestAlgorithm alg, ByteView data);

// What the audit log records instead of a document: its SHA-256, hex.
std::string sha256_hex(ByteView data);

// `bytes` from OpenSSL's generator, hex: ids that name one event (an
// internal error's log line, a signature's audit lines, an XML element).
// Throws std::runtime_error when the generator fails.
std::string random_hex(std::size_t bytes);

}  // namespace kortti
