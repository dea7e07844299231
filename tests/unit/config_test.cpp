#include <gtest/gtest.h>

#include <algorithm>

#include "daemon/config.hpp"
#include "tests/support/support.hpp"
#include "tests/unit/config_text.hpp"

namespace kortti::daemon {
namespace {

using test::TempDir;

using test_config::problems_of;

TEST(Config, EmptyFileMeansDefaults) {
  TempDir dir;
  test::write_file(dir / "k.toml", "");
  const Config c = load_config((dir / "k.toml").string());
  EXPECT_EQ(c.ipc.socket, "/run/korttid/korttid.sock");
  EXPECT_EQ(c.ipc.max_message_bytes, 16U * 1024 * 1024);
  EXPECT_EQ(c.pkcs11.modules, std::vector<std::string>{"/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"});
  EXPECT_TRUE(c.pcsc.enabled);
  EXPECT_EQ(c.log.level, "info");
}

TEST(Config, ReadsTheKeysOfTheIssue) {
  TempDir dir;
  test::write_file(dir / "k.toml", R"(
[ipc]
socket = "/tmp/x.sock"
max_message_bytes = 65536
socket_mode = "0600"
[pkcs11]
modules = ["/a.so", "/b.so"]
[pcsc]
enabled = false
[log]
level = "debug"
)");
  const Config c = load_config((dir / "k.toml").string());
  EXPECT_EQ(c.ipc.socket, "/tmp/x.sock");
  EXPECT_EQ(c.ipc.max_message_bytes, 65536U);
  EXPECT_EQ(c.ipc.socket_mode, 0600U);
  EXPECT_EQ(c.pkcs11.modules.size(), 2U);
  EXPECT_FALSE(c.pcsc.enabled);
  EXPECT_EQ(c.log.level, "debug");
}

TEST(Config, UnknownKeysAreNamedWithFileLineAndAHint) {
  std::string file;
  const auto p = problems_of("[ipc]\n\nsockt = \"/x\"\n", &file);
  ASSERT_EQ(p.size(), 1U);
  EXPECT_EQ(p[0], file + ":3: ipc.sockt: unknown key (did you mean ipc.socket?)");
}

TEST(Config, UnknownSectionsAreRefused) {
  const auto p = problems_of("[ipcc]\nsocket = \"/x\"\n");
  ASSERT_EQ(p.size(), 1U);
  EXPECT_NE(p[0].find(":1: ipcc: unknown key (did you mean ipc?)"), std::string::npos) << p[0];
}

TEST(Config, BadValuesAreAllReportedAtOnce) {
  const auto p = problems_of(R"([ipc]
max_message_bytes = "big"
max_connections = 0
socket_mode = "rw"
[log]
level = "loud"
[pkcs11]
modules = "/one.so"
[access]
sign = ["user:no-such-user-kortti"]
)");
  ASSERT_EQ(p.size(), 6U);
  EXPECT_NE(p[0].find(":2: ipc.max_message_bytes: must be an integer"), std::string::npos) << p[0];
  EXPECT_NE(p[1].find(":3: ipc.max_connections: must be between 1 and 4096"), std::string::npos) << p[1];
  EXPECT_NE(p[2].find(":4: ipc.socket_mode: must be an octal mode"), std::string::npos) << p[2];
  bool saw_level = false, saw_modules = false, saw_access = false;
  for (const auto& s : p) {
    saw_level |= s.find(":6: log.level: must be one of") != std::string::npos;
    saw_modules |= s.find(":8: pkcs11.modules: must be an array of strings") != std::string::npos;
    saw_access |= s.find(":10: access.sign: no such user 'no-such-user-kortti'") != std::string::npos;
  }
  EXPECT_TRUE(saw_level && saw_modules && saw_access);
}

TEST(Config, PcscReadersAndCardTypes) {
  TempDir dir;
  test::write_file(dir / "k.toml", R"(
[pcsc]
enabled = true
[[pcsc.reader]]
name = "Cherry SmartTerminal"
pinpad = false
[[pcsc.card_type]]
atr = "3B DF 96 00 80 31 FE 45"
mask = "FF FF FF 00 FF FF FF FF"
name = "dvv_healthcare_2026"
description = "a newer card"
)");
  const Config c = load_config((dir / "k.toml").string());
  ASSERT_EQ(c.pcsc.readers.size(), 1U);
  EXPECT_EQ(c.pcsc.readers[0].name, "Cherry SmartTerminal");
  EXPECT_EQ(c.pcsc.readers[0].pinpad, false);
  ASSERT_EQ(c.pcsc.card_types.size(), 1U);
  EXPECT_EQ(c.pcsc.card_types[0].name, "dvv_healthcare_2026");
}

TEST(Config, BadPcscTablesAreNamed) {
  const auto p = problems_of(R"([pcsc]
[[pcsc.card_type]]
atr = "3B ZZ"
name = "x"
[[pcsc.card_type]]
atr = "3B DF"
mask = "FF"
[[pcsc.reader]]
pinpad = "yes"
nmae = "typo"
)");
  ASSERT_EQ(p.size(), 6U);
  EXPECT_NE(p[0].find(":2: pcsc.card_type.atr: must be the ATR in hex"), std::string::npos) << p[0];
  EXPECT_NE(p[1].find(":5: pcsc.card_type.mask: must be hex of the same length"), std::string::npos) << p[1];
  EXPECT_NE(p[2].find(":5: pcsc.card_type.name: is required"), std::string::npos) << p[2];
  EXPECT_NE(p[3].find(":8: pcsc.reader.name: is required"), std::string::npos) << p[3];
  EXPECT_NE(p[4].find(":9: pcsc.reader.pinpad: must be true or false"), std::string::npos) << p[4];
  EXPECT_NE(p[5].find(":10: pcsc.reader.nmae: unknown key (did you mean pcsc.reader.name?)"), std::string::npos)
      << p[5];
}

TEST(Config, TlsUpstreams) {
  TempDir dir;
  test::write_file(dir / "ca.pem", "");
  test::write_file(dir / "k.toml",
                   "[tls]\nenabled = true\n[[tls.upstream]]\nname = \"sso\"\nconnect = "
                   "\"sso.example.fi:443\"\nca_file = \"" +
                       (dir / "ca.pem").string() +
                       "\"\nlisten = \"/run/k/sso.sock\"\nalpn = [\"http/1.1\"]\n"
                       "[[tls.upstream]]\nname = \"v6\"\nconnect = \"[::1]:8443\"\nca_file = \"" +
                       (dir / "ca.pem").string() + "\"\nlisten = \"/run/k/v6.sock\"\nmin_version = \"1.3\"\n");
  const Config c = load_config((dir / "k.toml").string());
  ASSERT_EQ(c.tls.upstreams.size(), 2U);
  EXPECT_TRUE(c.tls.enabled);
  EXPECT_EQ(c.tls.handshake_timeout, std::chrono::seconds(30));
  EXPECT_EQ(c.tls.upstreams[0].connect, "sso.example.fi:443");
  EXPECT_EQ(c.tls.upstreams[0].alpn, std::vector<std::string>{"http/1.1"});
  EXPECT_EQ(c.tls.upstreams[1].min_version, "1.3");
  EXPECT_EQ(split_host_port("[::1]:8443"), std::make_optional(std::pair<std::string, std::string>("::1", "8443")));
  for (const char* bad : {"sso.example.fi", "sso:0", "sso:65536", ":443", "::1:443", "sso:", "[::1:443"})
    EXPECT_FALSE(split_host_port(bad)) << bad;
}

TEST(Config, BadTlsUpstreamsAreNamed) {
  const auto p = problems_of(R"([[tls.upstream]]
name = "SSO!"
connect = "sso.example.fi"
ca_file = "/nonexistent/ca.pem"
listen = "relative.sock"
min_version = "1.1"
[[tls.upstream]]
name = "b"
connect = "b:1"
ca_file = "/nonexistent/ca.pem"
listen = "/run/k/b.sock"
access = ["group:no-such-group-here"]
[[tls.upstream]]
name = "b"
connect = "c:1"
ca_file = "/nonexistent/ca.pem"
listen = "/run/k/b.sock"
)");
  auto has = [&](const std::string& text) {
    return std::any_of(p.begin(), p.end(),
                       [&](const std::string& line) { return line.find(text) != std::string::npos; });
  };
  EXPECT_TRUE(has(":6: tls.upstream.min_version: must be one of")) << testing::PrintToString(p);
  EXPECT_TRUE(has(":1: tls.upstream.name: must be lower-case letters")) << testing::PrintToString(p);
  EXPECT_TRUE(has(":1: tls.upstream.connect: must be host:port")) << testing::PrintToString(p);
  EXPECT_TRUE(has(":1: tls.upstream.listen: must be a Unix socket's absolute path, or a loopback address and port"))
      << testing::PrintToString(p);
  EXPECT_TRUE(has(":1: tls.upstream.ca_file: cannot be read: /nonexistent/ca.pem")) << testing::PrintToString(p);
  EXPECT_TRUE(has(":12: tls.upstream.access: no such group 'no-such-group-here'")) << testing::PrintToString(p);
  EXPECT_TRUE(has(":13: tls.upstream.name: is already another upstream's")) << testing::PrintToString(p);
  EXPECT_TRUE(has(":13: tls.upstream.listen: is already another upstream's")) << testing::PrintToString(p);
}

// A TCP listener is on a loopback address, written as one: a name could
// resolve to any address, and any other address is reachable from elsewhere.
TEST(Config, ATlsUpstreamListensOnAUnixSocketOrALoopbackPort) {
  const auto upstream = [](const std::string& listen) {
    return "[[tls.upstream]]\nname = \"sso\"\nconnect = \"sso.example.fi:443\"\nsystem_roots = true\nlisten = \"" +
           listen + "\"\n";
  };
  for (const char* good : {"/run/korttid/tls/sso.sock", "127.0.0.1:18443", "127.0.0.2:18443", "[::1]:18443"})
    EXPECT_TRUE(problems_of(upstream(good)).empty()) << good << testing::PrintToString(problems_of(upstream(good)));
  for (const char* bad :
       {"0.0.0.0:18443", "10.0.0.1:443", "localhost:18443", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1", "::1:18443",
        "[::]:18443", "[127.0.0.1]:18443", "[::ffff:127.0.0.1]:1", "sso.sock"}) {
    const auto p = problems_of(upstream(bad));
    ASSERT_EQ(p.size(), 1U) << bad << testing::PrintToString(p);
    EXPECT_NE(p[0].find("tls.upstream.listen: must be a Unix socket's absolute path, or a loopback address"),
              std::string::npos)
        << bad << ": " << p[0];
  }
  // One port, written two ways, is one listener.
  std::string two = upstream("127.0.0.1:18443") + upstream("127.0.0.1:018443");
  two.replace(two.rfind("name = \"sso\""), 12, "name = \"kela\"");
  const auto p = problems_of(two);
  ASSERT_EQ(p.size(), 1U) << testing::PrintToString(p);
  EXPECT_NE(p[0].find("tls.upstream.listen: is already another upstream's"), std::string::npos) << p[0];
}

TEST(Config, SyntaxErrorsNameTheLine) {
  std::string file;
  const auto p = problems_of("[ipc]\nsocket = \n", &file);
  ASSERT_EQ(p.size(), 1U);
  EXPECT_EQ(p[0].rfind(file + ":2: ", 0), 0U) << p[0];
}

TEST(Config, PolicyDefaults) {
  const Config c;
  EXPECT_EQ(c.identity.registration_number, "san:otherName:1.2.246.537.26");
  EXPECT_EQ(c.identity.satu, "subject:serialNumber");
  EXPECT_EQ(c.trust.anchors, "/etc/korttid/trust");
  EXPECT_EQ(c.trust.clock_skew, std::chrono::seconds(300));
  EXPECT_TRUE(c.revocation.ocsp);
  EXPECT_TRUE(c.revocation.crl);
  EXPECT_EQ(c.revocation.fail_mode.at(policy::Action::sign_prescription), policy::FailMode::hard);
  EXPECT_EQ(c.revocation.fail_mode.at(policy::Action::sign_document), policy::FailMode::hard);
  EXPECT_EQ(c.revocation.fail_mode.at(policy::Action::authenticate), policy::FailMode::soft);
  EXPECT_EQ(c.registry_database, "/var/lib/korttid/registry.sqlite");
  EXPECT_EQ(c.rules.registry.max_age, std::chrono::hours(168));
  EXPECT_FALSE(c.rules.registry.deny_when_stale);
  EXPECT_EQ(c.rules.prescription.rights, std::set<std::string>{"034"});
  EXPECT_TRUE(c.rules.prescription.card_types.empty());
}

TEST(Config, PolicyKeys) {
  TempDir dir;
  test::write_file(dir / "k.toml", R"(
[identity]
registration_number = "subject:2.5.4.5"
title = ""
[identity.card_types]
"1.2.246.517.1.10.1" = "professional"
[trust]
anchors = "/a"
intermediates = "/i"
clock_skew_s = 60
[revocation]
ocsp = false
ocsp_url = "http://127.0.0.1:1/"
ocsp_nonce = "if_present"
timeout_s = 2
max_cache_s = 600
crl_files = ["/c1.pem", "/c2.pem"]
crl_fetch = false
crl_retry_after_s = 300
[revocation.fail_mode]
sign_prescription = "soft-fail"
authenticate = "hard-fail"
[registry]
database = "/r.sqlite"
max_age_h = 24
when_stale = "deny"
[policy.prescription]
rights = ["001", "034"]
limited_rights = ["121"]
limited_atc = ["J01"]
self_prescribing = ["*"]
card_types = ["professional"]
)");
  const Config c = load_config((dir / "k.toml").string());
  EXPECT_EQ(c.identity.registration_number, "subject:2.5.4.5");
  EXPECT_EQ(c.identity.title, "");
  EXPECT_EQ(c.identity.card_types.at("1.2.246.517.1.10.1"), "professional");
  EXPECT_EQ(c.trust.anchors, "/a");
  EXPECT_EQ(c.trust.intermediates, "/i");
  EXPECT_EQ(c.trust.clock_skew, std::chrono::seconds(60));
  EXPECT_FALSE(c.revocation.ocsp);
  EXPECT_EQ(c.revocation.ocsp_url, "http://127.0.0.1:1/");
  EXPECT_EQ(c.revocation.ocsp_nonce, policy::OcspNonce::if_present);
  EXPECT_EQ(c.revocation.crl_retry_after, std::chrono::seconds(300));
  EXPECT_EQ(c.revocation.timeout, std::chrono::seconds(2));
  EXPECT_EQ(c.revocation.max_cache, std::chrono::seconds(600));
  EXPECT_EQ(c.revocation.crl_files, (std::vector<std::string>{"/c1.pem", "/c2.pem"}));
  EXPECT_FALSE(c.revocation.crl_fetch);
  EXPECT_EQ(c.revocation.fail_mode.at(policy::Action::sign_prescription), policy::FailMode::soft);
  EXPECT_EQ(c.revocation.fail_mode.at(policy::Action::authenticate), policy::FailMode::hard);
  EXPECT_EQ(c.revocation.fail_mode.at(policy::Action::sign_document), policy::FailMode::hard);
  EXPECT_EQ(c.registry_database, "/r.sqlite");
  EXPECT_EQ(c.rules.registry.max_age, std::chrono::hours(24));
  EXPECT_TRUE(c.rules.registry.deny_when_stale);
  EXPECT_EQ(c.rules.prescription.rights, (std::set<std::string>{"001", "034"}));
  EXPECT_EQ(c.rules.prescription.limited_rights, std::set<std::string>{"121"});
  EXPECT_EQ(c.rules.prescription.limited_atc, std::vector<std::string>{"J01"});
  EXPECT_EQ(c.rules.prescription.self_prescribing, std::vector<std::string>{"*"});
  EXPECT_EQ(c.rules.prescription.card_types, std::set<std::string>{"professional"});
}

TEST(Config, BadPolicyValuesAreNamed) {
  const auto p = problems_of(R"(
[identity]
satu = "subject:NoSuchAttribute"
registration_number = "san:otherName:registration"
common_name = "issuer:CN"
[identity.card_types]
"2.999.1" = 3
[revocation]
timeout_s = 0
[revocation.fail_mode]
sign_prescription = "fail-open"
sign_everything = "hard-fail"
[registry]
when_stale = "ignore"
max_age_h = 0
[policy.prescription]
rights = "001"
)");
  const std::vector<std::string> expected = {"identity.satu",        "identity.registration_number",
                                             "identity.common_name", "identity.card_types.2.999.1",
                                             "revocation.timeout_s", "revocation.fail_mode.sign_prescription",
                                             "sign_everything",      "registry.when_stale",
                                             "registry.max_age_h",   "policy.prescription.rights"};
  for (const auto& key : expected) {
    bool found = false;
    for (const auto& problem : p) found |= problem.find(key) != std::string::npos;
    EXPECT_TRUE(found) << key << " not named in:\n" << ::testing::PrintToString(p);
  }
}

// docs/configuration.md: the answer must echo the nonce by default, and the
// old boolean keeps its promise (true: required; false: no nonce sent).
TEST(Config, OcspNonceModesAndTheOldBooleans) {
  const std::pair<const char*, policy::OcspNonce> cases[] = {
      {"", policy::OcspNonce::required},
      {"ocsp_nonce = true", policy::OcspNonce::required},
      {"ocsp_nonce = false", policy::OcspNonce::off},
      {"ocsp_nonce = \"required\"", policy::OcspNonce::required},
      {"ocsp_nonce = \"if_present\"", policy::OcspNonce::if_present},
      {"ocsp_nonce = \"off\"", policy::OcspNonce::off},
  };
  for (const auto& [line, expected] : cases) {
    TempDir dir;
    test::write_file(dir / "k.toml", std::string("[revocation]\n") + line + "\n");
    EXPECT_EQ(load_config((dir / "k.toml").string()).revocation.ocsp_nonce, expected) << line;
  }
  for (const char* bad : {"ocsp_nonce = \"yes\"", "ocsp_nonce = 1"}) {
    const auto p = problems_of(std::string("[revocation]\n") + bad + "\n");
    ASSERT_EQ(p.size(), 1U) << bad;
    EXPECT_NE(p[0].find(":2: revocation.ocsp_nonce: must be"), std::string::npos) << p[0];
    EXPECT_NE(p[0].find("if_present"), std::string::npos) << p[0];
  }
}

TEST(Config, CrlRetryAfterHasADefaultAndARange) {
  EXPECT_EQ(Config{}.revocation.crl_retry_after, std::chrono::seconds(60));
  const auto p = problems_of("[revocation]\ncrl_retry_after_s = -1\n");
  ASSERT_EQ(p.size(), 1U);
  EXPECT_NE(p[0].find("revocation.crl_retry_after_s: must be between 0 and 86400"), std::string::npos) << p[0];
}

TEST(Config, TheShippedFileIsValidAndMatchesTheDefaults) {
  const Config shipped = load_config((test::source_dir() / "daemon/korttid.toml").string());
  const Config defaults;
  EXPECT_EQ(shipped.ipc.socket, defaults.ipc.socket);
  EXPECT_EQ(shipped.ipc.max_message_bytes, defaults.ipc.max_message_bytes);
  EXPECT_EQ(shipped.pkcs11.modules, defaults.pkcs11.modules);
  EXPECT_EQ(shipped.session.lifetime, defaults.session.lifetime);
  EXPECT_EQ(shipped.access.sign, defaults.access.sign);
  // Whole sections compare equal: a key documented in the file with another
  // value than the built-in default fails here.
  EXPECT_TRUE(shipped.identity == defaults.identity);
  EXPECT_TRUE(shipped.trust == defaults.trust);
  EXPECT_TRUE(shipped.revocation == defaults.revocation);
  EXPECT_EQ(shipped.registry_database, defaults.registry_database);
  EXPECT_TRUE(shipped.rules == defaults.rules);
  EXPECT_TRUE(shipped.signature == defaults.signature);
  EXPECT_TRUE(shipped.batch == defaults.batch);
}

}  // namespace
}  // namespace kortti::daemon
