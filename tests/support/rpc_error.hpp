#pragma once

#include <utility>

#include "client/client.hpp"
#include "tests/support/thrown.hpp"

namespace kortti::test {

// Runs `fn` and returns the error answer it throws (fails the test if none).
template <class Fn>
client::RpcError rpc_error(Fn&& fn) {
  return thrown<client::RpcError>(std::forward<Fn>(fn), "expected an error answer")
      .value_or(client::RpcError(0, "none", "none", Json()));
}

}  // namespace kortti::test
