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

// uid_t is 32 bits: a larger number must be refused, not wrapped to root.
TEST(AccessPolicy, IdsOutOfRangeAreRefusedNotWrapped) {
  AccessPolicy a;
  for (const char* entry : {"uid:4294967296", "uid:4294967295", "gid:4294967296", "uid:18446744073709551616",
                            "uid:-1", "uid:+5", "uid:0x10"})
    EXPECT_THROW(a.set(MethodGroup::admin, {entry}), std::invalid_argument) << entry;
  a.set(MethodGroup::admin, {"uid:4294967294"});
  EXPECT_FALSE(a.allows(peer(0, 0), MethodGroup::admin));
  EXPECT_TRUE(a.allows(peer(4294967294U, 0), MethodGroup::admin));
}

}  // namespace
}  // namespace kortti::ipc
