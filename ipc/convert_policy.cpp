// How policy/ types look on the wire (docs/protocol.md): identities,
// validations, registry records and decisions. Separate from convert.cpp so
// that what only needs the policy's types (the registry fuzzer) links only them.

#include "common/encoding.hpp"
#include "ipc/convert.hpp"

namespace kortti::ipc {

namespace {

Json validity_json(const policy::Validity& v) {
  return {{"valid_from", v.from ? Json(wstr(*v.from)) : Json(nullptr)},
          {"valid_to", v.to ? Json(wstr(*v.to)) : Json(nullptr)}};
}

}  // namespace

Json to_json(const policy::Professional& p) {
  Json rights = Json::array();
  for (const auto& r : p.rights) {
    Json j = validity_json(r.valid);
    j["code"] = wstr(r.code);
    if (!r.name.empty()) j["name"] = wstr(r.name);
    rights.push_back(std::move(j));
  }
  Json restrictions = Json::array();
  for (const auto& r : p.restrictions) {
    Json j = validity_json(r.valid);
    j["target"] = wstr(r.target);
    if (!r.target_name.empty()) j["target_name"] = wstr(r.target_name);
    j["object"] = r.object_system.empty() ? Json(nullptr)
                                          : Json{{"system", wstr(r.object_system)}, {"code", wstr(r.object_code)}};
    j["scope"] = r.scope ? Json(wstr(*r.scope)) : Json(nullptr);
    restrictions.push_back(std::move(j));
  }
  Json specialties = Json::array();
  for (const auto& s : p.specialties) specialties.push_back(wstr(s));
  // The personal identity code stays inside: the rules need it (self-
  // prescribing), a client asking who someone is does not.
  Json identifiers = Json::object();
  if (!p.satu.empty()) identifiers["satu"] = wstr(p.satu);
  return Json{{"registration_number", wstr(p.registration_number)},
              {"prescriber_id", p.prescriber_id.empty() ? Json(nullptr) : Json(wstr(p.prescriber_id))},
              {"name", {{"given", wstr(p.given_name)}, {"family", wstr(p.family_name)}}},
              {"identifiers", std::move(identifiers)},
              {"rights", std::move(rights)},
              {"restrictions", std::move(restrictions)},
              {"specialties", std::move(specialties)}};
}

Json to_json(const policy::Identity& id) {
  Json purposes = Json::array();
  if (id.non_repudiation) purposes.push_back("signature");
  if (id.digital_signature) purposes.push_back("authentication");
  Json policies = Json::array();
  for (const auto& p : id.policies) policies.push_back(wstr(p));
  auto optional = [](const std::string& s) { return s.empty() ? Json(nullptr) : Json(wstr(s)); };
  return Json{
      {"name", {{"given", wstr(id.given_name)}, {"family", wstr(id.family_name)}, {"common", wstr(id.common_name)}}},
      {"title", optional(id.title)},
      {"organisation", optional(id.organisation)},
      {"satu", optional(id.satu)},
      {"registration_number", optional(id.registration_number)},
      {"card_type", optional(id.card_type)},
      {"policies", std::move(policies)},
      {"purposes", std::move(purposes)}};
}

Json to_json(const policy::ValidationResult& v) {
  Json chain = Json::array();
  for (const auto& s : v.chain) chain.push_back(wstr(s));
  Json revocation = {
      {"method", wstr(v.revocation.method)}, {"status", wstr(v.revocation.status)}, {"cached", v.revocation.cached}};
  if (!v.revocation.source.empty()) revocation["source"] = wstr(v.revocation.source);
  if (v.revocation.revoked_at) revocation["revoked_at"] = wstr(to_rfc3339(*v.revocation.revoked_at));
  if (!v.revocation.reason.empty()) revocation["reason"] = wstr(v.revocation.reason);
  if (v.revocation.fail_mode) revocation["fail_mode"] = wstr(*v.revocation.fail_mode);
  Json j = {{"status", wstr(v.status)}, {"chain", std::move(chain)}, {"revocation", std::move(revocation)}};
  if (!v.message.empty()) j["message"] = wstr(v.message);
  return j;
}

Json to_json(const policy::Provenance& p, bool stale) {
  if (!p.imported_at) return Json{{"imported", false}};
  return Json{
      {"imported", true},
      {"source", wstr(p.source)},
      {"imported_at", wstr(to_rfc3339(*p.imported_at))},
      {"records", p.records},
      {"sha256", wstr(p.sha256)},
      {"age_s",
       std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - *p.imported_at).count()},
      {"stale", stale}};
}

namespace {

Json reasons_json(const std::vector<Reason>& reasons) {
  Json out = Json::array();
  for (const auto& r : reasons) out.push_back({{"code", wstr(r.code)}, {"message", wstr(r.message)}});
  return out;
}

}  // namespace

Json to_json(const policy::Decision& d) {
  Json j = {{"allowed", d.allowed},
            {"reasons", reasons_json(d.reasons)},
            {"warnings", reasons_json(d.warnings)},
            {"professional", d.professional ? to_json(*d.professional) : Json(nullptr)},
            {"registry", to_json(d.registry, d.registry_stale)}};
  if (d.identity) j["identity"] = to_json(*d.identity);
  if (d.certificate) j["certificate"] = to_json(*d.certificate);
  return j;
}

}  // namespace kortti::ipc
