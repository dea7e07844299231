#include <regex>

#include "ipc/convert.hpp"
#include "ipc/core.hpp"
#include "ipc/params.hpp"
#include "ipc/shared.hpp"
#include "policy/policy.hpp"

namespace kortti::ipc {

namespace {

policy::Action action_param(Params& params, std::optional<policy::Action> fallback) {
  auto name = params.optional_string("action");
  if (!name) {
    if (fallback) return *fallback;
    invalid_param("action", "is required (sign.prescription, sign.document or authenticate)");
  }
  auto action = policy::parse_action(*name);
  if (!action) invalid_param("action", "must be sign.prescription, sign.document or authenticate, not '" + *name + "'");
  return *action;
}

// ATC codes: a letter, two digits, then up to two letters and two digits.
bool is_atc(const std::string& code) {
  static const std::regex pattern("^[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$");
  return std::regex_match(code, pattern);
}

}  // namespace

policy::Context context_param(Json& params) {
  policy::Context c;
  auto it = params.find("context");
  if (it == params.end() || it->is_null()) return c;
  if (!it->is_object()) invalid_param("context", "must be an object");
  Params p(*it);
  c.atc_codes = p.string_array("atc_codes");
  for (const auto& atc : c.atc_codes)
    if (!is_atc(atc)) invalid_param("context.atc_codes", "has '" + atc + "', which is not an ATC code");
  c.medicine_classes = p.string_array("medicine_classes");
  c.patient_id = p.optional_string("patient_id");
  c.workplace = p.optional_string("workplace");
  c.supervised = p.boolean("supervised", false);
  return c;
}

void register_policy_methods(Core& core) {
  core.add("certificates.identity", MethodGroup::read, [&core](const std::shared_ptr<Call>& call) {
    Params params(call->params());
    const std::string cert_id = params.string("cert_id");
    std::optional<policy::Action> action;
    if (params.find("action") != nullptr) action = action_param(params, std::nullopt);
    core.services.tokens->certificate(cert_id, [&core, call, action](Result<pkcs11::CertificateInfo> r) {
      if (!r.ok()) return (void)call->fail(r.error());
      pkcs11::CertificateInfo cert = std::move(r).value();
      // Validate for what the key is for, unless the caller says.
      const bool signing =
          std::find(cert.purposes.begin(), cert.purposes.end(), pkcs11::Purpose::signature) != cert.purposes.end();
      const policy::Action chosen =
          action.value_or(signing ? policy::Action::sign_prescription : policy::Action::authenticate);
      core.services.policy->identity(
          cert.der, cert.chain, chosen,
          [call, cert_id = cert.cert_id, chosen](Result<policy::Decision> d) {
            if (!d.ok()) return (void)call->fail(d.error());
            const policy::Decision& decision = d.value();
            call->respond(
                {{"cert_id", wstr(cert_id)},
                 {"action", wstr(policy::name_of(chosen))},
                 {"identity", decision.identity ? to_json(*decision.identity) : Json(nullptr)},
                 {"validation", decision.certificate ? to_json(*decision.certificate) : Json(nullptr)},
                 {"professional", decision.professional ? policy::to_json(*decision.professional) : Json(nullptr)},
                 {"registry", to_json(decision.registry, decision.registry_stale)}});
          },
          Ticket{call->stop_token()});
    });
  });

  core.add("policy.check", MethodGroup::read, [&core](const std::shared_ptr<Call>& call) {
    Params params(call->params());
    auto cert_id = params.optional_string("cert_id");
    auto number = params.optional_string("registration_number");
    if (cert_id.has_value() == number.has_value())
      throw Error(Errc::invalid_params, "give either 'cert_id' or 'registration_number'");
    const policy::Action action = action_param(params, std::nullopt);
    policy::Context context = context_param(call->params());
    auto answer = [call](Result<policy::Decision> d) {
      if (!d.ok()) return (void)call->fail(d.error());
      call->respond(to_json(d.value()));
    };
    if (number) {
      core.services.policy->check(std::nullopt, {}, number, action, std::move(context), answer,
                                  Ticket{call->stop_token()});
      return;
    }
    core.services.tokens->certificate(*cert_id, [&core, call, action, context = std::move(context),
                                                 answer](Result<pkcs11::CertificateInfo> r) mutable {
      if (!r.ok()) return (void)call->fail(r.error());
      core.services.policy->check(r.value().der, r.value().chain, std::nullopt, action, std::move(context), answer,
                                  Ticket{call->stop_token()});
    });
  });

  core.add("registry.lookup", MethodGroup::read, [&core](const std::shared_ptr<Call>& call) {
    Params params(call->params());
    const std::string number = params.string("registration_number");
    core.services.policy->lookup(number, [&core, call, number](Result<policy::Registry::Lookup> r) {
      if (!r.ok()) return (void)call->fail(r.error());
      if (!r.value().professional)
        return (void)call->fail(Error(Errc::not_found, "no professional " + number + " in the Valvira registry"));
      call->respond({{"professional", policy::to_json(*r.value().professional)},
                     {"registry", to_json(r.value().provenance, core.services.policy->stale())}});
    });
  });
}

}  // namespace kortti::ipc
