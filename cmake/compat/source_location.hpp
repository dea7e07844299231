#pragma once

// Force-included (-include) by cmake/Dependencies.cmake for clang 14. libstdc++ 12's
// <source_location> needs __builtin_source_location, which clang has from
// version 15: with Debian 12's clang 14 it declares nothing, and pcsc/
// (std::source_location in check()) does not compile. This fills in the
// same interface from the builtins clang 14 has. GCC builds never see it.

#if defined(__clang__) && __clang_major__ < 15
#include <cstdint>
#include <source_location>
#if defined(__GLIBCXX__) && !defined(__cpp_lib_source_location)

namespace std {

struct source_location {
  static constexpr source_location current(const char* file = __builtin_FILE(),
                                           const char* function = __builtin_FUNCTION(),
                                           std::uint_least32_t line = __builtin_LINE(),
                                           std::uint_least32_t column = __builtin_COLUMN()) noexcept {
    source_location here;
    here.file_ = file;
    here.function_ = function;
    here.line_ = line;
    here.column_ = column;
    return here;
  }
  constexpr source_location() noexcept = default;
  [[nodiscard]] constexpr std::uint_least32_t line() const noexcept { return line_; }
  [[nodiscard]] constexpr std::uint_least32_t column() const noexcept { return column_; }
  [[nodiscard]] constexpr const char* file_name() const noexcept { return file_; }
  [[nodiscard]] constexpr const char* function_name() const noexcept { return function_; }

 private:
  const char* file_ = "";
  const char* function_ = "";
  std::uint_least32_t line_ = 0;
  std::uint_least32_t column_ = 0;
};

}  // namespace std

#endif
#endif
