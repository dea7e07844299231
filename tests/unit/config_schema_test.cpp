// The schema (daemon/config_schema.cpp) against the loader, the shipped
// daemon/korttid.toml and docs/configuration.md: a key added, renamed or
// given another default in one place and not the others fails here.

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "daemon/config.hpp"
#include "daemon/config_schema.hpp"
#include "tests/support/support.hpp"
#include "tests/unit/config_text.hpp"

namespace kortti::daemon {
namespace {
std::string read_text(const std::string& relative) {
  std::ifstream in(test::source_dir() / relative);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// What a file says about one key: where, and in the doc its cells.
struct Mention {
  std::string name;  // table.key, or the table a heading names
  int line = 0;
  bool heading = false;
  std::string value;               // korttid.toml: the text after "=" up to a trailing comment
  std::string comment;             // korttid.toml: the trailing comment
  std::vector<std::string> cells;  // docs: the table row's cells after the key
};

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t");
  const auto e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

const std::regex kHeading(R"(^\[\[?([A-Za-z0-9_.]+)\]\]?$)");

// Keys set, and keys commented out (an example entry), under their tables.
// A comment counts as a key only when what follows "=" reads as a TOML value.
std::vector<Mention> toml_mentions(const std::string& text) {
  static const std::regex key(R"(^([A-Za-z0-9_]+) = (.*)$)");
  static const std::regex value_start(R"(^(["\[{0-9-]|true|false))");
  std::vector<Mention> out;
  std::string table;
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    line = trim(line);
    const bool commented = line.rfind('#', 0) == 0;
    if (commented) line = trim(line.substr(1));
    std::smatch m;
    if (std::regex_match(line, m, kHeading)) {
      table = m[1];
      out.push_back({table, n, true, "", "", {}});
    } else if (std::regex_match(line, m, key) && (!commented || std::regex_search(m[2].str(), value_start))) {
      std::string value = m[2];
      std::string comment;
      // Values here hold no '#', so the first one starts a trailing comment.
      if (const auto hash = value.find(" #"); hash != std::string::npos && !commented) {
        comment = trim(value.substr(hash + 2));
        value = value.substr(0, hash);
      }
      out.push_back({table.empty() ? m[1].str() : table + "." + m[1].str(), n, false, trim(value), comment, {}});
    }
  }
  return out;
}

// The docs: headings "## [table]" and "### [[table]]" set the table; under one,
// a table row whose first cell is `key` documents table.key.
std::vector<Mention> doc_mentions(const std::string& text) {
  static const std::regex heading(R"(^#{2,} (\[\[?[A-Za-z0-9_.]+\]\]?)$)");
  static const std::regex row(R"(^\| `([A-Za-z0-9_]+)` \|(.*)\|$)");
  std::vector<Mention> out;
  std::string table;
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::smatch m;
    if (line.rfind('#', 0) == 0) {
      table.clear();
      std::smatch h;
      const std::string title = std::regex_match(line, m, heading) ? m[1].str() : "";
      if (std::regex_match(title, h, kHeading)) {
        table = h[1];
        out.push_back({table, n, true, "", "", {}});
      }
    } else if (!table.empty() && std::regex_match(line, m, row)) {
      Mention mention{table + "." + m[1].str(), n, false, "", "", {}};
      std::stringstream cells(m[2].str());
      for (std::string cell; std::getline(cells, cell, '|');) mention.cells.push_back(trim(cell));
      out.push_back(std::move(mention));
    }
  }
  return out;
}

// Whether a heading may name `name`: a table some rows live in, or a key
// whose value is itself a table ([identity.card_types], [[pcsc.reader]]).
bool is_table(const std::string& name) {
  for (const auto& row : config_schema()) {
    if (row.table == name || row.table.rfind(name + ".", 0) == 0) return true;
    if (row.name() == name && (row.type == KeyType::table_array || row.type == KeyType::string_map)) return true;
  }
  return false;
}

const KeySpec* row_named(const std::string& name) {
  for (const auto& row : config_schema())
    if (row.name() == name) return &row;
  return nullptr;
}

bool written_as_table(const KeySpec& row) {
  return row.type == KeyType::table_array || row.type == KeyType::string_map;
}

using test_config::load_text;
using test_config::problems_of;

TEST(ConfigSchema, NamesAreUniqueAndRowsComplete) {
  std::set<std::string> names;
  for (const auto& row : config_schema()) {
    EXPECT_TRUE(names.insert(row.name()).second) << row.name() << " twice";
    EXPECT_TRUE(row.set && row.get) << row.name();
    EXPECT_FALSE(row.doc.empty()) << row.name();
    EXPECT_EQ(row.doc.find('\n'), std::string::npos) << row.name();
    if (row.type == KeyType::choice) {
      ASSERT_TRUE(std::holds_alternative<std::string>(row.default_value)) << row.name();
      const auto& d = std::get<std::string>(row.default_value);
      EXPECT_NE(std::find(row.choices.begin(), row.choices.end(), d), row.choices.end()) << row.name();
    }
    if (row.type == KeyType::integer || row.type == KeyType::seconds || row.type == KeyType::hours) {
      ASSERT_TRUE(std::holds_alternative<std::int64_t>(row.default_value)) << row.name();
      const auto d = std::get<std::int64_t>(row.default_value);
      EXPECT_TRUE(row.min <= d && d <= row.max) << row.name();
    }
  }
}

// (c) The schema's defaults are what a file without the key loads to, and
// what Config{} (korttid without a config file) holds.
TEST(ConfigSchema, DefaultsAreWhatAnEmptyFileLoads) {
  const Config empty = load_text("");
  const Config built_in;
  for (const auto& row : config_schema()) {
    if (row.in_array) continue;  // no entry exists to read them from
    EXPECT_EQ(toml_text(row.get(empty)), toml_text(row.default_value)) << row.name();
    EXPECT_TRUE(row.get(empty) == row.default_value) << row.name();
    EXPECT_TRUE(row.get(built_in) == row.default_value) << row.name();
  }
}

// Each row reads its own default back, and each choice and range bound, so
// the rows' set and get agree with their types.
TEST(ConfigSchema, EveryKeyReadsBackWhatItIsGiven) {
  for (const auto& row : config_schema()) {
    if (row.in_array || row.type == KeyType::table_array) continue;
    const std::string header = "[" + row.table + "]\n";
    std::vector<ConfigValue> values = {row.default_value};
    for (const auto& choice : row.choices) values.emplace_back(choice);
    if (row.min != row.max) {
      values.emplace_back(row.min);
      values.emplace_back(row.max);
    }
    for (const auto& value : values) {
      const std::string toml = header + row.key + " = " + toml_text(value) + "\n";
      const Config c = load_text(toml);
      EXPECT_TRUE(row.get(c) == value) << toml;
    }
    if (row.min != row.max) {
      const auto p = problems_of(header + row.key + " = " + std::to_string(row.max + 1) + "\n");
      ASSERT_EQ(p.size(), 1U) << row.name();
      EXPECT_NE(p[0].find(":2: " + row.name() + ": must be between"), std::string::npos) << p[0];
    }
  }
}

// (a) Every key is in the shipped file, set or (in an example entry)
// commented out, and the file has no key the schema lacks.
TEST(ConfigSchema, TheShippedFileHasEveryKeyAndNoOther) {
  const auto mentions = toml_mentions(read_text("daemon/korttid.toml"));
  std::set<std::string> seen;
  for (const auto& m : mentions) {
    seen.insert(m.name);
    if (m.heading)
      EXPECT_TRUE(is_table(m.name)) << "korttid.toml:" << m.line << ": [" << m.name << "] is not in the schema";
    else
      EXPECT_NE(row_named(m.name), nullptr) << "korttid.toml:" << m.line << ": " << m.name << " is not in the schema";
  }
  for (const auto& row : config_schema()) EXPECT_EQ(seen.count(row.name()), 1U) << row.name() << " not in korttid.toml";
}

// Its values are the defaults, and a key marked "# SIGHUP" is one a reload
// applies (and only those are marked).
TEST(ConfigSchema, TheShippedFileShowsTheDefaultsAndWhatSighupApplies) {
  const Config shipped = load_config((test::source_dir() / "daemon/korttid.toml").string());
  for (const auto& row : config_schema()) {
    if (row.in_array) continue;
    EXPECT_TRUE(row.get(shipped) == row.default_value) << row.name() << " in korttid.toml is not the default";
  }
  for (const auto& m : toml_mentions(read_text("daemon/korttid.toml"))) {
    const KeySpec* row = row_named(m.name);
    if (m.heading || row == nullptr || row->in_array) continue;
    EXPECT_EQ(m.value, toml_text(row->default_value)) << "korttid.toml:" << m.line;
    EXPECT_EQ(m.comment, row->reload == Reload::sighup ? "SIGHUP" : "") << "korttid.toml:" << m.line << ": " << m.name;
  }
}

// (b) Every key is in docs/configuration.md, with its default and what SIGHUP
// does with it, and the doc documents no key the schema lacks.
TEST(ConfigSchema, TheDocHasEveryKeyItsDefaultAndReloadAndNoOther) {
  const auto mentions = doc_mentions(read_text("docs/configuration.md"));
  std::set<std::string> seen;
  for (const auto& m : mentions) {
    const std::string where = "configuration.md:" + std::to_string(m.line) + ": ";
    if (m.heading) {
      EXPECT_TRUE(is_table(m.name)) << where << "[" << m.name << "] is not in the schema";
      if (const KeySpec* row = row_named(m.name)) seen.insert(row->name());
      continue;
    }
    const KeySpec* row = row_named(m.name);
    if (row == nullptr) {
      ADD_FAILURE() << where << m.name << " is not in the schema";
      continue;
    }
    EXPECT_TRUE(seen.insert(m.name).second) << where << m.name << " documented twice";
    ASSERT_GE(m.cells.size(), 3U) << where << "| key | default | reload | meaning |";
    if (row->required) {
      EXPECT_EQ(m.cells[0], "required") << where << m.name;
    } else if (!std::holds_alternative<std::monostate>(row->default_value)) {
      EXPECT_EQ(m.cells[0], "`" + toml_text(row->default_value) + "`") << where << m.name;
    }
    EXPECT_EQ(m.cells[1], reload_name(row->reload)) << where << m.name;
  }
  for (const auto& row : config_schema())
    EXPECT_EQ(seen.count(row.name()), 1U) << row.name() << " not in docs/configuration.md";
}

TEST(ConfigSchema, TablesInArraysAndMapsAreNotPlainKeys) {
  for (const auto& row : config_schema()) {
    if (!written_as_table(row)) continue;
    const auto p = problems_of("[" + row.table + "]\n" + row.key + " = 1\n");
    ASSERT_EQ(p.size(), 1U) << row.name();
    EXPECT_NE(p[0].find(row.name() + ": must be"), std::string::npos) << p[0];
  }
}

// What a reload names as waiting for a restart: a plain key, an array of
// tables whose number of entries changed, a field of one of its entries,
// and nothing for a key a reload applies.
TEST(ConfigSchema, ChangedKeysNameTheEntryOfAnArrayOfTables) {
  const std::string readers = "[[pcsc.reader]]\nname = \"A\"\n[[pcsc.reader]]\nname = \"B\"\n";
  const Config started = load_text(readers);
  EXPECT_TRUE(changed_keys(started, load_text(readers), Reload::restart).empty());
  EXPECT_EQ(changed_keys(started, load_text("[[pcsc.reader]]\nname = \"A\"\n[[pcsc.reader]]\nname = \"C\"\n"),
                         Reload::restart),
            std::vector<std::string>{"pcsc.reader[1].name"});
  EXPECT_EQ(
      changed_keys(started, load_text("[[pcsc.reader]]\nname = \"A\"\npinpad = false\n[[pcsc.reader]]\nname = \"B\"\n"),
                   Reload::restart),
      std::vector<std::string>{"pcsc.reader[0].pinpad"});
  EXPECT_EQ(changed_keys(started, load_text("[[pcsc.reader]]\nname = \"A\"\n"), Reload::restart),
            std::vector<std::string>{"pcsc.reader"});
  EXPECT_EQ(changed_keys(started, load_text("[pcsc]\nenabled = false\n" + readers + "[log]\nlevel = \"debug\"\n"),
                         Reload::restart),
            std::vector<std::string>{"pcsc.enabled"});
}

}  // namespace
}  // namespace kortti::daemon
