// The form of codes that come from outside (a request, a prescription's
// document): checked before any rule compares them, so that a code in
// another form cannot slip past a rule that looks for the standard one.
#pragma once

#include <string_view>

namespace kortti {

// An ATC code (WHO's Anatomical Therapeutic Chemical classification) at any
// of its five levels: N, N02, N02A, N02AA, N02AA01 (capital letters).
[[nodiscard]] constexpr bool is_atc_code(std::string_view code) {
  constexpr std::string_view shape = "ADDAADD";  // A: a capital letter, D: a digit
  if (code.size() != 1 && code.size() != 3 && code.size() != 4 && code.size() != 5 && code.size() != 7) return false;
  for (std::size_t i = 0; i < code.size(); ++i) {
    const char c = code[i];
    const bool ok = shape[i] == 'A' ? (c >= 'A' && c <= 'Z') : (c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

static_assert(is_atc_code("N02AA01") && is_atc_code("N02A") && is_atc_code("N"));
static_assert(!is_atc_code("n02aa01") && !is_atc_code(" N02AA01") && !is_atc_code("N02AA0") && !is_atc_code(""));

}  // namespace kortti
