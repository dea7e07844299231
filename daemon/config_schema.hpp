#pragma once

// Internal to daemon/ (docs/architecture.md, Layering).
#if !defined(KORTTI_COMPONENT_DAEMON) && !defined(KORTTI_WHITE_BOX)
#error "daemon/config_schema.hpp is internal to daemon/"
#endif

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "daemon/config.hpp"

namespace kortti::daemon {

enum class KeyType {
  boolean,
  integer,
  seconds,  // an integer count; the key's name ends in _s
  hours,    // an integer count; the key's name ends in _h
  string,
  path,
  strings,      // array of strings
  choice,       // a string, one of KeySpec::choices
  string_map,   // a table of free-form keys with string values ([identity.card_types])
  table_array,  // [[table.key]]: any number of entries, whose fields are rows of their own
};

// What a running korttid does with a changed key: takes it on SIGHUP, or
// keeps the old value until the next start (daemon/main.cpp reload()).
enum class Reload { sighup, restart };

using StringList = std::vector<std::string>;
using StringMap = std::map<std::string, std::string>;
// A value as the TOML file holds it. Durations are their count, sets their
// sorted list, enums their word. monostate: no value (an optional key unset).
using ConfigValue = std::variant<std::monostate, bool, std::int64_t, std::string, StringList, StringMap>;

// One key of korttid.toml: the loader, the shipped file and
// docs/configuration.md all answer to this row (tests/unit/config_schema_test.cpp).
struct KeySpec {
  std::string table;  // dotted: "ipc", "revocation.fail_mode"; "pcsc.reader" for a [[pcsc.reader]] field
  std::string key;
  KeyType type = KeyType::string;
  ConfigValue default_value;  // table_array: the number of entries (0)
  Reload reload = Reload::restart;
  std::string doc;  // one line
  std::int64_t min = 0;
  std::int64_t max = 0;
  std::vector<std::string> choices;
  // The words that `false` and `true` stand for, when a choice key's first
  // form was a boolean (revocation.ocsp_nonce).
  std::optional<std::pair<std::string, std::string>> bool_words;
  bool required = false;  // a table_array field that must be given, and not ""
  bool in_array = false;  // a table_array field: set and get act on the last entry

  // Stores a value of the row's type (already checked against type, range
  // and choices); returns why it cannot be used instead, if it cannot. A
  // table_array row's set appends an entry.
  std::function<std::optional<std::string>(Config&, const ConfigValue&)> set;
  std::function<ConfigValue(const Config&)> get;
  // table_array: drops the entries after the first n.
  std::function<void(Config&, std::size_t)> keep_first;
  // table_array: the problems of the entry just read, as {key, what}.
  std::function<std::vector<std::pair<std::string, std::string>>(const Config&)> check_entry;

  [[nodiscard]] std::string name() const { return table.empty() ? key : table + "." + key; }
};

// Every key, in the order of the shipped file.
const std::vector<KeySpec>& config_schema();

// The value as written in TOML: 300, "info", ["*"], {}.
std::string toml_text(const ConfigValue& value);
std::string_view type_name(KeyType type) noexcept;
std::string_view reload_name(Reload reload) noexcept;  // "SIGHUP" or "restart"

// The keys `reload` applies to whose values differ in `a` and `b`, in the
// schema's order; a field of an array of tables as "pcsc.card_type[0].atr",
// an array whose number of entries differs by its own name.
std::vector<std::string> changed_keys(const Config& a, const Config& b, Reload reload);

}  // namespace kortti::daemon
