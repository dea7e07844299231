// Who a certificate belongs to and what the policy makes of it, without
// signing anything.

#include <algorithm>

#include "service/prepared.hpp"

namespace kortti::service {

Task<IdentityReport> Service::identity(Caller caller, std::string cert_id, std::optional<policy::Action> action) {
  const pkcs11::CertificateInfo cert = co_await services_.tokens->certificate(cert_id);
  // Validate for what the key is for, unless the caller says.
  const bool signing =
      std::find(cert.purposes.begin(), cert.purposes.end(), pkcs11::Purpose::signature) != cert.purposes.end();
  IdentityReport report;
  report.cert_id = cert.cert_id;
  report.action = action.value_or(signing ? policy::Action::sign_prescription : policy::Action::authenticate);
  report.decision = co_await policy().identity(cert.der, cert.chain, report.action, caller.ticket());
  co_return report;
}

Task<pkcs11::CertificateInfo> Service::share_certificate(Caller caller, pkcs11::Purpose purpose) {
  if (!caller.origin) throw Error(Errc::invalid_params, "'origin' is required: the page that asks");
  const bool signing = purpose == pkcs11::Purpose::signature;
  pkcs11::TokenService::Listing listed = co_await services_.tokens->all_certificates();
  for (auto& cert : listed.certificates) {
    if (!pkcs11::serves_only(cert, purpose)) continue;
    pkcs11::Credentials dialog_only;
    dialog_only.prompt = true;
    check_pin_source(caller, dialog_only, signing);  // a dialog this korttid can show, for its own user
    co_await services_.pinentry->confirm(sharing_dialog(caller, cert), caller.stop);
    co_return cert;
  }
  throw listed.none_fit(signing ? "a signature certificate of a key that signs only"
                                : "an authentication certificate of a key that only logs in");
}

Task<policy::Decision> Service::check(Caller caller, CheckSubject subject, policy::Action action,
                                      policy::Context context) {
  if (subject.cert_id.has_value() == subject.registration_number.has_value())
    throw Error(Errc::invalid_params, "give either 'cert_id' or 'registration_number'");
  // A document's author is the business of the signing path, not a client's.
  context.author_registration_number.reset();
  context.author_prescriber_id.reset();
  if (subject.registration_number) {
    std::vector<Bytes> no_chain;
    co_return co_await policy().check(std::nullopt, std::move(no_chain), std::move(subject.registration_number), action,
                                      std::move(context), caller.ticket());
  }
  const pkcs11::CertificateInfo cert = co_await services_.tokens->certificate(*subject.cert_id);
  co_return co_await policy().check(cert.der, cert.chain, std::nullopt, action, std::move(context), caller.ticket());
}

Task<policy::Registry::Lookup> Service::lookup(Caller caller, std::string registration_number) {
  policy::Registry::Lookup found = co_await policy().lookup(registration_number, caller.ticket());
  if (!found.professional)
    throw Error(Errc::not_found, "no professional " + registration_number + " in the Valvira registry");
  co_return found;
}

}  // namespace kortti::service
