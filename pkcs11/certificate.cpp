#include "pkcs11/certificate.hpp"

#include <openssl/core_names.h>

#include <ctime>

#include "common/encoding.hpp"
#include "common/openssl.hpp"

namespace kortti::pkcs11 {

namespace {

SystemTime to_time(const ASN1_TIME* t) { return to_system_time(t).value_or(SystemTime{}); }

std::string nist_curve_name(const std::string& group) {
  if (group == "prime256v1" || group == "P-256") return "P-256";
  if (group == "secp384r1" || group == "P-384") return "P-384";
  if (group == "secp521r1" || group == "P-521") return "P-521";
  return group;
}

}  // namespace

std::vector<Purpose> purposes_from_key_usage(std::uint32_t key_usage) {
  std::vector<Purpose> out;
  if ((key_usage & KU_NON_REPUDIATION) != 0) out.push_back(Purpose::signature);
  if ((key_usage & KU_DIGITAL_SIGNATURE) != 0) out.push_back(Purpose::authentication);
  return out;
}

void describe_certificate(CertificateInfo& info) {
  X509Ptr cert = parse_certificate(info.der);
  if (!cert) throw Error(Errc::not_found, "the certificate object on the card is not valid DER");
  info.subject = name_rfc2253(X509_get_subject_name(cert.get()));
  info.issuer = name_rfc2253(X509_get_issuer_name(cert.get()));
  BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
  if (serial) {
    Bytes raw(static_cast<std::size_t>(BN_num_bytes(serial.get())));
    BN_bn2bin(serial.get(), raw.data());
    info.serial = hex_encode(raw);
  }
  info.not_before = to_time(X509_get0_notBefore(cert.get()));
  info.not_after = to_time(X509_get0_notAfter(cert.get()));
  const EVP_PKEY* key = X509_get0_pubkey(cert.get());
  if (key == nullptr) throw Error(Errc::not_found, "the certificate on the card has an unreadable public key");
  info.key_bits = EVP_PKEY_get_bits(key);
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
    info.key_type = KeyType::ec;
    char group[64] = {};
    std::size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) == 1)
      info.curve = nist_curve_name(group);
  } else if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA || EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA_PSS) {
    info.key_type = KeyType::rsa;
  } else {
    // An Ed25519 key (a PIV token may hold one) was taken for RSA, and every
    // signature with it failed at the card.
    const char* type = EVP_PKEY_get0_type_name(key);
    throw Error(Errc::unsupported, std::string("the certificate's key is ") +
                                       (type != nullptr ? type : "of no known type") +
                                       ", neither RSA nor EC: korttid cannot sign with it");
  }
  info.purposes = purposes_from_key_usage(key_usage_or_none(cert.get()));
}

}  // namespace kortti::pkcs11
