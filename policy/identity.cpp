#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <stdexcept>

#include "common/openssl.hpp"
#include "policy/policy.hpp"

namespace kortti::policy {

namespace {

constexpr std::string_view kSubject = "subject:";
constexpr std::string_view kOtherName = "san:otherName:";

Asn1ObjectPtr object_of(const std::string& text) {
  // Short names (GN, serialNumber) and dotted OIDs alike.
  return Asn1ObjectPtr(OBJ_txt2obj(text.c_str(), 0));
}

std::string utf8_of(const ASN1_STRING* s) {
  unsigned char* out = nullptr;
  const int n = ASN1_STRING_to_UTF8(&out, s);
  const OpensslBytes owned(out);
  if (n < 0) return {};
  return std::string(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
}

std::string subject_value(X509* cert, const std::string& attribute) {
  Asn1ObjectPtr obj = object_of(attribute);
  if (!obj) return {};
  const X509_NAME* name = X509_get_subject_name(cert);
  const int index = X509_NAME_get_index_by_OBJ(name, obj.get(), -1);
  if (index < 0) return {};
  return utf8_of(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index)));
}

std::string other_name_value(X509* cert, const std::string& oid) {
  Asn1ObjectPtr wanted = object_of(oid);
  if (!wanted) return {};
  const GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return {};
  std::string value;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()) && value.empty(); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != GEN_OTHERNAME || OBJ_cmp(gn->d.otherName->type_id, wanted.get()) != 0) continue;
    const ASN1_TYPE* v = gn->d.otherName->value;
    switch (v->type) {
      case V_ASN1_UTF8STRING:
      case V_ASN1_PRINTABLESTRING:
      case V_ASN1_IA5STRING:
      case V_ASN1_VISIBLESTRING:
      case V_ASN1_BMPSTRING:
        value = utf8_of(v->value.asn1_string);
        break;
      default:
        break;
    }
  }
  return value;
}

std::string value_of(X509* cert, const std::string& source) {
  if (source.rfind(kSubject, 0) == 0) return subject_value(cert, source.substr(kSubject.size()));
  if (source.rfind(kOtherName, 0) == 0) return other_name_value(cert, source.substr(kOtherName.size()));
  return {};
}

std::vector<std::string> policies_of(X509* cert) {
  std::vector<std::string> out;
  const CertificatePoliciesPtr policies(
      static_cast<CERTIFICATEPOLICIES*>(X509_get_ext_d2i(cert, NID_certificate_policies, nullptr, nullptr)));
  if (!policies) return out;
  for (int i = 0; i < sk_POLICYINFO_num(policies.get()); ++i) {
    char buf[128];
    OBJ_obj2txt(buf, sizeof buf, sk_POLICYINFO_value(policies.get(), i)->policyid, 1);
    out.emplace_back(buf);
  }
  return out;
}

}  // namespace

void check_mapping_source(const std::string& source) {
  if (source.empty()) return;  // not read
  std::string target;
  if (source.rfind(kSubject, 0) == 0) {
    target = source.substr(kSubject.size());
  } else if (source.rfind(kOtherName, 0) == 0) {
    target = source.substr(kOtherName.size());
    if (target.find_first_not_of("0123456789.") != std::string::npos)
      throw std::invalid_argument("otherName needs a dotted OID, not '" + target + "'");
  } else {
    throw std::invalid_argument("'" + source + "' is neither \"subject:<attribute>\" nor \"san:otherName:<OID>\"");
  }
  if (target.empty() || !object_of(target)) throw std::invalid_argument("unknown attribute or OID '" + target + "'");
}

Identity read_identity(ByteView der, const IdentityMapping& m) {
  X509Ptr cert = parse_certificate(der);
  if (!cert) throw Error(Errc::certificate_invalid, "the certificate is not valid DER").with_detail("untrusted");
  Identity id;
  id.given_name = value_of(cert.get(), m.given_name);
  id.family_name = value_of(cert.get(), m.family_name);
  id.common_name = value_of(cert.get(), m.common_name);
  id.title = value_of(cert.get(), m.title);
  id.organisation = value_of(cert.get(), m.organisation);
  id.satu = value_of(cert.get(), m.satu);
  id.registration_number = value_of(cert.get(), m.registration_number);
  id.policies = policies_of(cert.get());
  for (const auto& p : id.policies) {
    if (auto it = m.card_types.find(p); it != m.card_types.end()) {
      id.card_type = it->second;
      break;
    }
  }
  const std::uint32_t usage = key_usage_or_none(cert.get());
  id.non_repudiation = (usage & KU_NON_REPUDIATION) != 0;
  id.digital_signature = (usage & KU_DIGITAL_SIGNATURE) != 0;
  return id;
}

}  // namespace kortti::policy
