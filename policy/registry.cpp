#include <openssl/evp.h>

#include <fstream>
#include <map>
#include <set>

#include "common/encoding.hpp"
#include "common/openssl.hpp"
#include "policy/extract.hpp"
#include "policy/policy.hpp"
#include "policy/sqlite.hpp"

namespace kortti::policy {

namespace {

constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS professional(
  registration_number TEXT PRIMARY KEY,
  satu TEXT,
  record TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS professional_satu ON professional(satu);
CREATE TABLE IF NOT EXISTS provenance(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  source TEXT NOT NULL, imported_at TEXT NOT NULL, records INTEGER NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS code(
  code_set TEXT NOT NULL, code TEXT NOT NULL, name TEXT NOT NULL, valid_from TEXT, valid_to TEXT,
  PRIMARY KEY(code_set, code)) WITHOUT ROWID;
)";

// Splits one CSV line (RFC 4180 quoting).
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        out.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        out.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  if (quoted) throw std::invalid_argument("unterminated quote");
  return out;
}

}  // namespace

class Registry::Impl {
 public:
  Impl(const std::string& path, bool read_only)
      : db(path, read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) {
    if (!read_only) {
      db.exec("PRAGMA journal_mode=WAL");
      db.exec(kSchema);
    }
  }

  Provenance provenance_in_transaction() {
    sql::Statement& s =
        statement(provenance_query, "SELECT source, imported_at, records, sha256 FROM provenance WHERE id = 1");
    Provenance p;
    if (s.step()) {
      p.source = s.text(0);
      p.imported_at = parse_rfc3339(s.text(1));
      p.records = static_cast<std::size_t>(s.integer(2));
      p.sha256 = s.text(3);
    }
    s.reset();
    return p;
  }

  Lookup lookup(std::unique_ptr<sql::Statement>& cached, const char* query, const std::string& key) {
    // One read transaction: the record and the provenance of one snapshot.
    sql::Transaction t(db);
    Lookup out;
    out.provenance = provenance_in_transaction();
    sql::Statement& s = statement(cached, query);
    s.bind(1, key);
    if (s.step()) {
      out.professional = parse_professional(s.text_view(0));
      name_codes(*out.professional);
    }
    s.reset();
    t.commit();
    return out;
  }

  // Prepared once per connection: a lookup is then little more than the
  // bare indexed SELECT (bench/registry_bench).
  sql::Statement& statement(std::unique_ptr<sql::Statement>& cached, const char* query) {
    if (!cached) cached = std::make_unique<sql::Statement>(db, query);
    return *cached;
  }

  // Names from the code sets, for people reading a record or a reason.
  void name_codes(Professional& p) {
    sql::Statement& name = statement(code_name_query, "SELECT name FROM code WHERE code_set = ? AND code = ?");
    auto lookup = [&](const char* set, const std::string& code) {
      name.bind(1, set).bind(2, code);
      std::string out = name.step() ? name.text(0) : std::string();
      name.reset();
      return out;
    };
    for (auto& r : p.rights) r.name = lookup("rights", r.code);
    for (auto& r : p.restrictions) r.target_name = lookup("restriction_targets", r.target);
  }

  // Codes in `used` that an imported code set does not list.
  std::set<std::string> unknown(const char* set, const std::set<std::string>& used) {
    sql::Statement count(db, "SELECT count(*) FROM code WHERE code_set = ?");
    count.bind(1, set);
    if (!count.step() || count.integer(0) == 0) return {};
    sql::Statement find(db, "SELECT 1 FROM code WHERE code_set = ? AND code = ?");
    std::set<std::string> out;
    for (const auto& code : used) {
      find.bind(1, set).bind(2, code);
      if (!find.step()) out.insert(code);
      find.reset();
    }
    return out;
  }

  sql::Db db;
  std::unique_ptr<sql::Statement> provenance_query, by_number_query, by_satu_query, code_name_query;
};

Registry::Registry(const std::string& path, bool read_only) : impl_(std::make_unique<Impl>(path, read_only)) {}

Registry::~Registry() = default;

namespace {

std::ifstream open_input(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::invalid_argument("cannot read " + file);
  return in;
}

// A line of a CSV code set as the JSON entry it stands for; nothing for the
// header, which is the first line and names the columns.
std::optional<Json> csv_entry(const std::string& text, std::vector<std::string>& header) {
  auto fields = csv_fields(text);
  if (header.empty()) {
    header = std::move(fields);
    if (std::find(header.begin(), header.end(), "code") == header.end() ||
        std::find(header.begin(), header.end(), "name") == header.end())
      throw std::invalid_argument("the header must name at least code and name");
    return std::nullopt;
  }
  if (fields.size() != header.size())
    throw std::invalid_argument("has " + std::to_string(fields.size()) + " fields, the header " +
                                std::to_string(header.size()));
  Json entry = Json::object();
  for (std::size_t i = 0; i < fields.size(); ++i)
    if (!fields[i].empty()) entry[wstr(header[i])] = wstr(fields[i]);
  return entry;
}

void insert_code(sql::Statement& insert, const std::string& set, const CodeEntry& code) {
  insert.bind(1, set).bind(2, code.code).bind(3, code.name);
  if (code.valid.from)
    insert.bind(4, *code.valid.from);
  else
    insert.bind_null(4);
  if (code.valid.to)
    insert.bind(5, *code.valid.to);
  else
    insert.bind_null(5);
  insert.step();
  insert.reset();
}

}  // namespace

Registry::ImportResult Registry::import_professionals(const std::string& file, const std::string& source) {
  std::ifstream in = open_input(file);
  return import_professionals(in, source);
}

std::size_t Registry::import_codes(const std::string& set, const std::string& file) {
  std::ifstream in = open_input(file);
  const bool csv = file.size() >= 4 && file.substr(file.size() - 4) == ".csv";
  return import_codes(set, in, csv);
}

Registry::ImportResult Registry::import_professionals(std::istream& in, const std::string& source) {
  ExtractReader reader(in);
  sql::Db& db = impl_->db;
  // Everything in one transaction: a reader sees the old set or the new one,
  // and a bad line leaves the old one as it was.
  sql::Transaction t(db, "BEGIN IMMEDIATE");
  db.exec("DELETE FROM professional");
  sql::Statement insert(db, "INSERT INTO professional(registration_number, satu, record) VALUES (?, ?, ?)");
  std::map<std::string, std::size_t> first_line;
  // A SATU names one person: two records with it would make a certificate
  // that carries only its SATU one person's or the other's by chance.
  std::map<std::string, std::size_t> first_satu;
  std::set<std::string> rights_used, targets_used;
  std::size_t records = 0;
  for (auto batch = reader.next(); !batch.empty(); batch = reader.next()) {
    for (const ParsedLine& line : batch) {
      const Professional& p = line.professional;
      auto [it, fresh] = first_line.emplace(p.registration_number, line.number);
      if (!fresh)
        throw std::invalid_argument("line " + std::to_string(line.number) + ": registration_number " +
                                    p.registration_number + " already on line " + std::to_string(it->second));
      if (!p.satu.empty()) {
        auto [at, unique] = first_satu.emplace(p.satu, line.number);
        if (!unique)
          throw std::invalid_argument("line " + std::to_string(line.number) + ": identifiers.satu " + p.satu +
                                      " already on line " + std::to_string(at->second));
      }
      for (const auto& r : p.rights) rights_used.insert(r.code);
      for (const auto& r : p.restrictions) targets_used.insert(r.target);
      insert.bind(1, p.registration_number);
      if (p.satu.empty())
        insert.bind_null(2);
      else
        insert.bind(2, p.satu);
      // The line as imported: it parses the same way at every lookup.
      insert.bind(3, line.text);
      insert.step();
      insert.reset();
      ++records;
    }
  }
  // An empty extract is a broken export, not a register without anyone.
  if (records == 0) throw std::invalid_argument("the extract has no professionals");
  ImportResult result;
  result.records = records;
  result.unknown_rights = impl_->unknown("rights", rights_used);
  result.unknown_targets = impl_->unknown("restriction_targets", targets_used);
  result.provenance = {source, std::chrono::system_clock::now(), records, reader.sha256()};
  sql::Statement meta(
      db, "INSERT OR REPLACE INTO provenance(id, source, imported_at, records, sha256) VALUES (1, ?, ?, ?, ?)");
  meta.bind(1, source)
      .bind(2, to_rfc3339(*result.provenance.imported_at))
      .bind(3, static_cast<std::int64_t>(records))
      .bind(4, result.provenance.sha256);
  meta.step();
  t.commit();
  return result;
}

std::size_t Registry::import_codes(const std::string& set, std::istream& in, bool csv) {
  if (kCodeSets.count(set) == 0)
    throw std::invalid_argument("unknown code set '" + set + "' (rights, restriction_targets, medicine_classes)");
  HashingReader reader(in);
  sql::Db& db = impl_->db;
  sql::Transaction t(db, "BEGIN IMMEDIATE");
  sql::Statement clear(db, "DELETE FROM code WHERE code_set = ?");
  clear.bind(1, set);
  clear.step();
  sql::Statement insert(db, "INSERT INTO code(code_set, code, name, valid_from, valid_to) VALUES (?, ?, ?, ?, ?)");
  std::string text;
  std::size_t records = 0;
  std::vector<std::string> header;
  while (reader.line(text)) {
    if (blank_line(text)) continue;
    const std::string at = "line " + std::to_string(reader.number()) + ": ";
    Json entry;
    try {
      if (csv) {
        std::optional<Json> fields = csv_entry(text, header);
        if (!fields) continue;  // the header
        entry = std::move(*fields);
      } else {
        entry = Json::parse(text);
      }
      insert_code(insert, set, parse_code_entry(entry));
      ++records;
    } catch (const Json::parse_error&) {
      throw std::invalid_argument(at + "not valid JSON");
    } catch (const Json::out_of_range&) {
      // 1e999 (found by fuzzing): JSON's grammar allows it, a double cannot hold it.
      throw std::invalid_argument(at + "not valid JSON: a number out of range");
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(at + e.what());
    } catch (const std::runtime_error& e) {
      throw std::invalid_argument(at + e.what());
    }
  }
  t.commit();
  return records;
}

std::map<std::string, std::size_t> Registry::code_counts() {
  sql::Statement s(impl_->db, "SELECT code_set, count(*) FROM code GROUP BY code_set");
  std::map<std::string, std::size_t> out;
  while (s.step()) out[s.text(0)] = static_cast<std::size_t>(s.integer(1));
  return out;
}

Registry::Lookup Registry::by_registration_number(const std::string& number) {
  return impl_->lookup(impl_->by_number_query, "SELECT record FROM professional WHERE registration_number = ?", number);
}

Registry::Lookup Registry::by_satu(const std::string& satu) {
  return impl_->lookup(impl_->by_satu_query, "SELECT record FROM professional WHERE satu = ?", satu);
}

Provenance Registry::provenance() {
  sql::Transaction t(impl_->db);
  Provenance p = impl_->provenance_in_transaction();
  t.commit();
  return p;
}

std::optional<CodeEntry> Registry::code(const std::string& set, const std::string& code) {
  sql::Statement s(impl_->db, "SELECT name, valid_from, valid_to FROM code WHERE code_set = ? AND code = ?");
  s.bind(1, set).bind(2, code);
  if (!s.step()) return std::nullopt;
  return CodeEntry{code, s.text(0), {s.optional_text(1), s.optional_text(2)}};
}

}  // namespace kortti::policy
