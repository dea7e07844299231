#include "daemon/config.hpp"

#include <grp.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>

#include "ipc/ipc.hpp"
#include "pcsc/pcsc.hpp"

namespace kortti::daemon {

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : "\n") + s;
  return out;
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t prev = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cur = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1)});
      prev = cur;
    }
  }
  return row[b.size()];
}

// Walks the parsed file against the schema, collecting every problem.
class Reader {
 public:
  Reader(const toml::table& root, std::string file) : root_(root), file_(std::move(file)) {}

  void problem(const toml::node* node, const std::string& key, const std::string& what) {
    std::string where = file_;
    std::uint32_t line = 0;
    if (node != nullptr && node->source().begin) {
      line = node->source().begin.line;
      where += ":" + std::to_string(line);
    }
    problems_.emplace_back(line, where + ": " + key + ": " + what);
  }

  // In the order they appear in the file.
  std::vector<std::string> problems() {
    std::stable_sort(problems_.begin(), problems_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> out;
    for (auto& p : problems_) out.push_back(std::move(p.second));
    return out;
  }

  const toml::table* section(const std::string& name) {
    const toml::node* node = root_.get(name);
    if (node == nullptr) return nullptr;
    if (!node->is_table()) {
      problem(node, name, "must be a table ([" + name + "])");
      return nullptr;
    }
    return node->as_table();
  }

  void check_keys(const toml::table& table, const std::string& prefix, const std::set<std::string>& known) {
    for (const auto& [key, node] : table) {
      const std::string name(key.str());
      if (known.count(name) != 0) continue;
      std::string hint;
      std::size_t best = 3;  // suggest only near misses
      for (const auto& k : known) {
        if (const std::size_t d = edit_distance(name, k); d < best) {
          best = d;
          hint = " (did you mean " + (prefix.empty() ? "" : prefix + ".") + k + "?)";
        }
      }
      problem(&node, prefix.empty() ? name : prefix + "." + name, "unknown key" + hint);
    }
  }

  void string(const toml::table* t, const std::string& section, const std::string& key, std::string& out,
              const std::set<std::string>& allowed = {}) {
    const toml::node* n = t ? t->get(key) : nullptr;
    if (n == nullptr) return;
    const std::string name = section + "." + key;
    if (!n->is_string()) return problem(n, name, "must be a string");
    std::string v = n->as_string()->get();
    if (!allowed.empty() && allowed.count(v) == 0) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return problem(n, name, "must be one of " + list + ", not \"" + v + "\"");
    }
    out = std::move(v);
  }

  template <class Int>
  void integer(const toml::table* t, const std::string& section, const std::string& key, Int& out, std::int64_t min,
               std::int64_t max) {
    const toml::node* n = t ? t->get(key) : nullptr;
    if (n == nullptr) return;
    const std::string name = section + "." + key;
    if (!n->is_integer()) return problem(n, name, "must be an integer");
    const std::int64_t v = n->as_integer()->get();
    if (v < min || v > max)
      return problem(n, name, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    out = static_cast<Int>(v);
  }

  void seconds(const toml::table* t, const std::string& section, const std::string& key, std::chrono::seconds& out,
               std::int64_t min, std::int64_t max) {
    std::int64_t v = out.count();
    integer(t, section, key, v, min, max);
    out = std::chrono::seconds(v);
  }

  void boolean(const toml::table* t, const std::string& section, const std::string& key, bool& out) {
    const toml::node* n = t ? t->get(key) : nullptr;
    if (n == nullptr) return;
    if (!n->is_boolean()) return problem(n, section + "." + key, "must be true or false");
    out = n->as_boolean()->get();
  }

  void strings(const toml::table* t, const std::string& section, const std::string& key,
               std::vector<std::string>& out) {
    const toml::node* n = t ? t->get(key) : nullptr;
    if (n == nullptr) return;
    const std::string name = section + "." + key;
    if (!n->is_array()) return problem(n, name, "must be an array of strings");
    std::vector<std::string> v;
    for (const auto& item : *n->as_array()) {
      if (!item.is_string()) return problem(&item, name, "must be an array of strings");
      v.push_back(item.as_string()->get());
    }
    out = std::move(v);
  }

  const toml::node* node(const toml::table* t, const std::string& key) { return t ? t->get(key) : nullptr; }

  // A sub-table ([section.key]); nullptr when absent or not a table.
  const toml::table* subtable(const toml::table* t, const std::string& section, const std::string& key) {
    const toml::node* n = node(t, key);
    if (n == nullptr) return nullptr;
    if (!n->is_table()) {
      problem(n, section + "." + key, "must be a table ([" + section + "." + key + "])");
      return nullptr;
    }
    return n->as_table();
  }

  // A table whose keys are free-form and whose values are strings.
  void string_map(const toml::table* t, const std::string& name, std::map<std::string, std::string>& out) {
    if (t == nullptr) return;
    out.clear();
    for (const auto& [key, value] : *t) {
      if (!value.is_string()) {
        problem(&value, name + "." + std::string(key.str()), "must be a string");
        continue;
      }
      out[std::string(key.str())] = value.as_string()->get();
    }
  }

  // An array of tables ([[section.key]]); each table's keys checked.
  std::vector<const toml::table*> tables(const toml::table* t, const std::string& section, const std::string& key,
                                         const std::set<std::string>& known) {
    std::vector<const toml::table*> out;
    const toml::node* n = node(t, key);
    if (n == nullptr) return out;
    const std::string name = section + "." + key;
    if (!n->is_array_of_tables()) {
      problem(n, name, "must be an array of tables ([[" + name + "]])");
      return out;
    }
    for (const auto& item : *n->as_array()) {
      check_keys(*item.as_table(), name, known);
      out.push_back(item.as_table());
    }
    return out;
  }

 private:
  const toml::table& root_;
  std::string file_;
  std::vector<std::pair<std::uint32_t, std::string>> problems_;
};

std::string expand_runtime_dir(std::string value) {
  const std::string var = "${XDG_RUNTIME_DIR}";
  if (auto pos = value.find(var); pos != std::string::npos) {
    const char* dir = std::getenv("XDG_RUNTIME_DIR");
    value.replace(pos, var.size(), dir != nullptr ? dir : "/run/user/" + std::to_string(::getuid()));
  }
  return value;
}

}  // namespace

ConfigError::ConfigError(std::vector<std::string> problems)
    : std::runtime_error(join(problems)), problems_(std::move(problems)) {}

Config load_config(const std::string& path) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::string where = path;
    if (e.source().begin) where += ":" + std::to_string(e.source().begin.line);
    throw ConfigError({where + ": " + std::string(e.description())});
  }
  Config c;
  c.path = path;
  Reader r(root, path);
  r.check_keys(root, "",
               {"ipc", "access", "pkcs11", "session", "pcsc", "log", "audit", "identity", "trust", "revocation",
                "registry", "policy", "signature"});

  if (const auto* t = r.section("ipc")) {
    r.check_keys(*t, "ipc",
                 {"socket", "socket_mode", "socket_group", "max_message_bytes", "max_connections",
                  "max_connections_per_uid", "idle_timeout_s", "max_inflight_per_connection", "max_pin_requests_per_uid",
                  "request_timeout_s", "shutdown_grace_s"});
    r.string(t, "ipc", "socket", c.ipc.socket);
    c.ipc.socket = expand_runtime_dir(c.ipc.socket);
    if (const auto* n = r.node(t, "socket_mode")) {
      std::string mode;
      r.string(t, "ipc", "socket_mode", mode);
      char* end = nullptr;
      const long v = std::strtol(mode.c_str(), &end, 8);
      if (mode.empty() || *end != '\0' || v < 0 || v > 0777)
        r.problem(n, "ipc.socket_mode", "must be an octal mode string such as \"0660\"");
      else
        c.ipc.socket_mode = static_cast<mode_t>(v);
    }
    if (const auto* n = r.node(t, "socket_group")) {
      r.string(t, "ipc", "socket_group", c.ipc.socket_group);
      if (!c.ipc.socket_group.empty() && getgrnam(c.ipc.socket_group.c_str()) == nullptr)
        r.problem(n, "ipc.socket_group", "no such group \"" + c.ipc.socket_group + "\"");
    }
    r.integer(t, "ipc", "max_message_bytes", c.ipc.max_message_bytes, 1024, 256LL * 1024 * 1024);
    r.integer(t, "ipc", "max_connections", c.ipc.max_connections, 1, 4096);
    r.integer(t, "ipc", "max_connections_per_uid", c.ipc.max_connections_per_uid, 1, 4096);
    r.seconds(t, "ipc", "idle_timeout_s", c.ipc.idle_timeout, 0, 86400);
    r.integer(t, "ipc", "max_inflight_per_connection", c.ipc.max_inflight_per_connection, 1, 1024);
    r.integer(t, "ipc", "max_pin_requests_per_uid", c.ipc.max_pin_requests_per_uid, 1, 256);
    r.seconds(t, "ipc", "request_timeout_s", c.ipc.request_timeout, 1, 3600);
    r.seconds(t, "ipc", "shutdown_grace_s", c.ipc.shutdown_grace, 0, 300);
  }
  if (const auto* t = r.section("access")) {
    r.check_keys(*t, "access", {"read", "session", "sign", "admin"});
    r.strings(t, "access", "read", c.access.read);
    r.strings(t, "access", "session", c.access.session);
    r.strings(t, "access", "sign", c.access.sign);
    r.strings(t, "access", "admin", c.access.admin);
    const std::pair<const char*, std::vector<std::string>*> groups[] = {
        {"read", &c.access.read}, {"session", &c.access.session}, {"sign", &c.access.sign}, {"admin", &c.access.admin}};
    for (const auto& [key, entries] : groups) {
      try {
        ipc::AccessPolicy().set(ipc::MethodGroup::read, *entries);
      } catch (const std::invalid_argument& e) {
        r.problem(r.node(t, key), std::string("access.") + key, e.what());
      }
    }
  }
  if (const auto* t = r.section("pkcs11")) {
    r.check_keys(*t, "pkcs11", {"modules"});
    r.strings(t, "pkcs11", "modules", c.pkcs11.modules);
  }
  if (const auto* t = r.section("session")) {
    r.check_keys(*t, "session", {"lifetime_s", "idle_timeout_s"});
    r.seconds(t, "session", "lifetime_s", c.session.lifetime, 1, 7 * 24 * 3600);
    r.seconds(t, "session", "idle_timeout_s", c.session.idle_timeout, 1, 7 * 24 * 3600);
  }
  if (const auto* t = r.section("pcsc")) {
    r.check_keys(*t, "pcsc", {"enabled", "reader", "card_type"});
    r.boolean(t, "pcsc", "enabled", c.pcsc.enabled);
    for (const auto* reader : r.tables(t, "pcsc", "reader", {"name", "pinpad"})) {
      Config::Pcsc::Reader entry;
      r.string(reader, "pcsc.reader", "name", entry.name);
      if (entry.name.empty()) r.problem(reader, "pcsc.reader.name", "is required");
      if (r.node(reader, "pinpad") != nullptr) {
        bool pinpad = false;
        r.boolean(reader, "pcsc.reader", "pinpad", pinpad);
        entry.pinpad = pinpad;
      }
      c.pcsc.readers.push_back(std::move(entry));
    }
    for (const auto* type : r.tables(t, "pcsc", "card_type", {"atr", "mask", "name", "description"})) {
      Config::Pcsc::CardType entry;
      r.string(type, "pcsc.card_type", "atr", entry.atr);
      r.string(type, "pcsc.card_type", "mask", entry.mask);
      r.string(type, "pcsc.card_type", "name", entry.name);
      r.string(type, "pcsc.card_type", "description", entry.description);
      const auto atr = pcsc::parse_hex(entry.atr);
      if (!atr || atr->empty()) r.problem(type, "pcsc.card_type.atr", "must be the ATR in hex");
      if (!entry.mask.empty()) {
        const auto mask = pcsc::parse_hex(entry.mask);
        if (!mask || !atr || mask->size() != atr->size())
          r.problem(type, "pcsc.card_type.mask", "must be hex of the same length as the ATR");
      }
      if (entry.name.empty()) r.problem(type, "pcsc.card_type.name", "is required");
      c.pcsc.card_types.push_back(std::move(entry));
    }
  }
  if (const auto* t = r.section("log")) {
    r.check_keys(*t, "log", {"level", "target"});
    r.string(t, "log", "level", c.log.level, {"trace", "debug", "info", "warn", "error", "critical", "off"});
    r.string(t, "log", "target", c.log.target, {"stderr", "journal"});
  }
  if (const auto* t = r.section("audit")) {
    r.check_keys(*t, "audit", {"file"});
    r.string(t, "audit", "file", c.audit.file);
  }
  if (const auto* t = r.section("identity")) {
    r.check_keys(*t, "identity",
                 {"given_name", "family_name", "common_name", "title", "organisation", "satu", "registration_number",
                  "card_types"});
    const std::pair<const char*, std::string*> fields[] = {{"given_name", &c.identity.given_name},
                                                           {"family_name", &c.identity.family_name},
                                                           {"common_name", &c.identity.common_name},
                                                           {"title", &c.identity.title},
                                                           {"organisation", &c.identity.organisation},
                                                           {"satu", &c.identity.satu},
                                                           {"registration_number", &c.identity.registration_number}};
    for (const auto& [key, target] : fields) {
      r.string(t, "identity", key, *target);
      if (const auto* n = r.node(t, key)) {
        try {
          policy::check_mapping_source(*target);
        } catch (const std::invalid_argument& e) {
          r.problem(n, std::string("identity.") + key, e.what());
        }
      }
    }
    r.string_map(r.subtable(t, "identity", "card_types"), "identity.card_types", c.identity.card_types);
  }
  if (const auto* t = r.section("trust")) {
    r.check_keys(*t, "trust", {"anchors", "intermediates", "clock_skew_s"});
    r.string(t, "trust", "anchors", c.trust.anchors);
    r.string(t, "trust", "intermediates", c.trust.intermediates);
    r.seconds(t, "trust", "clock_skew_s", c.trust.clock_skew, 0, 86400);
  }
  if (const auto* t = r.section("revocation")) {
    r.check_keys(*t, "revocation",
                 {"ocsp", "crl", "ocsp_url", "ocsp_nonce", "timeout_s", "max_cache_s", "crl_files", "crl_fetch",
                  "crl_retry_after_s", "fail_mode"});
    r.boolean(t, "revocation", "ocsp", c.revocation.ocsp);
    r.boolean(t, "revocation", "crl", c.revocation.crl);
    r.string(t, "revocation", "ocsp_url", c.revocation.ocsp_url);
    // The boolean is the setting's first form: true promised "the answer
    // must echo it", which is "required"; false sent no nonce.
    if (const auto* n = r.node(t, "ocsp_nonce"); n != nullptr && n->is_boolean()) {
      c.revocation.ocsp_nonce = n->as_boolean()->get() ? policy::OcspNonce::required : policy::OcspNonce::off;
    } else if (n != nullptr && !n->is_string()) {
      r.problem(n, "revocation.ocsp_nonce", "must be \"required\", \"if_present\" or \"off\"");
    } else {
      std::string nonce;
      r.string(t, "revocation", "ocsp_nonce", nonce, {"required", "if_present", "off"});
      if (!nonce.empty())
        c.revocation.ocsp_nonce = nonce == "required"     ? policy::OcspNonce::required
                                  : nonce == "if_present" ? policy::OcspNonce::if_present
                                                          : policy::OcspNonce::off;
    }
    r.seconds(t, "revocation", "timeout_s", c.revocation.timeout, 1, 120);
    r.seconds(t, "revocation", "max_cache_s", c.revocation.max_cache, 0, 7 * 86400);
    r.strings(t, "revocation", "crl_files", c.revocation.crl_files);
    r.boolean(t, "revocation", "crl_fetch", c.revocation.crl_fetch);
    r.seconds(t, "revocation", "crl_retry_after_s", c.revocation.crl_retry_after, 0, 86400);
    if (const auto* modes = r.subtable(t, "revocation", "fail_mode")) {
      r.check_keys(*modes, "revocation.fail_mode", {"authenticate", "sign_document", "sign_prescription"});
      const std::pair<const char*, policy::Action> actions[] = {
          {"authenticate", policy::Action::authenticate},
          {"sign_document", policy::Action::sign_document},
          {"sign_prescription", policy::Action::sign_prescription}};
      for (const auto& [key, action] : actions) {
        std::string mode;
        r.string(modes, "revocation.fail_mode", key, mode, {"hard-fail", "soft-fail"});
        if (!mode.empty())
          c.revocation.fail_mode[action] = mode == "hard-fail" ? policy::FailMode::hard : policy::FailMode::soft;
      }
    }
  }
  if (const auto* t = r.section("registry")) {
    r.check_keys(*t, "registry", {"database", "max_age_h", "when_stale"});
    r.string(t, "registry", "database", c.registry_database);
    std::int64_t hours = c.rules.registry.max_age.count();
    r.integer(t, "registry", "max_age_h", hours, 1, 24 * 366);
    c.rules.registry.max_age = std::chrono::hours(hours);
    std::string when = c.rules.registry.deny_when_stale ? "deny" : "warn";
    r.string(t, "registry", "when_stale", when, {"warn", "deny"});
    c.rules.registry.deny_when_stale = when == "deny";
  }
  if (const auto* t = r.section("policy")) {
    r.check_keys(*t, "policy", {"prescription"});
    if (const auto* p = r.subtable(t, "policy", "prescription")) {
      r.check_keys(*p, "policy.prescription",
                   {"rights", "limited_rights", "limited_atc", "self_prescribing", "card_types"});
      auto to_set = [](const std::vector<std::string>& v) { return std::set<std::string>(v.begin(), v.end()); };
      std::vector<std::string> rights(c.rules.prescription.rights.begin(), c.rules.prescription.rights.end());
      std::vector<std::string> limited(c.rules.prescription.limited_rights.begin(),
                                       c.rules.prescription.limited_rights.end());
      std::vector<std::string> cards(c.rules.prescription.card_types.begin(), c.rules.prescription.card_types.end());
      r.strings(p, "policy.prescription", "rights", rights);
      r.strings(p, "policy.prescription", "limited_rights", limited);
      r.strings(p, "policy.prescription", "limited_atc", c.rules.prescription.limited_atc);
      r.strings(p, "policy.prescription", "self_prescribing", c.rules.prescription.self_prescribing);
      r.strings(p, "policy.prescription", "card_types", cards);
      c.rules.prescription.rights = to_set(rights);
      c.rules.prescription.limited_rights = to_set(limited);
      c.rules.prescription.card_types = to_set(cards);
    }
  }
  if (const auto* t = r.section("signature")) {
    r.check_keys(*t, "signature",
                 {"max_document_bytes", "max_queued_bytes", "kanta_signature_code", "kanta_signature_display",
                  "rsa_digest", "ec_digest", "batch_max_items", "batch_max_s"});
    r.integer(t, "signature", "batch_max_items", c.batch.max_items, 1, 1000);
    r.seconds(t, "signature", "batch_max_s", c.batch.max_time, 1, 3600);
    r.integer(t, "signature", "max_document_bytes", c.signature.limits.max_bytes, 1024, 256LL * 1024 * 1024);
    r.integer(t, "signature", "max_queued_bytes", c.signature.max_queued_bytes, 1024, 4096LL * 1024 * 1024);
    r.string(t, "signature", "kanta_signature_code", c.signature.signature_code);
    r.string(t, "signature", "kanta_signature_display", c.signature.signature_display);
    for (auto [key, target] :
         {std::pair{"rsa_digest", &c.signature.rsa_digest}, std::pair{"ec_digest", &c.signature.ec_digest}}) {
      std::string name(name_of(*target));
      r.string(t, "signature", key, name, {"sha256", "sha384", "sha512"});
      if (auto alg = parse_digest_algorithm(name)) *target = *alg;
    }
  }
  if (auto problems = r.problems(); !problems.empty()) throw ConfigError(std::move(problems));
  return c;
}

// Only what finland.md records as seen is a default; every other code is the
// admin's to add (docs/policy.md).
policy::Rules Config::default_rules() {
  policy::Rules rules;
  rules.prescription.rights = {"034"};  // Laillistettu erikoislääkäri
  rules.prescription.self_prescribing = {"N02A", "N05B", "N05C", "N06B", "N07BC"};
  return rules;
}

}  // namespace kortti::daemon
