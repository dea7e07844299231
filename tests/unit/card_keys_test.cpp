// tls/: the card-key provider in real handshakes with `openssl s_server`,
// which demands a client certificate and reports what it saw. The card is a
// test double here — a Signer that signs with the test PKI's key file and
// counts its calls — so that the provider alone is under test; through
// korttid, tokens and tunnels it is tests/integration/tls_test.cpp.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "common/openssl.hpp"
#include "tests/support/support.hpp"
#include "tls/tls.hpp"

namespace kortti::test {
namespace {

struct Handshake {
  bool ok = false;
  std::string page;   // the server's status page
  std::string error;  // OpenSSL's, when not ok
};

Bytes der_of(const fs::path& pem) { return pem_certificates(pem).at(0); }

// The card's double: `person`'s authentication key from its file, counted.
tls::Signer file_signer(const std::string& person, std::atomic<int>& calls) {
  const fs::path key = pki_dir() / "people" / person / "auth.key";
  return [&calls, key](DigestAlgorithm alg, Scheme scheme, const Bytes& digest) {
    ++calls;
    return sign_like_a_token(key, alg, digest, scheme == Scheme::pss);
  };
}

// A client in `keys`' library context with `person`'s authentication
// certificate; GET / and read the answer.
Handshake connect(const tls::CardKeys& keys, const TlsServer& server, const std::string& person, tls::Signer signer,
                  int max_version = 0, const char* sigalgs = nullptr) {
  const Bytes cert = der_of(pki_dir() / "people" / person / "auth.pem");
  EvpPkeyPtr key = keys.key(cert, std::move(signer));
  EXPECT_TRUE(key);
  Handshake out;
  SSL_CTX* ctx = SSL_CTX_new_ex(keys.context(), nullptr, TLS_client_method());
  X509Ptr x509 = parse_certificate(cert);
  SSL_CTX_use_certificate(ctx, x509.get());
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) out.error = openssl_error("use key");
  SSL_CTX_load_verify_locations(ctx, server.certificate().c_str(), nullptr);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (max_version != 0) SSL_CTX_set_max_proto_version(ctx, max_version);
  if (sigalgs != nullptr) SSL_CTX_set1_client_sigalgs_list(ctx, sigalgs);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(server.port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  SSL* ssl = SSL_new(ctx);
  SSL_set1_host(ssl, "localhost");
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && SSL_set_fd(ssl, fd) == 1 &&
      SSL_connect(ssl) == 1) {
    const std::string get = "GET / HTTP/1.0\r\n\r\n";
    SSL_write(ssl, get.data(), static_cast<int>(get.size()));
    char buf[4096];
    for (int n; (n = SSL_read(ssl, buf, sizeof buf)) > 0;) out.page.append(buf, static_cast<std::size_t>(n));
    // TLS 1.3 checks the client's certificate after the handshake: the page
    // is the proof it was accepted.
    out.ok = out.page.find("Client certificate") != std::string::npos;
  }
  if (!out.ok) out.error += openssl_error("handshake failed");
  SSL_free(ssl);
  ::close(fd);
  SSL_CTX_free(ctx);
  return out;
}

TEST(CardKeys, RsaKeySignsTls13CertificateVerifyWithPssOnce) {
  tls::CardKeys keys;
  TlsServer server({"-tls1_3"});
  std::atomic<int> calls = 0;
  const Handshake h = connect(keys, server, "physician", file_signer("physician", calls));
  ASSERT_TRUE(h.ok) << h.error << "\n" << server.log();
  EXPECT_NE(h.page.find("Protocol  : TLSv1.3"), std::string::npos) << h.page;
  EXPECT_NE(h.page.find("Peer signature type: RSA-PSS"), std::string::npos) << h.page;
  EXPECT_NE(h.page.find("Peer signing digest: SHA256"), std::string::npos) << h.page;
  EXPECT_EQ(calls, 1);
}

TEST(CardKeys, RsaKeyOnTls12AndWithPkcs1SignatureAlgorithmsOnly) {
  tls::CardKeys keys;
  TlsServer server;
  std::atomic<int> calls = 0;
  const Handshake pss = connect(keys, server, "physician", file_signer("physician", calls), TLS1_2_VERSION);
  ASSERT_TRUE(pss.ok) << pss.error;
  EXPECT_NE(pss.page.find("Protocol  : TLSv1.2"), std::string::npos) << pss.page;
  // A token without PSS: TLS 1.2 with PKCS#1 signature algorithms.
  const Handshake pkcs1 = connect(keys, server, "physician", file_signer("physician", calls), TLS1_2_VERSION,
                                  "RSA+SHA256:RSA+SHA384:RSA+SHA512");
  ASSERT_TRUE(pkcs1.ok) << pkcs1.error;
  EXPECT_NE(pkcs1.page.find("Peer signature type: RSA\n"), std::string::npos) << pkcs1.page;
  EXPECT_EQ(calls, 2);
}

// A card signs with SHA-256, -384 or -512: a TLS 1.2 server that lists
// SHA-224 first gets a signature algorithm the card makes, not a failed
// handshake.
TEST(CardKeys, ATls12ServerThatListsSha224FirstGetsADigestTheCardSignsWith) {
  tls::CardKeys keys;
  std::atomic<int> calls = 0;
  for (const auto& [person, sigalgs] :
       {std::pair{"physician", "RSA+SHA224:RSA+SHA256"}, std::pair{"specialist", "ECDSA+SHA224:ECDSA+SHA384"}}) {
    TlsServer server({"-tls1_2", "-client_sigalgs", sigalgs});
    const Handshake h = connect(keys, server, person, file_signer(person, calls), TLS1_2_VERSION);
    ASSERT_TRUE(h.ok) << person << ": " << h.error << "\n" << server.log();
    EXPECT_EQ(h.page.find("Peer signing digest: SHA224"), std::string::npos) << h.page;
  }
  EXPECT_EQ(calls, 2);
}

TEST(CardKeys, EcP384KeySignsOnTls13AndTls12) {
  tls::CardKeys keys;
  TlsServer server;
  std::atomic<int> calls = 0;
  const Handshake v13 = connect(keys, server, "specialist", file_signer("specialist", calls));
  ASSERT_TRUE(v13.ok) << v13.error << "\n" << server.log();
  EXPECT_NE(v13.page.find("Protocol  : TLSv1.3"), std::string::npos) << v13.page;
  EXPECT_NE(v13.page.find("Peer signature type: ECDSA"), std::string::npos) << v13.page;
  EXPECT_NE(v13.page.find("Peer signing digest: SHA384"), std::string::npos) << v13.page;
  const Handshake v12 = connect(keys, server, "specialist", file_signer("specialist", calls), TLS1_2_VERSION);
  ASSERT_TRUE(v12.ok) << v12.error;
  EXPECT_NE(v12.page.find("Protocol  : TLSv1.2"), std::string::npos) << v12.page;
  EXPECT_EQ(calls, 2);
}

// The certificate is parsed once for every handshake that uses it; each
// key made from it still signs through its own handshake's signer.
TEST(CardKeys, ACertificateIsParsedOnceAndEachKeyKeepsItsOwnSigner) {
  tls::CardKeys keys;
  const Bytes cert = der_of(pki_dir() / "people" / "physician" / "auth.pem");
  const X509Ptr once = keys.certificate(cert);
  const X509Ptr again = keys.certificate(cert);
  ASSERT_TRUE(once);
  EXPECT_EQ(once.get(), again.get());
  EXPECT_FALSE(keys.certificate(Bytes{1, 2, 3}));

  TlsServer server({"-tls1_3"});
  std::atomic<int> first = 0;
  std::atomic<int> second = 0;
  const Handshake a = connect(keys, server, "physician", file_signer("physician", first));
  const Handshake b = connect(keys, server, "physician", file_signer("physician", second));
  ASSERT_TRUE(a.ok) << a.error;
  ASSERT_TRUE(b.ok) << b.error;
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);
}

TEST(CardKeys, ACardThatCannotSignFailsTheHandshakeAndTheServerSeesNoCertificate) {
  tls::CardKeys keys;
  TlsServer server({"-tls1_3"});
  const Handshake h = connect(keys, server, "physician", [](DigestAlgorithm, Scheme, const Bytes&) -> Bytes {
    throw Error(Errc::card_removed, "the card left during the operation");
  });
  EXPECT_FALSE(h.ok) << h.page;
  EXPECT_NE(h.error.find("the card did not sign: the card left during the operation"), std::string::npos) << h.error;
  // Not a certificate, or a key that is not RSA or EC: no key at all.
  EXPECT_FALSE(keys.key(Bytes{1, 2, 3}, {}));
}

// The padding and the PSS salt length come as text through the EVP helpers
// (libssl sends the padding as a number): a name other than pkcs1 or pss,
// or a salt other than the digest's length, is refused, not taken for
// PKCS#1 or refused when it is right.
TEST(CardKeys, ARsaKeyTakesPkcs1OrPssWithTheDigestsSaltOnly) {
  tls::CardKeys keys;
  std::atomic<int> signatures = 0;
  const EvpPkeyPtr key =
      keys.key(der_of(pki_dir() / "people" / "physician" / "auth.pem"), file_signer("physician", signatures));
  ASSERT_TRUE(key);
  auto taken = [&](std::vector<std::pair<const char*, std::string>> set) {
    const EvpMdCtxPtr md(EVP_MD_CTX_new());
    EVP_PKEY_CTX* context = nullptr;
    if (EVP_DigestSignInit_ex(md.get(), &context, "SHA256", keys.context(), nullptr, key.get(), nullptr) != 1)
      throw std::runtime_error("no signature context for the card key");
    std::vector<OSSL_PARAM> params;
    for (auto& [name, value] : set) params.push_back(OSSL_PARAM_construct_utf8_string(name, value.data(), 0));
    params.push_back(OSSL_PARAM_construct_end());
    const bool ok = EVP_PKEY_CTX_set_params(context, params.data()) == 1;
    ERR_clear_error();
    return ok;
  };
  EXPECT_TRUE(taken({{OSSL_SIGNATURE_PARAM_PAD_MODE, "pkcs1"}}));
  EXPECT_TRUE(taken({{OSSL_SIGNATURE_PARAM_PAD_MODE, "pss"}, {OSSL_SIGNATURE_PARAM_PSS_SALTLEN, "digest"}}));
  EXPECT_TRUE(taken({{OSSL_SIGNATURE_PARAM_PAD_MODE, "pss"}, {OSSL_SIGNATURE_PARAM_PSS_SALTLEN, "32"}}));
  EXPECT_FALSE(taken({{OSSL_SIGNATURE_PARAM_PAD_MODE, "none"}}));
  EXPECT_FALSE(taken({{OSSL_SIGNATURE_PARAM_PAD_MODE, "x931"}}));
  EXPECT_FALSE(taken({{OSSL_SIGNATURE_PARAM_PAD_MODE, "pss"}, {OSSL_SIGNATURE_PARAM_PSS_SALTLEN, "20"}}));
  EXPECT_FALSE(taken({{OSSL_SIGNATURE_PARAM_PAD_MODE, "pss"}, {OSSL_SIGNATURE_PARAM_PSS_SALTLEN, "max"}}));
  EXPECT_FALSE(taken({{OSSL_SIGNATURE_PARAM_PAD_MODE, "pss"}, {OSSL_SIGNATURE_PARAM_PSS_SALTLEN, "32x"}}));
  EXPECT_EQ(signatures, 0) << "nothing was signed";
}

}  // namespace
}  // namespace kortti::test
