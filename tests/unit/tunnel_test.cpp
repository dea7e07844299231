// tls/: how a tunnel's TLS is set up — which of a clinician's
// authentication certificates it presents, from the CA names of the
// server's certificate request (tls::present), and the upstream's context.
// Through korttid and s_server: tls_test.cpp.

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "common/openssl.hpp"
#include "tests/support/support.hpp"
#include "tls/tunnels.hpp"

namespace kortti::test {
namespace {

std::vector<X509Ptr> certificates_in(const fs::path& pem) {
  BioPtr bio(BIO_new_file(pem.c_str(), "r"));
  std::vector<X509Ptr> out;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  ERR_clear_error();  // the end of the file
  return out;
}

// `person`'s authentication certificate, and its issuer as a token that
// carries it has it (or none).
tls::ClientCertificate client(const std::string& person, const std::string& issuer, bool with_chain = true) {
  tls::ClientCertificate c;
  c.cert_id = person;
  c.der = certificate_der(certificates_in(pki_dir() / "people" / person / "auth.pem").at(0).get());
  if (with_chain) c.chain = {certificate_der(certificates_in(pki_dir() / "ca" / (issuer + ".pem")).at(0).get())};
  return c;
}

// The CA names a server's certificate request carries.
class Names {
 public:
  Names() = default;
  ~Names() { sk_X509_NAME_pop_free(names_, X509_NAME_free); }
  Names(const Names&) = delete;
  Names& operator=(const Names&) = delete;
  // The subject of the certificate at `index` in a PEM file of the test PKI.
  Names& add(const std::string& pem, std::size_t index = 0) {
    const auto all = certificates_in(pki_dir() / pem);
    sk_X509_NAME_push(names_, X509_NAME_dup(X509_get_subject_name(all.at(index).get())));
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

class Present : public ::testing::Test {
 protected:
  tls::CardKeys keys_;
  const tls::ClientCertificate rsa_ = client("physician", "hc-rsa");  // under hc-rsa, under g2-root
  const tls::ClientCertificate ec_ = client("specialist", "hc-ec");   // under hc-ec, under g3-root
};

TEST_F(Present, TheCertificateWhoseIssuerTheServerNamesWhateverItsPlace) {
  EXPECT_EQ(tls::present(keys_, {rsa_, ec_}, Names().add("ca/hc-ec.pem").get()), 1U);
  EXPECT_EQ(tls::present(keys_, {rsa_, ec_}, Names().add("ca/hc-rsa.pem").get()), 0U);
  EXPECT_EQ(tls::present(keys_, {ec_, rsa_}, Names().add("ca/hc-rsa.pem").get()), 1U);
  EXPECT_EQ(tls::present(keys_, {rsa_, ec_}, Names().add_stranger().add("ca/hc-ec.pem").get()), 1U);
}

TEST_F(Present, ARootTheServerNamesCountsThroughTheIssuerTheTokenCarries) {
  EXPECT_EQ(tls::present(keys_, {rsa_, ec_}, Names().add("ca/hc-ec-chain.pem", 1).get()), 1U) << "g3-root";
  // Without its issuer on the token, the root says nothing of the certificate.
  EXPECT_EQ(
      tls::present(keys_, {rsa_, client("specialist", "hc-ec", false)}, Names().add("ca/hc-ec-chain.pem", 1).get()),
      0U);
}

TEST_F(Present, TheFirstWhenTheServerNamesNoneOrNoneFits) {
  EXPECT_EQ(tls::present(keys_, {ec_, rsa_}, nullptr), 0U);
  EXPECT_EQ(tls::present(keys_, {ec_, rsa_}, Names().get()), 0U);
  EXPECT_EQ(tls::present(keys_, {ec_, rsa_}, Names().add_stranger().get()), 0U);
  EXPECT_EQ(tls::present(keys_, {rsa_}, Names().add("ca/hc-ec.pem").get()), 0U);
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
