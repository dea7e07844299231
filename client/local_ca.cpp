#include "client/local_ca.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <stdexcept>

#include "common/openssl.hpp"

namespace kortti::cli {

namespace {

[[noreturn]] void failed(const char* call) {
  throw std::runtime_error(std::string(call) + " failed: " + openssl_error("no detail"));
}

void check(int ok, const char* call) {
  if (ok != 1) failed(call);
}

EvpPkeyPtr p256_key() {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) failed("EVP_EC_gen");
  return key;
}

void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  const X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext) failed("X509V3_EXT_conf_nid");
  check(X509_add_ext(cert, ext.get(), -1), "X509_add_ext");
}

// A certificate with a random serial, valid from an hour ago (clock skew)
// for `validity`; extensions come after.
X509Ptr certificate(const std::string& subject_cn, EVP_PKEY* key, std::chrono::days validity) {
  X509Ptr cert(X509_new());
  if (!cert) failed("X509_new");
  check(X509_set_version(cert.get(), X509_VERSION_3), "X509_set_version");
  unsigned char serial[16];
  check(RAND_bytes(serial, sizeof serial), "RAND_bytes");
  serial[0] &= 0x7F;  // positive
  BignumPtr bn(BN_bin2bn(serial, sizeof serial, nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) == nullptr) failed("BN_to_ASN1_INTEGER");
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr) failed("X509_gmtime_adj");
  if (X509_time_adj_ex(X509_getm_notAfter(cert.get()), static_cast<int>(validity.count()), 0, nullptr) == nullptr)
    failed("X509_time_adj_ex");
  X509_NAME* name = X509_get_subject_name(cert.get());
  check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(subject_cn.c_str()), -1, -1, 0),
        "X509_NAME_add_entry_by_txt");
  check(X509_set_pubkey(cert.get(), key), "X509_set_pubkey");
  return cert;
}

std::string pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) failed("BIO_new");
  check(PEM_write_bio_X509(bio.get(), cert), "PEM_write_bio_X509");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

}  // namespace

LocalCertificate make_local_certificate(const std::string& owner, std::chrono::days validity) {
  const EvpPkeyPtr ca_key = p256_key();
  // Unique per setup, so that a CA left in some database by an earlier setup
  // is told apart.
  unsigned char tag[4];
  check(RAND_bytes(tag, sizeof tag), "RAND_bytes");
  char tag_hex[9];
  std::snprintf(tag_hex, sizeof tag_hex, "%02x%02x%02x%02x", tag[0], tag[1], tag[2], tag[3]);
  X509Ptr ca =
      certificate("kortti local CA for " + owner + " " + tag_hex, ca_key.get(), validity + std::chrono::days(1));
  check(X509_set_issuer_name(ca.get(), X509_get_subject_name(ca.get())), "X509_set_issuer_name");
  add_extension(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  add_extension(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign");
  add_extension(ca.get(), ca.get(), NID_subject_key_identifier, "hash");
  add_extension(ca.get(), ca.get(), NID_name_constraints,
                "critical,permitted;DNS:localhost,permitted;IP:127.0.0.1/255.255.255.255,"
                "permitted;IP:0:0:0:0:0:0:0:1/FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF");
  if (X509_sign(ca.get(), ca_key.get(), EVP_sha256()) == 0) failed("X509_sign");

  const EvpPkeyPtr leaf_key = p256_key();
  X509Ptr leaf = certificate("localhost", leaf_key.get(), validity);
  check(X509_set_issuer_name(leaf.get(), X509_get_subject_name(ca.get())), "X509_set_issuer_name");
  add_extension(leaf.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_extension(leaf.get(), ca.get(), NID_key_usage, "critical,digitalSignature");
  add_extension(leaf.get(), ca.get(), NID_ext_key_usage, "serverAuth");
  add_extension(leaf.get(), ca.get(), NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
  add_extension(leaf.get(), ca.get(), NID_authority_key_identifier, "keyid:always");
  if (X509_sign(leaf.get(), ca_key.get(), EVP_sha256()) == 0) failed("X509_sign");

  LocalCertificate out;
  out.ca_pem = pem(ca.get());
  out.leaf_pem = pem(leaf.get()) + out.ca_pem;
  // The key's text only ever in memory OpenSSL wipes when it is freed.
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio) failed("BIO_new");
  check(PEM_write_bio_PrivateKey(bio.get(), leaf_key.get(), nullptr, nullptr, 0, nullptr, nullptr),
        "PEM_write_bio_PrivateKey");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  out.key_pem = SecretString(std::string_view(data, static_cast<std::size_t>(size)));
  return out;  // ca_key is freed (and its scalar cleared) here: no more certificates under this CA
}

}  // namespace kortti::cli
