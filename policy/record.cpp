#include <cstring>
#include <stdexcept>

#include "policy/policy.hpp"

namespace kortti::policy {

namespace {

[[noreturn]] void bad(const std::string& field, const std::string& what) {
  throw std::invalid_argument(field + ": " + what);
}

// The parser works on any nlohmann JSON type: requests arrive as the wiping
// Json, while the registry parses its records (no secrets, many of them)
// with plain nlohmann::json, which is several times faster.
template <class J>
std::string as_string(const J& value) {
  const auto& s = value.template get_ref<const typename J::string_t&>();
  return std::string(s.begin(), s.end());
}

// A code or registration number is compared as it stands, so one that is
// empty, or has white space around it, would never match: a broken export,
// as a missing one is. A name is only shown.
enum class Text { optional, name, code };

template <class J>
std::string text(const J& j, const char* key, const std::string& field, Text kind) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (kind != Text::optional) bad(field, "is required");
    return {};
  }
  if (!it->is_string()) bad(field, "must be a string");
  std::string v = as_string(*it);
  if (kind != Text::optional && v.empty()) bad(field, "must not be empty");
  constexpr const char* kSpace = " \t\n\v\f\r";
  if (kind == Text::code && (std::strchr(kSpace, v.front()) != nullptr || std::strchr(kSpace, v.back()) != nullptr))
    bad(field, "must not begin or end with white space");
  return v;
}

template <class J>
std::optional<std::string> date(const J& j, const char* key, const std::string& field) {
  const std::string v = text(j, key, field, Text::optional);
  if (v.empty()) return std::nullopt;
  // A full RFC 3339 time is accepted, and only its date counts; but the
  // whole of it must be a real time, or a generator that writes 25:00 or
  // 30 February would pass unnoticed.
  if (v.size() > 10 && v[10] == 'T') {
    if (!parse_rfc3339(v)) bad(field, "must be a date (YYYY-MM-DD) or an RFC 3339 time, not '" + v + "'");
    return v.substr(0, 10);
  }
  if (!is_date(v)) bad(field, "must be a date (YYYY-MM-DD), not '" + v + "'");
  return v;
}

template <class J>
Validity validity(const J& j, const std::string& field) {
  const std::string prefix = field.empty() ? "" : field + ".";
  Validity v{date(j, "valid_from", prefix + "valid_from"), date(j, "valid_to", prefix + "valid_to")};
  if (v.from && v.to && *v.to < *v.from) bad(prefix + "valid_to", "is before valid_from");
  return v;
}

template <class J>
const J& array(const J& j, const char* key, const std::string& field) {
  static const J empty = J::array();
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return empty;
  if (!it->is_array()) bad(field, "must be an array");
  return *it;
}

template <class J>
Professional professional(const J& line) {
  if (!line.is_object()) bad("line", "must be a JSON object");
  Professional p;
  p.registration_number = text(line, "registration_number", "registration_number", Text::code);
  p.prescriber_id = text(line, "prescriber_id", "prescriber_id", Text::optional);
  if (auto name = line.find("name"); name != line.end() && !name->is_null()) {
    if (!name->is_object()) bad("name", "must be an object with given and family");
    p.given_name = text(*name, "given", "name.given", Text::optional);
    p.family_name = text(*name, "family", "name.family", Text::optional);
  }
  if (auto ids = line.find("identifiers"); ids != line.end() && !ids->is_null()) {
    if (!ids->is_object()) bad("identifiers", "must be an object");
    p.satu = text(*ids, "satu", "identifiers.satu", Text::optional);
    p.hetu = text(*ids, "hetu", "identifiers.hetu", Text::optional);
  }
  const J& rights = array(line, "rights", "rights");
  for (std::size_t i = 0; i < rights.size(); ++i) {
    const std::string field = "rights[" + std::to_string(i) + "]";
    if (!rights[i].is_object()) bad(field, "must be an object");
    p.rights.push_back({text(rights[i], "code", field + ".code", Text::code), validity(rights[i], field), {}});
  }
  const J& restrictions = array(line, "restrictions", "restrictions");
  for (std::size_t i = 0; i < restrictions.size(); ++i) {
    const std::string field = "restrictions[" + std::to_string(i) + "]";
    const J& r = restrictions[i];
    if (!r.is_object()) bad(field, "must be an object");
    Restriction x;
    x.target = text(r, "target", field + ".target", Text::code);
    if (x.target.size() != 2 || x.target.find_first_not_of("0123456789") != std::string::npos)
      bad(field + ".target", "must be a two-digit code of 1.2.246.537.6.147.2008, not '" + x.target + "'");
    if (auto object = r.find("object"); object != r.end() && !object->is_null()) {
      if (!object->is_object()) bad(field + ".object", "must be an object with system and code");
      x.object_system = text(*object, "system", field + ".object.system", Text::code);
      x.object_code = text(*object, "code", field + ".object.code", Text::code);
      if (x.object_system != "ATC" && x.object_system != "1.2.246.537.6.141.2008")
        bad(field + ".object.system", "must be \"ATC\" or \"1.2.246.537.6.141.2008\", not '" + x.object_system + "'");
    }
    if (auto scope = r.find("scope"); scope != r.end() && !scope->is_null()) {
      if (!scope->is_string()) bad(field + ".scope", "must be a string or null");
      x.scope = as_string(*scope);
    }
    x.valid = validity(r, field);
    p.restrictions.push_back(std::move(x));
  }
  const J& specialties = array(line, "specialties", "specialties");
  for (std::size_t i = 0; i < specialties.size(); ++i) {
    if (!specialties[i].is_string()) bad("specialties[" + std::to_string(i) + "]", "must be a string");
    p.specialties.push_back(as_string(specialties[i]));
  }
  return p;
}

}  // namespace

CodeEntry parse_code_entry(const Json& entry) {
  if (!entry.is_object()) bad("entry", "must be an object");
  return {text(entry, "code", "code", Text::code), text(entry, "name", "name", Text::name), validity(entry, "")};
}

bool Validity::covers(const std::string& day) const { return (!from || *from <= day) && (!to || day <= *to); }

Professional parse_professional(const Json& line) { return professional(line); }

Professional parse_professional(std::string_view text) {
  nlohmann::ordered_json line;
  try {
    line = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::ordered_json::parse_error&) {
    throw std::invalid_argument("not valid JSON");
  } catch (const nlohmann::ordered_json::out_of_range&) {
    // 1e999: JSON's grammar allows it, a double cannot hold it.
    throw std::invalid_argument("not valid JSON: a number out of range");
  }
  return professional(line);
}

}  // namespace kortti::policy
