#pragma once

// Internal to ipc/ (docs/architecture.md, Layering); include ipc/ipc.hpp.
#if !defined(KORTTI_COMPONENT_IPC) && !defined(KORTTI_WHITE_BOX)
#error "ipc/line_buffer.hpp is internal to ipc/; include ipc/ipc.hpp"
#endif

#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "common/json.hpp"

namespace kortti::ipc {

// The bytes a connection has read but not yet handled, split into
// newline-delimited messages and the raw attachments that may follow them. Consumed bytes are overwritten at once
// (requests carry PINs), and memory given back is wiped by the allocator.
class LineBuffer {
 public:
  explicit LineBuffer(std::size_t max_message) : max_message_(max_message) {}

  // Space for the next read of at least `min` bytes.
  std::span<char> writable(std::size_t min);
  void commit(std::size_t n) { end_ += n; }

  enum class Status { line, incomplete, too_long };
  // The next complete message (without its newline), or why there is none.
  // too_long: a message exceeds the limit, with or without its newline yet.
  Status next(std::string_view& line);
  // Drops the message returned by next() and its newline, wiping them.
  void consume_line();

  // Raw bytes after the last consumed line (an attachment): the first `n`,
  // which must be buffered(), and dropping them, wiped.
  [[nodiscard]] std::string_view peek(std::size_t n) const;
  void consume(std::size_t n);

  [[nodiscard]] std::size_t buffered() const noexcept { return end_ - begin_; }
  // The memory it holds: once at most half of kKeptBytes (a read's worth)
  // is left unconsumed, at most kKeptBytes.
  [[nodiscard]] std::size_t capacity() const noexcept { return data_.size(); }
  static constexpr std::size_t kKeptBytes = 64 * 1024;

 private:
  std::size_t max_message_;
  std::vector<char, WipingAllocator<char>> data_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::size_t scanned_ = 0;  // no newline in [begin_, scanned_)
  std::size_t line_end_ = 0;
};

}  // namespace kortti::ipc
