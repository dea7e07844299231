#include <gtest/gtest.h>

#include "ipc/ipc.hpp"

namespace kortti::ipc {
namespace {

Peer peer(uid_t uid, gid_t gid, std::vector<gid_t> groups = {}) {
  Peer p;
  p.uid = uid;
  p.gid = gid;
  p.groups = std::move(groups);
  return p;
}

TEST(AccessPolicy, DefaultsLetEveryoneSignAndOnlyRootAdminister) {
  AccessPolicy a;
  EXPECT_TRUE(a.allows(peer(1000, 1000), MethodGroup::sign));
  EXPECT_FALSE(a.allows(peer(1000, 1000), MethodGroup::admin));
  EXPECT_TRUE(a.allows(peer(0, 0), MethodGroup::admin));
}

TEST(AccessPolicy, UidGidAndSupplementaryGroups) {
  AccessPolicy a;
  a.set(MethodGroup::sign, {"uid:1001", "gid:2000"});
  EXPECT_TRUE(a.allows(peer(1001, 1), MethodGroup::sign));
  EXPECT_TRUE(a.allows(peer(5, 2000), MethodGroup::sign));
  EXPECT_TRUE(a.allows(peer(5, 1, {7, 2000}), MethodGroup::sign));
  EXPECT_FALSE(a.allows(peer(5, 1, {7}), MethodGroup::sign));
}

TEST(AccessPolicy, NamesResolveAndJunkIsRefused) {
  AccessPolicy a;
  a.set(MethodGroup::admin, {"user:root", "group:root"});
  EXPECT_TRUE(a.allows(peer(0, 0), MethodGroup::admin));
  EXPECT_THROW(a.set(MethodGroup::read, {"user:no-such-user-kortti"}), std::invalid_argument);
  EXPECT_THROW(a.set(MethodGroup::read, {"uid:abc"}), std::invalid_argument);
  EXPECT_THROW(a.set(MethodGroup::read, {"root"}), std::invalid_argument);
}

}  // namespace
}  // namespace kortti::ipc
