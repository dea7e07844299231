// A per-user instance (korttid --user-instance) runs as its user: it reads
// the user's own configuration first, and what a configuration puts in the
// system service's folders goes to the user's instead (docs/operations.md).

#include <sys/stat.h>

#include "tests/integration/softhsm_fixture.hpp"

namespace kortti::test {
namespace {

class UserInstance : public SoftHsmDaemonTest {
 protected:
  void SetUp() override {}

  std::map<std::string, std::string> user_dirs() const {
    return {{"XDG_CONFIG_HOME", (home_ / "config").string()},
            {"XDG_STATE_HOME", (home_ / "state").string()},
            {"XDG_RUNTIME_DIR", (home_ / "run").string()}};
  }

  TempDir home_;
};

std::string upstream_listening_on(const std::string& path) {
  return "[tls]\nenabled = true\n[[tls.upstream]]\nname = \"sso\"\nconnect = \"127.0.0.1:9\"\nca_file = \"" +
         (pki_dir() / "trust" / "g2-root.pem").string() + "\"\nlisten = \"" + path + "\"\n";
}

TEST_F(UserInstance, TheSystemServicesFoldersMoveToTheUsers) {
  DaemonOptions o;
  o.args = {"--user-instance"};
  o.audit_file = fs::path("/var/log/korttid/audit.log");
  o.extra = upstream_listening_on("/run/korttid/tls/sso.sock");
  o.env = user_dirs();
  start(std::move(o));

  // The signature's audit line is in the user's file before its answer.
  auto c = daemon_->connect();
  const auto [answer, digest] = sign_digest(*c, rsa_sign_cert(), "sha256");
  const fs::path audit = home_ / "state" / "korttid" / "audit.log";
  EXPECT_NE(read_file(audit).find(hex_encode(digest)), std::string::npos) << read_file(audit);
  struct stat st {};
  ASSERT_EQ(::stat(audit.parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700U) << "the user's audit folder is the user's alone";

  const fs::path listen = home_ / "run" / "korttid" / "tls" / "sso.sock";
  const Json upstreams = c->call("tls.upstreams");
  ASSERT_EQ(upstreams.size(), 1U) << upstreams.dump();
  EXPECT_EQ(upstreams[0]["listen"], listen.string());
  EXPECT_EQ(upstreams[0]["state"], "listening");
  EXPECT_TRUE(fs::is_socket(listen));

  const std::string log = daemon_->log();
  EXPECT_NE(log.find("per-user instance: audit.file is " + audit.string() +
                     ", not the system service's /var/log/korttid/audit.log"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("per-user instance: tls.upstream sso listen is " + listen.string()), std::string::npos) << log;

  // A reload moves them again: nothing waits for a restart, nothing changed.
  daemon_->signal(SIGHUP);
  ASSERT_TRUE(daemon_->wait_notify("READY=1", std::chrono::seconds(10)));
  EXPECT_NE(daemon_->log().find("configuration reloaded"), std::string::npos) << daemon_->log();
  EXPECT_EQ(daemon_->log().find("take effect at the next restart"), std::string::npos) << daemon_->log();
  EXPECT_EQ(c->call("tls.upstreams")[0]["listen"], listen.string());
  EXPECT_EQ(daemon_->stop(), 0);
}

TEST(UserInstanceConfig, TheUsersOwnFileComesFirst) {
  TempDir home;
  const std::map<std::string, std::string> env = {{"XDG_CONFIG_HOME", (home / "config").string()},
                                                  {"XDG_STATE_HOME", (home / "state").string()}};
  const fs::path own = home / "config" / "korttid" / "korttid.toml";
  fs::create_directories(own.parent_path());
  write_file(own, "[audit]\nfile = \"/var/log/korttid/trail.log\"\n");
  const auto r = run({korttid_binary().string(), "--user-instance", "--check-config"}, env);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("configuration OK: " + own.string()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("per-user instance: audit.file /var/log/korttid/trail.log -> " +
                       (home / "state" / "korttid" / "trail.log").string()),
            std::string::npos)
      << r.out;

  // --config names the file, the user's own notwithstanding; the service's
  // folders still move.
  write_file(home / "named.toml", "[audit]\nfile = \"/var/log/korttid/named.log\"\n");
  const auto named =
      run({korttid_binary().string(), "--user-instance", "--config", (home / "named.toml").string(), "--check-config"},
          env);
  EXPECT_EQ(named.status, 0) << named.err;
  EXPECT_NE(named.out.find("configuration OK: " + (home / "named.toml").string()), std::string::npos) << named.out;
  EXPECT_NE(named.out.find("-> " + (home / "state" / "korttid" / "named.log").string()), std::string::npos)
      << named.out;

  // Not a user instance: the user's file is not the system service's, and
  // nothing moves.
  const auto system = run({korttid_binary().string(), "--check-config"}, env);
  EXPECT_EQ(system.out.find(own.string()), std::string::npos) << system.out;
  const auto service =
      run({korttid_binary().string(), "--config", (home / "named.toml").string(), "--check-config"}, env);
  EXPECT_EQ(service.status, 0) << service.err;
  EXPECT_EQ(service.out.find("per-user instance"), std::string::npos) << service.out;
}

TEST(UserInstanceConfig, AFolderThatCannotBeMadeStopsTheStartWithItsName) {
  TempDir home;
  write_file(home / "state", "a file where the state folder would be\n");
  write_file(home / "k.toml", "[ipc]\nsocket = \"" + (home / "k.sock").string() +
                                  "\"\n[pcsc]\nenabled = false\n[pkcs11]\nmodules = []\n[audit]\nfile = "
                                  "\"/var/log/korttid/audit.log\"\n");
  const auto r = run({korttid_binary().string(), "--user-instance", "--config", (home / "k.toml").string()},
                     {{"XDG_STATE_HOME", (home / "state").string()}});
  EXPECT_EQ(r.status, 73) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("cannot make " + (home / "state" / "korttid").string() + " for audit.file"),
            std::string::npos)
      << r.out << r.err;
}

}  // namespace
}  // namespace kortti::test
