#include "daemon/user_instance.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>

#include "tests/support/support.hpp"

namespace kortti::daemon {
namespace {

class MoveToUserFolders : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
    ::setenv("XDG_STATE_HOME", "/home/anna/.local/state", 1);
  }
};

TEST_F(MoveToUserFolders, WhatIsInTheServicesFoldersMovesWithTheRestOfItsPath) {
  Config c;
  c.audit.file = "/var/log/korttid/trail/audit.log";
  c.tls.upstreams.emplace_back();
  c.tls.upstreams[0].name = "sso";
  c.tls.upstreams[0].listen = "/run/korttid/tls/sso.sock";
  const auto moved = move_to_user_folders(c);
  EXPECT_EQ(c.ipc.socket, "/run/user/1000/korttid/korttid.sock");
  EXPECT_EQ(c.tls.upstreams[0].listen, "/run/user/1000/korttid/tls/sso.sock");
  EXPECT_EQ(c.audit.file, "/home/anna/.local/state/korttid/trail/audit.log");
  ASSERT_EQ(moved.size(), 3U);
  EXPECT_EQ(moved[0].key, "ipc.socket");
  EXPECT_EQ(moved[1].key, "tls.upstream sso listen");
  EXPECT_EQ(moved[1].from, "/run/korttid/tls/sso.sock");
  EXPECT_EQ(moved[2].key, "audit.file");
  EXPECT_EQ(moved[2].to, c.audit.file);
}

TEST_F(MoveToUserFolders, EverythingElseStays) {
  Config c;
  c.ipc.socket = "/run/korttid-other/k.sock";  // a folder whose name only begins alike
  c.audit.file = "";                           // the main log
  c.tls.upstreams.emplace_back();
  c.tls.upstreams[0].name = "sso";
  c.tls.upstreams[0].listen = "/srv/sso.sock";
  const Config before = c;
  EXPECT_TRUE(move_to_user_folders(c).empty());
  EXPECT_EQ(c.ipc.socket, before.ipc.socket);
  EXPECT_EQ(c.audit.file, "");
  EXPECT_EQ(c.tls.upstreams[0].listen, "/srv/sso.sock");
  // The registry is not the instance's to move (docs/operations.md).
  EXPECT_EQ(c.registry_database, "/var/lib/korttid/registry.sqlite");
}

TEST_F(MoveToUserFolders, UnsetOrRelativeVariablesMeanTheXdgDefaults) {
  ::unsetenv("XDG_STATE_HOME");
  ::setenv("XDG_RUNTIME_DIR", "relative/run", 1);
  ::setenv("HOME", "/home/anna", 1);
  Config c;
  c.audit.file = "/var/log/korttid/audit.log";
  (void)move_to_user_folders(c);
  EXPECT_EQ(c.audit.file, "/home/anna/.local/state/korttid/audit.log");
  EXPECT_EQ(c.ipc.socket, "/run/user/" + std::to_string(::getuid()) + "/korttid/korttid.sock");
}

TEST(MakeUserFolders, MakesEachMissingFolderForItsUserAlone) {
  test::TempDir dir;
  make_user_folders({{"audit.file", "/var/log/korttid/audit.log", (dir / "state/korttid/audit.log").string()}});
  for (const char* folder : {"state", "state/korttid"}) {
    struct stat st {};
    ASSERT_EQ(::stat((dir / folder).c_str(), &st), 0) << folder;
    EXPECT_EQ(st.st_mode & 07777, 0700U) << folder;
  }
  EXPECT_NO_THROW(make_user_folders({{"audit.file", "", (dir / "state/korttid/audit.log").string()}}));
}

}  // namespace
}  // namespace kortti::daemon
