// Writes the key reference of korttid.toml(5) in scdoc, from the config
// schema: the man page lists every key the loader knows, with its type,
// default, range and reload behaviour, and cannot drift from it. Run at
// build time (daemon/CMakeLists.txt); not installed.

#include <algorithm>
#include <iostream>
#include <string>
#include <string_view>

#include "daemon/config_schema.hpp"

namespace {

using namespace kortti::daemon;

// scdoc gives '*', '_' and '\' meaning; the keys and defaults are full of them.
std::string escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '*' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// "Integer, 1 to 4096. Restart." and the like: what the loader checks.
std::string facts(const KeySpec& row) {
  std::string out = "Type: " + std::string(type_name(row.type));
  if (row.max > row.min) out += ", " + std::to_string(row.min) + " to " + std::to_string(row.max);
  if (!row.choices.empty()) {
    out += ", one of ";
    for (std::size_t i = 0; i < row.choices.size(); ++i) out += (i ? ", " : "") + row.choices[i];
  }
  if (row.required) out += ", required";
  out += row.reload == Reload::sighup ? ". Applied on SIGHUP." : ". Applied at restart.";
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // --names: the keys alone, one per line, for the man pages' test.
  if (argc == 2 && std::string_view(argv[1]) == "--names") {
    for (const KeySpec& row : config_schema()) std::cout << row.name() << "\n";
    return 0;
  }
  std::string table;
  for (const KeySpec& row : config_schema()) {
    if (row.table != table) {
      table = row.table;
      const bool array = std::find_if(config_schema().begin(), config_schema().end(), [&](const KeySpec& a) {
                           return a.type == KeyType::table_array && a.name() == table;
                         }) != config_schema().end();
      std::cout << "\n## " << (array ? "[[" : "[") << escaped(table) << (array ? "]]" : "]") << "\n";
    }
    std::cout << "\n*" << escaped(row.key) << "*";
    if (row.type == KeyType::table_array)
      std::cout << " (any number of *[[" << escaped(row.name()) << "]]* entries)";
    else if (std::holds_alternative<std::monostate>(row.default_value))
      std::cout << " (unset by default)";
    else if (!row.required)
      std::cout << " = " << escaped(toml_text(row.default_value));
    std::cout << "\n\t" << escaped(row.doc) << ". " << escaped(facts(row)) << "\n";
  }
}
