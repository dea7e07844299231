#pragma once

#include <optional>

#include <gtest/gtest.h>

namespace kortti::test {

// Runs `fn` and returns the E it throws; if it throws none, the test fails
// with `why` and the result is empty.
template <class E, class Fn>
std::optional<E> thrown(Fn&& fn, const char* why = "expected an exception") {
  try {
    fn();
  } catch (const E& e) {
    return e;
  }
  ADD_FAILURE() << why;
  return std::nullopt;
}

}  // namespace kortti::test
