// tls/: how a tunnel's TLS is set up — which of a clinician's
// authentication certificates it presents, from the CA names and signature
// schemes of the server's certificate request (tls::present), and the
// upstream's context.
// Through korttid and s_server: tls_test.cpp.

#include <gtest/gtest.h>

#include "common/openssl.hpp"
#include "tests/support/support.hpp"
#include "tls/tunnels.hpp"

namespace kortti::test {
namespace {

// `person`'s authentication certificate, and its issuer as a token that
// carries it has it (or none).
tls::ClientCertificate client(const std::string& person, const std::string& issuer, bool with_chain = true) {
  tls::ClientCertificate c;
  c.cert_id = person;
  c.der = pem_certificates(pki_dir() / "people" / person / "auth.pem").at(0);
  if (with_chain) c.chain = {pem_certificates(pki_dir() / "ca" / (issuer + ".pem")).at(0)};
  const X509Ptr cert = parse_certificate(c.der);
  if (EVP_PKEY_get_base_id(X509_get0_pubkey(cert.get())) == EVP_PKEY_EC) {
    c.key_type = KeyType::ec;
    c.curve = "P-384";  // the test PKI's EC keys
  }
  return c;
}

// TLS signature schemes (RFC 8446 4.2.3).
constexpr std::uint16_t kRsaPkcs1Sha256 = 0x0401;
constexpr std::uint16_t kEcdsaP256Sha256 = 0x0403;
constexpr std::uint16_t kEcdsaP384Sha384 = 0x0503;
constexpr std::uint16_t kRsaPssSha256 = 0x0804;
constexpr std::uint16_t kEd25519 = 0x0807;

// The CA names a server's certificate request carries.
class Names {
 public:
  Names() = default;
  ~Names() { sk_X509_NAME_pop_free(names_, X509_NAME_free); }
  Names(const Names&) = delete;
  Names& operator=(const Names&) = delete;
  // The subject of the certificate at `index` in a PEM file of the test PKI.
  Names& add(const std::string& pem, std::size_t index = 0) {
    const X509Ptr cert = parse_certificate(pem_certificates(pki_dir() / pem).at(index));
    sk_X509_NAME_push(names_, X509_NAME_dup(X509_get_subject_name(cert.get())));
    return *this;
  }
  // A CA of no test certificate.
  Names& add_stranger() {
    X509_NAME* name = X509_NAME_new();
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Another CA"), -1, -1,
                               0);
    sk_X509_NAME_push(names_, name);
    return *this;
  }
  [[nodiscard]] const STACK_OF(X509_NAME) * get() const { return names_; }

 private:
  STACK_OF(X509_NAME) * names_ = sk_X509_NAME_new_null();
};

// A request that names CAs and says nothing of signature schemes.
tls::CertificateRequest naming(const STACK_OF(X509_NAME) * issuers) { return {issuers, {}, true}; }

class Present : public ::testing::Test {
 protected:
  tls::CardKeys keys_;
  const tls::ClientCertificate rsa_ = client("physician", "hc-rsa");  // under hc-rsa, under g2-root
  const tls::ClientCertificate ec_ = client("specialist", "hc-ec");   // under hc-ec, under g3-root
};

TEST_F(Present, TheCertificateWhoseIssuerTheServerNamesWhateverItsPlace) {
  EXPECT_EQ(tls::present(keys_, {rsa_, ec_}, naming(Names().add("ca/hc-ec.pem").get())), 1U);
  EXPECT_EQ(tls::present(keys_, {rsa_, ec_}, naming(Names().add("ca/hc-rsa.pem").get())), 0U);
  EXPECT_EQ(tls::present(keys_, {ec_, rsa_}, naming(Names().add("ca/hc-rsa.pem").get())), 1U);
  EXPECT_EQ(tls::present(keys_, {rsa_, ec_}, naming(Names().add_stranger().add("ca/hc-ec.pem").get())), 1U);
}

TEST_F(Present, ARootTheServerNamesCountsThroughTheIssuerTheTokenCarries) {
  EXPECT_EQ(tls::present(keys_, {rsa_, ec_}, naming(Names().add("ca/hc-ec-chain.pem", 1).get())), 1U) << "g3-root";
  // Without its issuer on the token, the root says nothing of the certificate.
  EXPECT_EQ(tls::present(keys_, {rsa_, client("specialist", "hc-ec", false)},
                         naming(Names().add("ca/hc-ec-chain.pem", 1).get())),
            0U);
}

TEST_F(Present, TheFirstWhenTheServerNamesNoneOrNoneFits) {
  EXPECT_EQ(tls::present(keys_, {ec_, rsa_}, naming(nullptr)), 0U);
  EXPECT_EQ(tls::present(keys_, {ec_, rsa_}, naming(Names().get())), 0U);
  EXPECT_EQ(tls::present(keys_, {ec_, rsa_}, naming(Names().add_stranger().get())), 0U);
  EXPECT_EQ(tls::present(keys_, {rsa_}, naming(Names().add("ca/hc-ec.pem").get())), 0U);
}

TEST(ClientCertificate, SignsWithTheSchemesOfItsKeyOnTheVersion) {
  tls::ClientCertificate rsa;
  EXPECT_TRUE(rsa.signs_with(kRsaPssSha256, true));
  EXPECT_FALSE(rsa.signs_with(kRsaPkcs1Sha256, true)) << "TLS 1.3 signs a handshake with PSS only";
  EXPECT_TRUE(rsa.signs_with(kRsaPkcs1Sha256, false));
  EXPECT_FALSE(rsa.signs_with(kEcdsaP384Sha384, false));
  rsa.rsa_pss = false;  // a token without PSS
  EXPECT_FALSE(rsa.signs_with(kRsaPssSha256, false));
  EXPECT_TRUE(rsa.signs_with(kRsaPkcs1Sha256, false));

  tls::ClientCertificate ec;
  ec.key_type = KeyType::ec;
  ec.curve = "P-384";
  EXPECT_TRUE(ec.signs_with(kEcdsaP384Sha384, true));
  EXPECT_FALSE(ec.signs_with(kEcdsaP256Sha256, true)) << "TLS 1.3 binds the scheme to the curve";
  EXPECT_TRUE(ec.signs_with(kEcdsaP256Sha256, false)) << "TLS 1.2 names the hash only";
  EXPECT_FALSE(ec.signs_with(kRsaPssSha256, false));
  EXPECT_FALSE(ec.signs_with(kEd25519, true));
}

TEST_F(Present, ACertificateWhoseKeySignsWithASchemeTheServerTakes) {
  // The server names no CA: the first that can sign.
  EXPECT_EQ(tls::present(keys_, {rsa_, ec_}, {nullptr, {kEcdsaP384Sha384}, true}), 1U);
  EXPECT_EQ(tls::present(keys_, {ec_, rsa_}, {nullptr, {kRsaPssSha256}, true}), 1U);
  // TLS 1.3's P-256 scheme is not the P-384 key's; on TLS 1.2 it is.
  EXPECT_EQ(tls::present(keys_, {ec_, rsa_}, {nullptr, {kEcdsaP256Sha256, kRsaPssSha256}, true}), 1U);
  EXPECT_EQ(tls::present(keys_, {ec_, rsa_}, {nullptr, {kEcdsaP256Sha256, kRsaPssSha256}, false}), 0U);
  // A named issuer counts among those that can sign; one that cannot sign
  // would make OpenSSL send no certificate, so one that can goes instead.
  Names rsa_ca;
  rsa_ca.add("ca/hc-rsa.pem");
  EXPECT_EQ(tls::present(keys_, {ec_, rsa_}, {rsa_ca.get(), {kRsaPssSha256, kEcdsaP384Sha384}, true}), 1U);
  EXPECT_EQ(tls::present(keys_, {rsa_, ec_}, {rsa_ca.get(), {kEcdsaP384Sha384}, true}), 1U);
  // None can sign: the issuer decides, as without schemes.
  EXPECT_EQ(tls::present(keys_, {ec_, rsa_}, {rsa_ca.get(), {kEd25519}, true}), 1U);
}

// The card signs in the tunnel's handshake only: a TLS 1.2 server's request
// to renegotiate (which would ask the card again, past the handshake's
// deadline) is declined.
TEST(UpstreamContext, DeclinesRenegotiationAndResumptionAndBuildsNoChainOfItsOwn) {
  tls::CardKeys keys;
  tls::Upstream u;
  u.name = "sso";
  u.ca_file = (pki_dir() / "ca" / "hc-rsa-chain.pem").string();
  const std::shared_ptr<SSL_CTX> ctx = tls::upstream_context(keys, u);
  EXPECT_NE(SSL_CTX_get_options(ctx.get()) & SSL_OP_NO_RENEGOTIATION, 0U);
  EXPECT_EQ(SSL_CTX_get_session_cache_mode(ctx.get()), SSL_SESS_CACHE_OFF);
  EXPECT_NE(SSL_CTX_get_mode(ctx.get()) & SSL_MODE_NO_AUTO_CHAIN, 0U) << "the chain sent is the card's";
}

}  // namespace
}  // namespace kortti::test
