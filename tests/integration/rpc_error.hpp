#pragma once

#include <gtest/gtest.h>

#include "client/client.hpp"

namespace kortti::test {

// Runs `fn` and returns the error answer it throws (fails the test if none).
template <class Fn>
client::RpcError rpc_error(Fn&& fn) {
  try {
    fn();
  } catch (const client::RpcError& e) {
    return e;
  }
  ADD_FAILURE() << "expected an error answer";
  return client::RpcError(0, "none", "none", Json());
}

}  // namespace kortti::test
