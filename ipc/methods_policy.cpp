// Who a certificate belongs to, what the policy would decide, and the
// Valvira registry, as protocol.md has them.

#include "common/codes.hpp"
#include "ipc/convert.hpp"
#include "ipc/methods.hpp"
#include "ipc/params.hpp"

namespace kortti::ipc {

namespace {

std::optional<policy::Action> action_param(Params& params) {
  auto name = params.optional_string("action");
  if (!name) return std::nullopt;
  auto action = policy::parse_action(*name);
  if (!action)
    invalid_param("action", "must be sign.prescription, sign.document or authenticate, not '" + echo(*name) + "'");
  return action;
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
    if (!is_atc_code(atc)) invalid_param("context.atc_codes", "has '" + echo(atc) + "', which is not an ATC code");
  c.medicine_classes = p.string_array("medicine_classes");
  c.patient_id = p.optional_string("patient_id");
  c.workplace = p.optional_string("workplace");
  c.supervised = p.boolean("supervised", false);
  return c;
}

Task<Json> certificates_identity(Core& core, std::shared_ptr<Call> call) {
  Params params(call->params());
  std::string cert_id = params.identifier("cert_id");
  const std::optional<policy::Action> action = action_param(params);
  const service::IdentityReport r = co_await core.service().identity(call->caller(), std::move(cert_id), action);
  const policy::Decision& d = r.decision;
  co_return Json{{"cert_id", wstr(r.cert_id)},
                 {"action", wstr(policy::name_of(r.action))},
                 {"identity", d.identity ? to_json(*d.identity) : Json(nullptr)},
                 {"validation", d.certificate ? to_json(*d.certificate) : Json(nullptr)},
                 {"professional", d.professional ? to_json(*d.professional) : Json(nullptr)},
                 {"registry", to_json(d.registry, d.registry_stale)}};
}

Task<Json> policy_check(Core& core, std::shared_ptr<Call> call) {
  Params params(call->params());
  service::CheckSubject subject{params.optional_identifier("cert_id"), params.optional_string("registration_number")};
  if (subject.cert_id.has_value() == subject.registration_number.has_value())
    throw Error(Errc::invalid_params, "give either 'cert_id' or 'registration_number'");
  const std::optional<policy::Action> action = action_param(params);
  if (!action) invalid_param("action", "is required (sign.prescription, sign.document or authenticate)");
  const policy::Decision d =
      co_await core.service().check(call->caller(), std::move(subject), *action, context_param(call->params()));
  co_return to_json(d);
}

Task<Json> registry_lookup(Core& core, std::shared_ptr<Call> call) {
  Params params(call->params());
  const policy::Registry::Lookup r =
      co_await core.service().lookup(call->caller(), params.string("registration_number"));
  co_return Json{{"professional", to_json(*r.professional)},
                 {"registry", to_json(r.provenance, core.services.policy->stale())}};
}

}  // namespace kortti::ipc
