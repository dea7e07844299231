#pragma once

// What more than one fuzz target needs. Nothing here parses: the targets call
// the real parsers of the libraries.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/bytes.hpp"

namespace kortti::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A file of fuzz/data/ (the test PKI's certificates the targets need).
Bytes data_file(const std::string& name);

// The input as a file, for parsers that take a path: an anonymous memory file
// (memfd) named /proc/self/fd/N, so that nothing touches the disk and no two
// fuzzer processes share a name. Closed when this goes.
class MemoryFile {
 public:
  MemoryFile(const std::uint8_t* data, std::size_t size);
  ~MemoryFile();
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// An exception the parser's contract does not allow: report it the way
// libFuzzer reports a crash, with the message, so the input is kept.
[[noreturn]] void unexpected_exception(const char* target, const std::exception& e);

}  // namespace kortti::fuzz
