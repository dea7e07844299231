#pragma once

#include <functional>
#include <string_view>
#include <utility>
#include <variant>

#include "common/error.hpp"

namespace kortti {

// A value or the Error that prevented it; what asynchronous operations hand to
// their completion handlers (C++20 has no std::expected yet).
template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
  [[nodiscard]] T& value() & { return std::get<0>(v_); }
  [[nodiscard]] const T& value() const& { return std::get<0>(v_); }
  [[nodiscard]] T&& value() && { return std::get<0>(std::move(v_)); }
  [[nodiscard]] const Error& error() const& { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

struct Unit {};

template <class T>
using Completion = std::function<void(Result<T>)>;

// Runs `fn` and turns whatever it throws into a Result; anything that is not a
// kortti::Error is a bug: logged, and an internal_error with its correlation id.
template <class Fn>
auto capture(Fn&& fn, std::string_view where = "a worker") -> Result<decltype(fn())> {
  try {
    return Result<decltype(fn())>(fn());
  } catch (const Error& e) {
    return e;
  } catch (const std::exception& e) {
    return internal_error(where, e.what());
  } catch (...) {
    return internal_error(where, "an exception of unknown type");
  }
}

}  // namespace kortti
