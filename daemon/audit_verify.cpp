// `korttid audit verify`: the chain checked from the files alone.

#include <cstdint>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>

#include "common/json.hpp"
#include "daemon/audit.hpp"

namespace kortti::daemon {

namespace {

// The chain as verify walks it, one line at a time, oldest first.
class ChainCheck {
 public:
  explicit ChainCheck(std::optional<std::string> last_known) : last_known_(std::move(last_known)) {}

  // False at the first broken line, which it names.
  bool check(const std::string& line, const std::string& file, std::size_t number) {
    const std::string where = file + ":" + std::to_string(number);
    const Json parsed = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_object() || !parsed.contains("seq") || !parsed["seq"].is_number_unsigned() ||
        !parsed.contains("prev") || !parsed["prev"].is_string()) {
      std::cout << where << ": BROKEN: not an audit line with seq and prev\n";
      return false;
    }
    const auto line_seq = parsed["seq"].get<std::uint64_t>();
    const std::string line_prev = to_std(parsed["prev"].get<WipingString>());
    if (line_prev == kChainStart) {
      if (lines_ > 0) {
        if (number != 1) {
          std::cout << where << ": BROKEN: a chain start in the middle of a file\n";
          return false;
        }
        ++restarts_;
        std::cout << where << ": note: the chain starts anew here (seq " << line_seq
                  << "): korttid did not know the line before it, so the link cannot be checked\n";
      }
    } else if (lines_ == 0) {
      std::cout << where << ": note: the chain begins before this file (seq " << line_seq
                << "); give the older files first to check the link\n";
    } else if (line_prev != prev_) {
      std::cout << prev_where_ << ": BROKEN: this line (seq " << seq_ << ") does not hash to the prev of the next ("
                << where << "): it was changed, or lines after it were removed\n";
      return false;
    }
    if (lines_ > 0 && line_prev != kChainStart && line_seq != seq_ + 1) {
      std::cout << where << ": BROKEN: seq " << line_seq << " follows " << seq_ << ": lines are missing\n";
      return false;
    }
    if (lines_ == 0) first_seq_ = line_seq;
    seq_ = line_seq;
    prev_ = line_hash(line);
    prev_where_ = where;
    if (last_known_ && prev_ == *last_known_) known_where_ = where;
    ++lines_;
    return true;
  }

  // The verdict on the whole walk: verify's exit status.
  int finish() const {
    if (last_known_ && known_where_.empty()) {
      std::cout << "BROKEN: no line hashes to " << *last_known_
                << ": the line it was, or a line before it, was changed or removed (or the files are not the ones "
                   "it was taken from)\n";
      return 1;
    }
    if (lines_ == 0) {
      std::cout << "INCOMPLETE: no audit lines in the files given, so nothing is proven (a file logrotate has "
                   "just started is empty: give the older files first)\n";
      return 2;
    }
    const std::string range = std::to_string(lines_) + " lines, from seq " + std::to_string(first_seq_) +
                              " through seq " + std::to_string(seq_) + " (last hash " + prev_ + ")";
    const std::string known = last_known_ ? "; the last known hash is " + known_where_ : "";
    if (restarts_ > 0) {
      std::cout << "INCOMPLETE: " << range << ", intact, but the chain starts anew " << restarts_
                << " time(s) after its beginning" << known << "\n";
      return 2;
    }
    std::cout << "OK: " << range << ", chain intact" << known << "\n";
    return 0;
  }

 private:
  std::optional<std::string> last_known_;
  std::string known_where_;
  std::uint64_t first_seq_ = 0;
  std::uint64_t seq_ = 0;
  std::string prev_;
  std::string prev_where_;
  std::uint64_t lines_ = 0;
  std::uint64_t restarts_ = 0;
};

}  // namespace

bool is_sha256_hex(std::string_view text) {
  return text.size() == 64 && text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

int verify_audit_files(const std::vector<std::string>& files, const std::optional<std::string>& last_known) {
  ChainCheck chain(last_known);
  for (const std::string& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::cerr << "korttid audit verify: cannot read " << file << "\n";
      return 74;
    }
    std::size_t number = 0;
    for (std::string line; std::getline(in, line);)
      if (!chain.check(line, file, ++number)) return 1;
  }
  return chain.finish();
}

}  // namespace kortti::daemon
