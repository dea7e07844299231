#include "policy/sqlite.hpp"

#include <utility>

#include "common/owned.hpp"

namespace kortti::policy::sql {

Db::Db(const std::string& path, int flags) {
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    // No destructor runs for a constructor that throws.
    const Owned<sqlite3, sqlite3_close> failed(std::exchange(db_, nullptr));
    const std::string why = failed ? sqlite3_errmsg(failed.get()) : "out of memory";
    throw std::runtime_error("cannot open the registry " + path + ": " + why);
  }
  // Readers wait for a writer's commit instead of failing.
  sqlite3_busy_timeout(db_, 10000);
}

Db::~Db() { sqlite3_close(db_); }

void Db::exec(const char* sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
  const Owned<char, sqlite3_free> owned(error);
  if (rc != SQLITE_OK) {
    const std::string why = error != nullptr ? error : "unknown error";
    throw std::runtime_error(std::string("registry: ") + why + " in: " + sql);
  }
}

Statement::Statement(const Db& db, const char* sql) : db_(db.get()), sql_(sql) {
  if (sqlite3_prepare_v2(db_, sql, -1, &stmt_, nullptr) != SQLITE_OK)
    throw std::runtime_error(std::string("registry: ") + sqlite3_errmsg(db_) + " in: " + sql);
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bind(int index, std::string_view text) {
  sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::bind(int index, std::int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

Statement& Statement::bind_null(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw std::runtime_error(std::string("registry: ") + sqlite3_errmsg(db_) + " in: " + sql_);
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::string Statement::text(int column) const {
  const auto* p = sqlite3_column_text(stmt_, column);
  return p != nullptr ? std::string(reinterpret_cast<const char*>(p),
                                    static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)))
                      : std::string();
}

std::string_view Statement::text_view(int column) const {
  const auto* p = sqlite3_column_text(stmt_, column);
  return p != nullptr ? std::string_view(reinterpret_cast<const char*>(p),
                                         static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)))
                      : std::string_view();
}

std::optional<std::string> Statement::optional_text(int column) const {
  if (sqlite3_column_type(stmt_, column) == SQLITE_NULL) return std::nullopt;
  return text(column);
}

std::int64_t Statement::integer(int column) const { return sqlite3_column_int64(stmt_, column); }

Transaction::Transaction(Db& db, const char* begin) : db_(db) { db_.exec(begin); }

Transaction::~Transaction() {
  if (!done_) sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

}  // namespace kortti::policy::sql
