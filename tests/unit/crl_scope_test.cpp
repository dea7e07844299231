// A CRL decides only for the certificates it covers (RFC 5280 6.3.3): a
// delta CRL, an indirect one, one with a critical extension korttid does
// not know, one of another partition or kind of certificate, one dated in
// the future or signed by a CA whose certificate does not allow it says
// nothing; one of some reasons only may say "revoked", never "good". The
// CRLs here are signed by the test CA's own key, as it would sign them.

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <functional>

#include "policy/revocation.hpp"
#include "tests/support/support.hpp"

namespace kortti::test {
namespace {

using namespace std::chrono_literals;

GENERAL_NAMES* uri_names(const std::string& uri) {
  GENERAL_NAMES* names = sk_GENERAL_NAME_new_null();
  GENERAL_NAME* name = GENERAL_NAME_new();
  ASN1_IA5STRING* text = ASN1_IA5STRING_new();
  ASN1_STRING_set(text, uri.data(), static_cast<int>(uri.size()));
  GENERAL_NAME_set0_value(name, GEN_URI, text);
  sk_GENERAL_NAME_push(names, name);
  return names;
}

// The extension `nid` of `value` (freed here), critical or not.
template <typename T>
void add_extension(X509_CRL* crl, int nid, T* value, void (*free)(T*), bool critical = true) {
  ASSERT_EQ(X509_CRL_add1_ext_i2d(crl, nid, value, critical ? 1 : 0, X509V3_ADD_DEFAULT), 1);
  free(value);
}

// An extension korttid cannot know: a private OID with a NULL value.
X509_EXTENSION* unknown_extension(bool critical) {
  const Owned<ASN1_OBJECT, ASN1_OBJECT_free> oid(OBJ_txt2obj("1.3.6.1.4.1.99999.42", 1));
  const Owned<ASN1_OCTET_STRING, ASN1_OCTET_STRING_free> value(ASN1_OCTET_STRING_new());
  ASN1_OCTET_STRING_set(value.get(), reinterpret_cast<const unsigned char*>("\x05\x00"), 2);
  return X509_EXTENSION_create_by_OBJ(nullptr, oid.get(), critical ? 1 : 0, value.get());
}

class CrlScope : public ::testing::Test {
 protected:
  const X509Ptr leaf = read_pem_certificate(pki_dir() / "people" / "physician" / "sign.pem");
  const X509Ptr issuer = read_pem_certificate(pki_dir() / "ca" / "hc-rsa.pem");
  const EvpPkeyPtr issuer_key = read_pem_key(pki_dir() / "ca" / "hc-rsa.key");
  TempDir dir;
  int made = 0;

  void SetUp() override { ASSERT_TRUE(leaf && issuer && issuer_key); }

  // The leaf's own CRL distribution point, as make-pki.sh wrote it.
  [[nodiscard]] std::string leaf_distribution_point() const {
    return "file://" + (pki_dir() / "ca" / "hc-rsa" / "crl.pem").string();
  }

  // A CRL of the issuer, signed by it, current, listing the leaf if
  // `revoked`; `shape` adds what the test is about. Written to a file of
  // its own: the path.
  fs::path crl(bool revoked, const std::function<void(X509_CRL*, X509_REVOKED*)>& shape = {},
               std::chrono::seconds this_update = -1h) {
    const Owned<X509_CRL, X509_CRL_free> crl(X509_CRL_new());
    X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2);
    X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(issuer.get()));
    const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    const Owned<ASN1_TIME, ASN1_TIME_free> last(ASN1_TIME_set(nullptr, now + this_update.count()));
    const Owned<ASN1_TIME, ASN1_TIME_free> next(ASN1_TIME_set(nullptr, now + 86400));
    X509_CRL_set1_lastUpdate(crl.get(), last.get());
    X509_CRL_set1_nextUpdate(crl.get(), next.get());
    X509_REVOKED* entry = nullptr;
    if (revoked) {
      entry = X509_REVOKED_new();
      X509_REVOKED_set_serialNumber(entry, X509_get_serialNumber(leaf.get()));
      X509_REVOKED_set_revocationDate(entry, last.get());
      X509_CRL_add0_revoked(crl.get(), entry);
    }
    if (shape) shape(crl.get(), entry);
    X509_CRL_sort(crl.get());
    EXPECT_GT(X509_CRL_sign(crl.get(), issuer_key.get(), EVP_sha256()), 0);
    const fs::path file = dir / ("crl-" + std::to_string(++made) + ".pem");
    BioPtr out(BIO_new_file(file.c_str(), "w"));
    EXPECT_EQ(PEM_write_bio_X509_CRL(out.get(), crl.get()), 1);
    return file;
  }

  // What a CrlClient with only `file` configured answers for the leaf:
  // "good", "revoked", or "none: why".
  [[nodiscard]] std::string answer(const fs::path& file, X509* signer = nullptr) const {
    policy::RevocationOptions options;
    options.ocsp = false;
    options.crl_fetch = false;
    options.crl_files = {file.string()};
    policy::CrlClient client(options);
    std::string why_not;
    const auto a = client.check(leaf.get(), signer != nullptr ? signer : issuer.get(), std::chrono::system_clock::now(),
                                0s, why_not);
    return a ? a->status : "none: " + why_not;
  }

  // An issuingDistributionPoint that `set` fills in.
  static std::function<void(X509_CRL*, X509_REVOKED*)> idp(const std::function<void(ISSUING_DIST_POINT*)>& set) {
    return [set](X509_CRL* c, X509_REVOKED*) {
      ISSUING_DIST_POINT* p = ISSUING_DIST_POINT_new();
      set(p);
      add_extension(c, NID_issuing_distribution_point, p, ISSUING_DIST_POINT_free);
    };
  }
};

TEST_F(CrlScope, ACompleteCrlOfTheIssuerDecides) {
  EXPECT_EQ(answer(crl(false)), "good");
  EXPECT_EQ(answer(crl(true)), "revoked");
}

TEST_F(CrlScope, ADeltaCrlSaysNothing) {
  // A delta lists what changed since its base: the leaf revoked before
  // that is on the base alone.
  const std::string a = answer(crl(false, [](X509_CRL* c, X509_REVOKED*) {
    ASN1_INTEGER* base = ASN1_INTEGER_new();
    ASN1_INTEGER_set(base, 7);
    add_extension(c, NID_delta_crl, base, ASN1_INTEGER_free);
  }));
  EXPECT_NE(a.find("none: "), std::string::npos) << a;
  EXPECT_NE(a.find("delta CRL"), std::string::npos) << a;
}

TEST_F(CrlScope, AnUnknownCriticalExtensionSaysNothingAnUnknownPlainOneIsIgnored) {
  const std::string critical = answer(crl(false, [](X509_CRL* c, X509_REVOKED*) {
    X509_EXTENSION* e = unknown_extension(true);
    X509_CRL_add_ext(c, e, -1);
    X509_EXTENSION_free(e);
  }));
  EXPECT_NE(critical.find("critical extension korttid does not know (1.3.6.1.4.1.99999.42)"), std::string::npos)
      << critical;
  EXPECT_EQ(answer(crl(false,
                       [](X509_CRL* c, X509_REVOKED*) {
                         X509_EXTENSION* e = unknown_extension(false);
                         X509_CRL_add_ext(c, e, -1);
                         X509_EXTENSION_free(e);
                       })),
            "good");
}

TEST_F(CrlScope, AnEntryWithAnUnknownCriticalExtensionOrAnotherIssuerSaysNothing) {
  const std::string critical = answer(crl(true, [](X509_CRL*, X509_REVOKED* r) {
    X509_EXTENSION* e = unknown_extension(true);
    X509_REVOKED_add_ext(r, e, -1);
    X509_EXTENSION_free(e);
  }));
  EXPECT_NE(critical.find("entry with a critical extension"), std::string::npos) << critical;
  // certificateIssuer: the entries from here on are another CA's.
  const std::string indirect = answer(crl(true, [](X509_CRL*, X509_REVOKED* r) {
    GENERAL_NAMES* other = uri_names("http://other.example/ca");
    ASSERT_EQ(X509_REVOKED_add1_ext_i2d(r, NID_certificate_issuer, other, 1, X509V3_ADD_DEFAULT), 1);
    GENERAL_NAMES_free(other);
  }));
  EXPECT_NE(indirect.find("indirect CRL"), std::string::npos) << indirect;
}

TEST_F(CrlScope, ACrlOfAnotherKindOfCertificateSaysNothing) {
  const std::string ca_only = answer(crl(false, idp([](ISSUING_DIST_POINT* p) { p->onlyCA = 0xFF; })));
  EXPECT_NE(ca_only.find("CA certificates only"), std::string::npos) << ca_only;
  const std::string attributes = answer(crl(false, idp([](ISSUING_DIST_POINT* p) { p->onlyattr = 0xFF; })));
  EXPECT_NE(attributes.find("attribute certificates only"), std::string::npos) << attributes;
  const std::string indirect = answer(crl(false, idp([](ISSUING_DIST_POINT* p) { p->indirectCRL = 0xFF; })));
  EXPECT_NE(indirect.find("indirect CRL"), std::string::npos) << indirect;
  // The leaf is an end-entity certificate: a CRL of those covers it.
  EXPECT_EQ(answer(crl(false, idp([](ISSUING_DIST_POINT* p) { p->onlyuser = 0xFF; }))), "good");
}

TEST_F(CrlScope, APartitionedCrlDecidesOnlyForItsOwnPartition) {
  const std::string own = leaf_distribution_point();
  const auto partition = [](const std::string& uri) {
    return idp([uri](ISSUING_DIST_POINT* p) {
      p->distpoint = DIST_POINT_NAME_new();
      p->distpoint->type = 0;
      p->distpoint->name.fullname = uri_names(uri);
    });
  };
  EXPECT_EQ(answer(crl(true, partition(own))), "revoked");
  EXPECT_EQ(answer(crl(false, partition(own))), "good");
  // Another partition does not list the leaf whether or not it is revoked.
  const std::string other = answer(crl(false, partition("http://crl.example/hc-rsa-part-2.crl")));
  EXPECT_NE(other.find("distribution point the certificate does not name"), std::string::npos) << other;
}

TEST_F(CrlScope, ACrlOfSomeReasonsOnlyMaySayRevokedNeverGood) {
  const auto some_reasons = idp([](ISSUING_DIST_POINT* p) {
    p->onlysomereasons = ASN1_BIT_STRING_new();
    ASN1_BIT_STRING_set_bit(p->onlysomereasons, 1, 1);  // keyCompromise
  });
  EXPECT_EQ(answer(crl(true, some_reasons)), "revoked");
  const std::string silent = answer(crl(false, some_reasons));
  EXPECT_NE(silent.find("some revocation reasons only"), std::string::npos) << silent;
}

TEST_F(CrlScope, ACrlDatedInTheFutureSaysNothing) {
  const std::string a = answer(crl(false, {}, 2h));
  EXPECT_NE(a.find("dated in the future"), std::string::npos) << a;
}

TEST_F(CrlScope, ACrlOfACaWhoseCertificateDoesNotAllowCrlSigningSaysNothing) {
  // The issuer as it would be with keyCertSign alone: same name and key.
  X509Ptr no_crl_sign(X509_dup(issuer.get()));
  const int at = X509_get_ext_by_NID(no_crl_sign.get(), NID_key_usage, -1);
  ASSERT_GE(at, 0);
  X509_EXTENSION_free(X509_delete_ext(no_crl_sign.get(), at));
  ASN1_BIT_STRING* usage = ASN1_BIT_STRING_new();
  ASN1_BIT_STRING_set_bit(usage, 5, 1);  // keyCertSign
  ASSERT_EQ(X509_add1_ext_i2d(no_crl_sign.get(), NID_key_usage, usage, 1, X509V3_ADD_DEFAULT), 1);
  ASN1_BIT_STRING_free(usage);
  ASSERT_GT(X509_sign(no_crl_sign.get(), issuer_key.get(), EVP_sha256()), 0);
  // Read back, as korttid gets it: its key usage as now encoded.
  unsigned char* der = nullptr;
  const int length = i2d_X509(no_crl_sign.get(), &der);
  const unsigned char* p = der;
  no_crl_sign.reset(d2i_X509(nullptr, &p, length));
  OPENSSL_free(der);
  ASSERT_TRUE(no_crl_sign);
  const fs::path file = crl(true);
  EXPECT_EQ(answer(file), "revoked");
  const std::string a = answer(file, no_crl_sign.get());
  EXPECT_NE(a.find("does not allow signing CRLs"), std::string::npos) << a;
}

// A CRL is verified once and kept so: what is kept is which issuer
// certificate verified it. A certificate of the same name with another
// key (a rogue CA named as the real one) gets no answer from it.
TEST_F(CrlScope, AVerifiedCrlIsVerifiedAgainForAnotherKeyOfTheSameName) {
  const EvpPkeyPtr rogue_key = read_pem_key(pki_dir() / "ca" / "rogue-root.key");
  ASSERT_TRUE(rogue_key);
  X509Ptr rogue(X509_dup(issuer.get()));
  ASSERT_EQ(X509_set_pubkey(rogue.get(), rogue_key.get()), 1);
  ASSERT_GT(X509_sign(rogue.get(), rogue_key.get(), EVP_sha256()), 0);
  policy::RevocationOptions options;
  options.ocsp = false;
  options.crl_fetch = false;
  options.crl_files = {crl(true).string()};
  policy::CrlClient client(options);
  const auto check = [&](X509* signer) {
    std::string why_not;
    const auto a = client.check(leaf.get(), signer, std::chrono::system_clock::now(), 0s, why_not);
    return a ? a->status + (a->cached ? " (cached)" : "") : "none: " + why_not;
  };
  EXPECT_EQ(check(issuer.get()), "revoked");
  EXPECT_EQ(check(issuer.get()), "revoked (cached)");
  const std::string a = check(rogue.get());
  EXPECT_NE(a.find("does not verify with its issuer's key"), std::string::npos) << a;
  // The CRL that did not verify is dropped; read again, the real issuer's
  // key verifies it.
  EXPECT_EQ(check(issuer.get()), "revoked");
}

}  // namespace
}  // namespace kortti::test
