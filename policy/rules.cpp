#include <algorithm>
#include <cctype>

#include "policy/policy.hpp"

namespace kortti::policy {

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// Whether a prescription's code and a rule's code share medicines: the
// code is inside the rule's group, or is a group that holds the rule's
// code (N02A prescribed against a restriction on N02AA01).
bool overlaps(const std::string& prescribed, const std::string& rule) {
  return starts_with(prescribed, rule) || starts_with(rule, prescribed);
}

// Identity codes compared as the registry writes them: the check character
// and the century sign are capitals (010101A900R, not 010101a900r).
bool same_hetu(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
         });
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string who(const Professional& p) {
  return p.given_name + " " + p.family_name + " (" + p.registration_number + ")";
}

// Codes of the prescription that a restriction object covers.
std::vector<std::string> covered(const Restriction& r, const Context& c) {
  if (r.object_system.empty()) return c.atc_codes.empty() ? std::vector<std::string>{"(any)"} : c.atc_codes;
  if (r.object_system == "ATC") {
    std::vector<std::string> hit;
    for (const auto& atc : c.atc_codes)
      if (overlaps(atc, r.object_code)) hit.push_back(atc);
    return hit;
  }
  // Medicine classes (1.2.246.537.6.141.2008): 20 is "all medicines".
  if (r.object_code == "20") return c.atc_codes.empty() ? std::vector<std::string>{"(any)"} : c.atc_codes;
  if (std::find(c.medicine_classes.begin(), c.medicine_classes.end(), r.object_code) != c.medicine_classes.end())
    return {"medicine class " + r.object_code};
  return {};
}

// The right to prescribe: full, or limited to the listed ATC prefixes.
void right_rules(const PrescriptionRules& rules, const Professional& p, const Context& c, const std::string& today,
                 std::vector<Reason>& reasons) {
  bool full = false, limited = false;
  for (const auto& r : p.rights) {
    if (!r.valid.covers(today)) continue;
    full |= rules.rights.count(r.code) != 0;
    limited |= rules.limited_rights.count(r.code) != 0;
  }
  if (!full && !limited) {
    std::vector<std::string> held;
    for (const auto& r : p.rights)
      if (r.valid.covers(today)) held.push_back(r.code + (r.name.empty() ? "" : " " + r.name));
    reasons.push_back({"no_prescribing_right", who(p) + " has no valid right to prescribe (rights valid today: " +
                                                   (held.empty() ? std::string("none") : join(held)) + ")"});
  } else if (!full) {
    std::vector<std::string> outside;
    for (const auto& atc : c.atc_codes)
      if (std::none_of(rules.limited_atc.begin(), rules.limited_atc.end(),
                       [&](const std::string& prefix) { return starts_with(atc, prefix); }))
        outside.push_back(atc);
    if (!outside.empty())
      reasons.push_back({"outside_limited_right",
                         who(p) + " has the limited prescription right, which does not cover " + join(outside)});
  }
}

// One Valvira restriction, by its target code (1.2.246.537.6.143).
void restriction_rule(const Restriction& r, const Professional& p, const Context& c, std::vector<Reason>& reasons) {
  if (r.target == "10") {
    if (auto hit = covered(r, c); !hit.empty())
      reasons.push_back(
          {"prescribing_restricted", who(p) + " may not prescribe " + join(hit) +
                                         (r.object_system.empty() ? "" : " (restriction on " + r.object_code + ")")});
  } else if (r.target == "20") {
    reasons.push_back({"handling_medicines_restricted", who(p) + " may not handle medicines"});
  } else if (r.target == "30") {
    if (!c.supervised) reasons.push_back({"supervision_required", who(p) + " may work only under supervision"});
  } else if (r.target == "40") {
    if (!r.scope)
      reasons.push_back({"workplace_restricted", who(p) + " has a workplace restriction that names no workplace"});
    else if (!c.workplace || *c.workplace != *r.scope)
      reasons.push_back(
          {"workplace_restricted", who(p) + " may prescribe only in workplace '" + *r.scope + "'" +
                                       (c.workplace ? ", not '" + *c.workplace + "'" : ", and none was given")});
  } else if (r.target == "70") {
    if (!c.supervised)
      reasons.push_back({"student_status", who(p) + " is a student and may prescribe only under supervision"});
  } else if (r.target == "80") {
    reasons.push_back({"licence_restricted", who(p) + "'s licence is restricted"});
  }
  // 50 (procedure), 60 (activity object/method) and 90 (other) do not
  // govern prescribing; docs/policy.md says how to treat them.
}

// A prescription for the prescriber's own identity code.
void self_prescribing_rule(const PrescriptionRules& rules, const Professional& p, const Context& c,
                           std::vector<Reason>& reasons) {
  if (!c.patient_id || p.hetu.empty() || !same_hetu(*c.patient_id, p.hetu)) return;
  const bool all =
      std::find(rules.self_prescribing.begin(), rules.self_prescribing.end(), "*") != rules.self_prescribing.end();
  std::vector<std::string> hit;
  for (const auto& atc : c.atc_codes)
    if (all || std::any_of(rules.self_prescribing.begin(), rules.self_prescribing.end(),
                           [&](const std::string& prefix) { return overlaps(atc, prefix); }))
      hit.push_back(atc);
  if (all && c.atc_codes.empty()) hit.push_back("(any)");
  if (!hit.empty())
    reasons.push_back({"self_prescribing", who(p) + " may not prescribe " + join(hit) + " for themself"});
}

void prescription_rules(const PrescriptionRules& rules, const Professional& p, const Context& c,
                        const std::string& today, std::vector<Reason>& reasons) {
  right_rules(rules, p, c, today, reasons);
  for (const auto& r : p.restrictions)
    if (r.valid.covers(today)) restriction_rule(r, p, c, reasons);
  self_prescribing_rule(rules, p, c, reasons);
}

}  // namespace

namespace {

// The author a prescription names must be the holder of the signing
// certificate: by registration number (the certificate's or the registry's
// record), or by prescriber ID (the record's). With both named, each must be
// the holder's: a prescriber ID the record has must match it too, or the
// document could name another prescriber beside the signer's number. Only
// when the document named one.
void author_is_signer(const std::optional<Identity>& identity, const Registry::Lookup& lookup, const Context& context,
                      std::vector<Reason>& reasons) {
  if (!context.author_registration_number && !context.author_prescriber_id) return;
  const std::string signer_number = identity ? identity->registration_number : "";
  const std::string record_number = lookup.professional ? lookup.professional->registration_number : "";
  const std::string record_prescriber = lookup.professional ? lookup.professional->prescriber_id : "";
  bool same = false;
  if (context.author_registration_number) {
    same = *context.author_registration_number == signer_number || *context.author_registration_number == record_number;
    if (context.author_prescriber_id && !record_prescriber.empty())
      same = same && *context.author_prescriber_id == record_prescriber;
  } else {
    same = !record_prescriber.empty() && *context.author_prescriber_id == record_prescriber;
  }
  if (same) return;
  std::string author = context.author_registration_number.value_or(context.author_prescriber_id.value_or("?"));
  if (context.author_registration_number && context.author_prescriber_id)
    author = "registration number " + *context.author_registration_number + ", prescriber ID " +
             *context.author_prescriber_id;
  reasons.push_back({"author_not_signer", "the prescription's author (" + author +
                                              ") is not the holder of the signing certificate (" +
                                              (signer_number.empty() ? record_number : signer_number) + ")"});
}

}  // namespace

Decision evaluate(const Rules& rules, Action action, const std::optional<Identity>& identity,
                  const std::optional<ValidationResult>& certificate, const Registry::Lookup& lookup,
                  const Context& context, SystemTime now, const std::string& today) {
  Decision d;
  d.identity = identity;
  d.certificate = certificate;
  d.professional = lookup.professional;
  d.registry = lookup.provenance;

  if (certificate) {
    if (!certificate->valid()) {
      d.reasons.push_back({"certificate_" + certificate->status, certificate->message});
    } else if (certificate->revocation.fail_mode == "soft-fail") {
      d.warnings.push_back({"revocation_soft_fail",
                            "revocation status unknown, allowed by soft-fail: " + certificate->revocation.reason});
    }
  }

  const bool needs_registry = action == Action::sign_prescription;
  if (!lookup.unreadable.empty()) {
    if (needs_registry)
      d.reasons.push_back(
          {"registry_unreadable", "the Valvira registry could not be read (" + lookup.unreadable + "); see the log"});
  } else if (!lookup.provenance.imported_at) {
    if (needs_registry) d.reasons.push_back({"registry_empty", "the Valvira registry has not been imported"});
  } else if (now - *lookup.provenance.imported_at > rules.registry.max_age) {
    d.registry_stale = true;
    const Reason stale{"registry_stale", "the Valvira registry was imported " +
                                             to_rfc3339(*lookup.provenance.imported_at) +
                                             ", longer ago than the configured maximum age"};
    if (needs_registry && rules.registry.deny_when_stale)
      d.reasons.push_back(stale);
    else
      d.warnings.push_back(stale);
  }

  const auto& card_types = rules.prescription.card_types;
  if (needs_registry && identity && !card_types.empty() && card_types.count(identity->card_type) == 0)
    d.reasons.push_back({"card_type_not_allowed", (identity->card_type.empty() ? std::string("a card of unknown type")
                                                                               : "a " + identity->card_type + " card") +
                                                      " may not sign prescriptions"});

  if (lookup.professional && identity && !identity->satu.empty() && !lookup.professional->satu.empty() &&
      identity->satu != lookup.professional->satu)
    d.reasons.push_back({"identity_mismatch", "the certificate's SATU does not match the registry's record"});

  if (needs_registry && lookup.provenance.imported_at) {
    if (!lookup.professional && identity && identity->registration_number.empty()) {
      d.reasons.push_back(
          {"no_registration_number",
           "the certificate carries no Terhikki registration number, and its SATU is not in the registry"});
    } else if (!lookup.professional) {
      d.reasons.push_back(
          {"unknown_professional", "no professional with this registration number in the Valvira registry"});
    } else {
      prescription_rules(rules.prescription, *lookup.professional, context, today, d.reasons);
    }
  }
  if (action == Action::sign_prescription) author_is_signer(identity, lookup, context, d.reasons);
  d.allowed = d.reasons.empty();
  return d;
}

}  // namespace kortti::policy
