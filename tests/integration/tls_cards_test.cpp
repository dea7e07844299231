// TLS client authentication through korttid's tunnels for a clinician
// logged in on several cards: which certificate a server is given, from the
// CA names and signature algorithms of its certificate request, with the
// issuers the card carries; and a tunnel that has not chosen yet stands on
// every card. Through `openssl s_server`, which reports what it saw.

#include "tests/integration/tls_fixture.hpp"

namespace kortti::test {
namespace {

// A clinician logged in on two cards: each server gets the certificate
// whose issuer its certificate request names, whichever card comes first
// (each card is chosen on each version, so one of each pair is not the first).
TEST_F(Tls, WithTwoCardsTheServerGetsTheCertificateIssuedUnderACaItNames) {
  struct Case {
    std::vector<std::string> options;
    std::string issuer;
    std::string card;
    std::string signature;  // what s_server saw
  };
  for (const Case& c : {Case{{"-tls1_3"}, "hc-ec", "cardB", "Peer signature type: ECDSA"},
                        Case{{"-tls1_2"}, "hc-ec", "cardB", "Peer signature type: ECDSA"},
                        Case{{"-tls1_3"}, "hc-rsa", "cardA", "Peer signature type: RSA-PSS"},
                        Case{{"-tls1_2"}, "hc-rsa", "cardA", "Peer signature type: RSA-PSS"}}) {
    SCOPED_TRACE(c.issuer + " " + c.options.front());
    TlsServer server(c.options, {}, {c.issuer});
    expect_two_cards_give(server, c.card, c.signature);
  }
}

// A clinician logged in on two cards, and a server that names both cards'
// CAs but takes signatures of one kind: it gets the card whose key makes
// them, whichever card comes first (OpenSSL would otherwise send the first
// card's certificate, or none at all, and the server refuse the handshake).
// On TLS 1.3 an ECDSA scheme is bound to its curve: the P-384 card cannot
// answer a server that takes P-256 only.
TEST_F(Tls, WithTwoCardsTheServerGetsACertificateWhoseKeySignsWithAnAlgorithmItTakes) {
  struct Case {
    std::vector<std::string> options;
    std::string card;
    std::string signature;  // what s_server saw
  };
  for (const Case& c :
       {Case{{"-tls1_3", "-client_sigalgs", "ecdsa_secp384r1_sha384"}, "cardB", "Peer signature type: ECDSA"},
        Case{{"-tls1_3", "-client_sigalgs", "rsa_pss_rsae_sha256"}, "cardA", "Peer signature type: RSA-PSS"},
        Case{{"-tls1_3", "-client_sigalgs", "ecdsa_secp256r1_sha256:rsa_pss_rsae_sha384"},
             "cardA",
             "Peer signature type: RSA-PSS"},
        Case{{"-tls1_2", "-client_sigalgs", "ECDSA+SHA256"}, "cardB", "Peer signature type: ECDSA"},
        // On TLS 1.3 an RSA key signs with PSS only.
        Case{{"-tls1_3", "-client_sigalgs", "rsa_pkcs1_sha256:ecdsa_secp384r1_sha384"},
             "cardB",
             "Peer signature type: ECDSA"},
        Case{{"-tls1_2", "-client_sigalgs", "RSA+SHA256"}, "cardA", "Peer signature type: RSA\n"}}) {
    SCOPED_TRACE(c.options.front() + " " + c.options.back());
    TlsServer server(c.options);  // names both cards' CAs
    expect_two_cards_give(server, c.card, c.signature);
  }
}

// A card that carries its certificate's issuer: a server that trusts and
// names only the root gets the issuer with the certificate, builds the path
// and accepts it, and is given this card's certificate over another card's.
TEST_F(Tls, TheIssuerTheCardCarriesGoesWithItsCertificateToAServerThatNamesOnlyTheRoot) {
  SoftHsm(tokens_dir_.path()).add_token("cardD", {"specialist/auth", "ca/hc-ec"});
  TlsServer server({"-tls1_3"}, {}, {"trust/g3-root.pem"});
  start_with(server);
  ASSERT_TRUE(token_ids_.contains("cardD")) << daemon_->log();
  login("cardA");
  login("cardD");
  const Exchange e = through(socket_);
  EXPECT_NE(e.answer.find("Peer signature type: ECDSA"), std::string::npos)
      << e.answer << daemon_->log() << server.log();
  const std::vector<Json> lines = audit_lines_once(3);  // two logins, the handshake
  ASSERT_EQ(lines.size(), 3U) << daemon_->audit();
  EXPECT_EQ(lines[2]["cert_id"], wstr(cert_id("cardD", "01"))) << lines[2].dump();
  EXPECT_EQ(lines[2]["outcome"], "ok") << lines[2].dump();
}

// A server that asks for no certificate leaves the choice open: the tunnel
// stands on each card whose session let it in, and ends with any of them.
TEST_F(Tls, WithTwoCardsATunnelThatPresentedNoCertificateEndsWithEitherSession) {
  TlsServer server({"-rev", "-tls1_3"}, {}, {});
  start_with(server);
  login("cardA");
  login("cardB");
  auto c = daemon_->connect();
  const int fd = connect_listener(socket_);
  const std::string line = "hei\n";
  ASSERT_EQ(::send(fd, line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
  EXPECT_NE(read_until(fd, "ieh", std::chrono::seconds(10)).find("ieh"), std::string::npos) << daemon_->log();
  const Json tunnels = c->call("tls.tunnels");
  ASSERT_EQ(tunnels.size(), 1U) << tunnels.dump();
  EXPECT_EQ(tunnels[0]["cert_id"], "") << "no certificate was asked for";

  expect_logout_ends_tunnel(*c, "cardB", fd);
}

}  // namespace
}  // namespace kortti::test
