#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/bytes.hpp"

namespace kortti {

// RFC 4648 base64, standard alphabet, with padding.
std::string base64_encode(ByteView data);
// Strict: rejects whitespace, other alphabets, bad padding and non-zero pad bits.
std::optional<Bytes> base64_decode(std::string_view text);

std::string hex_encode(ByteView data, bool upper = false);
std::optional<Bytes> hex_decode(std::string_view text);

// Whether `text` is well-formed UTF-8 (RFC 3629: no overlongs, surrogates or
// code points past U+10FFFF). What clients send, what cards say and what
// documents hold reach logs, audit lines and answers; only this may.
bool valid_utf8(std::string_view text) noexcept;
// The longest prefix of `text` of at most `max_bytes` that does not split a
// UTF-8 character.
std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) noexcept;
// Whether `text` is well-formed UTF-8 without control characters: C0, DEL,
// C1, and the bidirectional embeddings, overrides and isolates (which can
// make a text read as another).
bool plain_text(std::string_view text) noexcept;
// `text` made fit for a log line or a dialog: invalid UTF-8 and the control
// characters plain_text() refuses become U+FFFD, and it is cut (at a
// character) to about `max_bytes`.
std::string printable(std::string_view text, std::size_t max_bytes = 256);
// `text` made safe for a terminal, whole: as printable(), but with its line
// breaks and tabs kept and nothing cut.
std::string displayable(std::string_view text);
// `text` with its ASCII letters in lower case (other bytes as they are):
// for names compared without case (HTTP headers, hosts, labels).
std::string ascii_lower(std::string_view text);
// The length of the incomplete UTF-8 character `text` ends with (0-3):
// what a writer of pieces keeps until the rest arrives.
std::size_t utf8_incomplete_tail(std::string_view text) noexcept;

}  // namespace kortti
