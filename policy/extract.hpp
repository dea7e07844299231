#pragma once

// Internal to policy/ (docs/architecture.md, Layering); include policy/policy.hpp.
#if !defined(KORTTI_COMPONENT_POLICY) && !defined(KORTTI_WHITE_BOX)
#error "policy/extract.hpp is internal to policy/; include policy/policy.hpp"
#endif

// Reading a Valvira extract: lines hashed as they are read (the provenance
// names exactly the bytes imported), and professionals parsed on a thread of
// their own, ahead of the SQLite inserts.

#include <condition_variable>
#include <deque>
#include <istream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/openssl.hpp"
#include "policy/policy.hpp"

namespace kortti::policy {

// Blank lines (spaces and tabs only) are skipped in extracts and code sets.
bool blank_line(const std::string& line);

class HashingReader {
 public:
  // A line of one professional or one code; a file is refused at a longer one.
  static constexpr std::size_t kMaxLineBytes = 64 * 1024;

  explicit HashingReader(std::istream& in);
  // The next line without its end (\n or \r\n); false at the end.
  // std::invalid_argument "line N: ..." for a line longer than
  // kMaxLineBytes (no more of it is read than that) or a file that cannot
  // be read further: the file is refused, and no line after it is read.
  bool line(std::string& out);
  // The number of the line line() gave last, from 1.
  [[nodiscard]] std::size_t number() const { return number_; }
  std::string sha256();  // hex, of everything read

 private:
  std::istream& in_;
  EvpMdCtxPtr md_;
  std::vector<char> buffer_ = std::vector<char>(kMaxLineBytes + 2);
  std::size_t number_ = 0;
};

struct ParsedLine {
  std::size_t number = 0;  // 1-based
  std::string text;
  Professional professional;
};

// Parses the extract in batches: the first when it is asked for, the rest
// (if any) on a thread of its own, a bounded number of batches ahead.
class ExtractReader {
 public:
  explicit ExtractReader(std::istream& in);
  ~ExtractReader();  // stops the thread, if one started
  ExtractReader(const ExtractReader&) = delete;
  ExtractReader& operator=(const ExtractReader&) = delete;

  // The next parsed lines, blank ones left out; empty at the end. Throws
  // std::invalid_argument("line N: ...") at the first bad line.
  std::vector<ParsedLine> next();
  [[nodiscard]] std::string sha256() const { return sha256_; }  // at the end

 private:
  // Parses lines into `batch` until it is full (true) or the file ends or a
  // line is bad (false; `error` then says which).
  bool fill(std::vector<ParsedLine>& batch, std::string& error);
  // The last batch and how the file ended; under mutex_ once the thread runs.
  void finish(std::vector<ParsedLine> batch, const std::string& error);
  void run();

  HashingReader reader_;
  bool started_ = false;  // next() was asked once
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::vector<ParsedLine>> ready_;
  bool finished_ = false;
  bool stopping_ = false;
  std::string error_;
  std::string sha256_;
  std::thread thread_;
};

}  // namespace kortti::policy
