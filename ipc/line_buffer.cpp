#include "ipc/line_buffer.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "common/secret.hpp"

namespace kortti::ipc {

std::span<char> LineBuffer::writable(std::size_t min) {
  if (data_.size() - end_ < min) {
    const std::size_t used = end_ - begin_;
    if (begin_ > 0) {
      std::memmove(data_.data(), data_.data() + begin_, used);
      wipe(data_.data() + used, end_ - used);
      scanned_ -= begin_;
      begin_ = 0;
      end_ = used;
    }
    // Doubling, but never past what the largest message and one read need:
    // a 16 MiB message must not leave a 32 MiB buffer behind it.
    if (data_.size() - end_ < min)
      data_.resize(std::max(end_ + min, std::min(data_.size() * 2, max_message_ + 1 + min)));
  }
  return {data_.data() + end_, data_.size() - end_};
}

LineBuffer::Status LineBuffer::next(std::string_view& line) {
  if (end_ == scanned_) return end_ - begin_ > max_message_ ? Status::too_long : Status::incomplete;
  const char* base = data_.data();
  const char* found = static_cast<const char*>(std::memchr(base + scanned_, '\n', end_ - scanned_));
  if (found == nullptr) {
    scanned_ = end_;
    return end_ - begin_ > max_message_ ? Status::too_long : Status::incomplete;
  }
  const auto pos = static_cast<std::size_t>(found - base);
  scanned_ = pos;
  std::size_t length = pos - begin_;
  if (length > max_message_) return Status::too_long;
  line_end_ = pos + 1;
  if (length > 0 && base[begin_ + length - 1] == '\r') --length;
  line = std::string_view(base + begin_, length);
  return Status::line;
}

void LineBuffer::consume_line() { consume(line_end_ - begin_); }

std::string_view LineBuffer::peek(std::size_t n) const {
  if (n > end_ - begin_) throw std::logic_error("LineBuffer::peek past the buffered bytes");
  return {data_.data() + begin_, n};
}

void LineBuffer::consume(std::size_t n) {
  if (n > end_ - begin_) throw std::logic_error("LineBuffer::consume past the buffered bytes");
  wipe(data_.data() + begin_, n);
  begin_ += n;
  scanned_ = begin_;
  if (begin_ == end_) begin_ = end_ = scanned_ = 0;
  // A large message's room goes with it (wiped as it is given back), the
  // start of a next one moved to a small buffer: a connection that waits,
  // or does not read its answers, holds little.
  if (data_.size() <= kKeptBytes || end_ - begin_ > kKeptBytes / 2) return;
  const std::size_t left = end_ - begin_;
  decltype(data_) smaller(left == 0 ? 0 : kKeptBytes);
  if (left > 0) std::memcpy(smaller.data(), data_.data() + begin_, left);
  data_.swap(smaller);
  begin_ = scanned_ = 0;
  end_ = left;
}

}  // namespace kortti::ipc
