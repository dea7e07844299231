#pragma once

// Internal to client/ (docs/architecture.md, Layering); include client/client.hpp.
#if !defined(KORTTI_COMPONENT_CLIENT) && !defined(KORTTI_WHITE_BOX)
#error "client/table.hpp is internal to client/; include client/client.hpp"
#endif

#include <ostream>
#include <string>
#include <vector>

namespace kortti::client {

// Plain aligned columns with a header row, for people reading a terminal.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(std::ostream& out) const;
  [[nodiscard]] bool empty() const noexcept { return rows_.empty(); }

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace kortti::client
