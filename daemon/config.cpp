#include "daemon/config.hpp"

#include <toml++/toml.h>
#include <algorithm>
#include <optional>
#include <set>

#include "daemon/config_schema.hpp"

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

// Collects every problem of the file, to report them all at once in file order.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

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

 private:
  std::string file_;
  std::vector<std::pair<std::uint32_t, std::string>> problems_;
};

// Reads a table of the file through the schema's rows: its keys, then its
// sub-tables and the entries of its arrays of tables, the same way down.
class Loader {
 public:
  Loader(Reader& reader, Config& config) : r_(reader), c_(config), schema_(config_schema()) {}

  void table(const toml::table& t, const std::string& path) {
    const std::vector<std::string> names = children(path);
    r_.check_keys(t, path, std::set<std::string>(names.begin(), names.end()));
    for (const auto& name : names) {
      const toml::node* node = t.get(name);
      if (node == nullptr) continue;
      const std::string full = path.empty() ? name : path + "." + name;
      if (const KeySpec* row = find(path, name)) {
        key(*row, *node, full);
      } else if (!node->is_table()) {
        r_.problem(node, full, "must be a table ([" + full + "])");
      } else {
        table(*node->as_table(), full);
      }
    }
  }

 private:
  // The keys of the table `path` and the names of its sub-tables, in the
  // schema's order.
  std::vector<std::string> children(const std::string& path) const {
    std::vector<std::string> names;
    for (const auto& row : schema_) {
      std::string name;
      if (row.table == path) {
        name = row.key;
      } else if (path.empty()) {
        name = row.table.substr(0, row.table.find('.'));
      } else if (row.table.rfind(path + ".", 0) == 0) {
        const std::string rest = row.table.substr(path.size() + 1);
        name = rest.substr(0, rest.find('.'));
      } else {
        continue;
      }
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(std::move(name));
    }
    return names;
  }

  const KeySpec* find(const std::string& table, const std::string& key) const {
    for (const auto& row : schema_)
      if (row.table == table && row.key == key) return &row;
    return nullptr;
  }

  void key(const KeySpec& row, const toml::node& node, const std::string& name) {
    if (row.type == KeyType::table_array) return entries(row, node, name);
    if (row.type == KeyType::string_map) return string_map(row, node, name);
    if (auto value = read(row, node, name))
      if (auto why = row.set(c_, *value)) r_.problem(&node, name, *why);
  }

  void entries(const KeySpec& row, const toml::node& node, const std::string& name) {
    if (!node.is_array_of_tables()) return r_.problem(&node, name, "must be an array of tables ([[" + name + "]])");
    for (const auto& item : *node.as_array()) {
      const toml::table& entry = *item.as_table();
      (void)row.set(c_, {});
      table(entry, name);
      // Checks across the entry's keys, then the keys it cannot do without.
      if (row.check_entry)
        for (const auto& [key, what] : row.check_entry(c_)) r_.problem(&entry, name + "." + key, what);
      for (const auto& field : schema_) {
        if (field.table != name || !field.required) continue;
        const ConfigValue value = field.get(c_);
        if (std::holds_alternative<std::monostate>(value) || value == ConfigValue(std::string()))
          r_.problem(&entry, field.name(), "is required");
      }
    }
  }

  void string_map(const KeySpec& row, const toml::node& node, const std::string& name) {
    if (!node.is_table()) return r_.problem(&node, name, "must be a table ([" + name + "])");
    StringMap map;
    for (const auto& [key, value] : *node.as_table()) {
      if (!value.is_string())
        r_.problem(&value, name + "." + std::string(key.str()), "must be a string");
      else
        map[std::string(key.str())] = value.as_string()->get();
    }
    if (auto why = row.set(c_, map)) r_.problem(&node, name, *why);
  }

  // The node as a value of the row's type, or nullopt with the problem noted.
  std::optional<ConfigValue> read(const KeySpec& row, const toml::node& node, const std::string& name) {
    switch (row.type) {
      case KeyType::boolean:
        if (node.is_boolean()) return node.as_boolean()->get();
        r_.problem(&node, name, "must be true or false");
        return std::nullopt;
      case KeyType::integer:
      case KeyType::seconds:
      case KeyType::hours: {
        if (!node.is_integer()) {
          r_.problem(&node, name, "must be an integer");
          return std::nullopt;
        }
        const std::int64_t v = node.as_integer()->get();
        if (v >= row.min && v <= row.max) return v;
        r_.problem(&node, name, "must be between " + std::to_string(row.min) + " and " + std::to_string(row.max));
        return std::nullopt;
      }
      case KeyType::string:
      case KeyType::path:
        if (node.is_string()) return node.as_string()->get();
        r_.problem(&node, name, "must be a string");
        return std::nullopt;
      case KeyType::choice: {
        if (row.bool_words && node.is_boolean())
          return node.as_boolean()->get() ? row.bool_words->second : row.bool_words->first;
        const std::set<std::string> sorted(row.choices.begin(), row.choices.end());
        if (node.is_string() && sorted.count(node.as_string()->get()) != 0) return node.as_string()->get();
        std::string choices;
        for (const auto& c : sorted) choices += (choices.empty() ? "" : ", ") + c;
        r_.problem(&node, name,
                   "must be one of " + choices + (node.is_string() ? ", not \"" + node.as_string()->get() + "\"" : ""));
        return std::nullopt;
      }
      case KeyType::strings: {
        if (!node.is_array()) {
          r_.problem(&node, name, "must be an array of strings");
          return std::nullopt;
        }
        StringList items;
        for (const auto& item : *node.as_array()) {
          if (!item.is_string()) {
            r_.problem(&item, name, "must be an array of strings");
            return std::nullopt;
          }
          items.push_back(item.as_string()->get());
        }
        return items;
      }
      case KeyType::string_map:
      case KeyType::table_array:
        break;
    }
    return std::nullopt;
  }

  Reader& r_;
  Config& c_;
  const std::vector<KeySpec>& schema_;
};

}  // namespace

ConfigError::ConfigError(std::vector<std::string> problems)
    : std::runtime_error(join(problems)), problems_(std::move(problems)) {}

Config load_config(const std::string& path) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::string where = path;
    // Appended in two steps: GCC 12 at -O3 takes ":" + std::to_string(...)
    // here for an overlapping memcpy (-Wrestrict, a false positive).
    if (e.source().begin) {
      where += ':';
      where += std::to_string(e.source().begin.line);
    }
    throw ConfigError({where + ": " + std::string(e.description())});
  }
  Config c;
  c.path = path;
  Reader r(path);
  Loader(r, c).table(root, "");
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
