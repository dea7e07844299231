#pragma once

// Internal to policy/ (docs/architecture.md, Layering); include policy/policy.hpp.
#if !defined(KORTTI_COMPONENT_POLICY) && !defined(KORTTI_WHITE_BOX)
#error "policy/sqlite.hpp is internal to policy/; include policy/policy.hpp"
#endif

// Owning handles for SQLite, and a prepared statement that says which SQL
// failed.

#include <sqlite3.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace kortti::policy::sql {

class Db {
 public:
  Db(const std::string& path, int flags);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  [[nodiscard]] sqlite3* get() const noexcept { return db_; }
  void exec(const char* sql);

 private:
  sqlite3* db_ = nullptr;
};

class Statement {
 public:
  Statement(const Db& db, const char* sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, std::int64_t value);
  Statement& bind_null(int index);
  // True while there is a row.
  bool step();
  void reset();
  [[nodiscard]] std::string text(int column) const;
  // Valid until the next step() or reset().
  [[nodiscard]] std::string_view text_view(int column) const;
  [[nodiscard]] std::optional<std::string> optional_text(int column) const;
  [[nodiscard]] std::int64_t integer(int column) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string sql_;
};

// BEGIN ... COMMIT, rolled back unless commit() was called.
class Transaction {
 public:
  Transaction(Db& db, const char* begin = "BEGIN");
  ~Transaction();
  void commit();

 private:
  Db& db_;
  bool done_ = false;
};

}  // namespace kortti::policy::sql
