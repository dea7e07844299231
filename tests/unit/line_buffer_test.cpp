#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "ipc/line_buffer.hpp"

namespace kortti::ipc {
namespace {

void feed(LineBuffer& b, std::string_view data) {
  auto space = b.writable(data.size());
  std::memcpy(space.data(), data.data(), data.size());
  b.commit(data.size());
}

std::vector<std::string> drain(LineBuffer& b) {
  std::vector<std::string> lines;
  std::string_view line;
  while (b.next(line) == LineBuffer::Status::line) {
    lines.emplace_back(line);
    b.consume_line();
  }
  return lines;
}

TEST(LineBuffer, SplitsPipelinedMessagesAndKeepsTheRest) {
  LineBuffer b(1024);
  feed(b, "{\"a\":1}\n{\"b\":2}\r\n{\"c\"");
  EXPECT_EQ(drain(b), (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"}));
  EXPECT_EQ(b.buffered(), 4U);
  feed(b, ":3}\n");
  EXPECT_EQ(drain(b), (std::vector<std::string>{"{\"c\":3}"}));
  EXPECT_EQ(b.buffered(), 0U);
}

TEST(LineBuffer, RawBytesAfterALineAreTakenAsTheyAreAndWiped) {
  LineBuffer b(16);
  feed(b, "{\"a\":1}\nraw\nbytes, longer than a line may be{\"b\":2}\n");
  std::string_view line;
  ASSERT_EQ(b.next(line), LineBuffer::Status::line);
  EXPECT_EQ(line, "{\"a\":1}");
  b.consume_line();
  const std::string_view attachment = "raw\nbytes, longer than a line may be";
  const auto raw = b.peek(attachment.size());
  EXPECT_EQ(raw, attachment);
  const char* where = raw.data();
  b.consume(attachment.size());
  EXPECT_EQ(std::string(where, attachment.size()), std::string(attachment.size(), '\0')) << "taken bytes are wiped";
  EXPECT_EQ(drain(b), (std::vector<std::string>{"{\"b\":2}"}));
  EXPECT_THROW((void)b.peek(1), std::logic_error);
}

TEST(LineBuffer, MessageOfExactlyTheLimitIsAccepted) {
  LineBuffer b(8);
  feed(b, "12345678\n");
  EXPECT_EQ(drain(b), (std::vector<std::string>{"12345678"}));
}

TEST(LineBuffer, OverTheLimitWithoutNewlineIsTooLongEarly) {
  LineBuffer b(8);
  feed(b, "123456789");
  std::string_view line;
  EXPECT_EQ(b.next(line), LineBuffer::Status::too_long);
}

TEST(LineBuffer, OverTheLimitWithNewlineIsTooLong) {
  LineBuffer b(8);
  feed(b, "ok\n123456789\n");
  std::string_view line;
  ASSERT_EQ(b.next(line), LineBuffer::Status::line);
  b.consume_line();
  EXPECT_EQ(b.next(line), LineBuffer::Status::too_long);
}

TEST(LineBuffer, ManySmallReadsOfOneLargeMessage) {
  LineBuffer b(1 << 20);
  std::string big(700000, 'x');
  for (std::size_t i = 0; i < big.size(); i += 4096) feed(b, std::string_view(big).substr(i, 4096));
  std::string_view line;
  EXPECT_EQ(b.next(line), LineBuffer::Status::incomplete);
  feed(b, "\n");
  ASSERT_EQ(b.next(line), LineBuffer::Status::line);
  EXPECT_EQ(line.size(), big.size());
}

// Read as the connection reads (64 KiB at a time), a message of the limit
// used to double the buffer to twice the limit (16 MiB -> 32 MiB, on each
// of 64 connections).
TEST(LineBuffer, AMessageOfTheLimitLeavesNoBufferOfTwiceTheLimit) {
  constexpr std::size_t kLimit = 1 << 20;
  constexpr std::size_t kRead = 65536;
  LineBuffer b(kLimit);
  for (std::size_t fed = 0; fed < kLimit;) {
    const auto space = b.writable(kRead);
    const std::size_t n = std::min(space.size(), kLimit - fed);
    std::memset(space.data(), 'x', n);
    b.commit(n);
    fed += n;
  }
  b.writable(kRead)[0] = '\n';
  b.commit(1);
  std::string_view line;
  ASSERT_EQ(b.next(line), LineBuffer::Status::line);
  EXPECT_EQ(line.size(), kLimit);
  EXPECT_LE(b.capacity(), kLimit + 1 + kRead);
}

// Once a large message is handled, its room goes: a connection that then
// waits (or never reads its answers) held 17 MiB of buffer for good.
TEST(LineBuffer, ALargeMessageLeavesNoLargeBufferOnceHandled) {
  constexpr std::size_t kLimit = 1 << 20;
  LineBuffer b(kLimit);
  feed(b, std::string(kLimit, 'x') + "\n");
  EXPECT_GT(b.capacity(), kLimit);
  ASSERT_EQ(drain(b).size(), 1U);
  EXPECT_LE(b.capacity(), LineBuffer::kKeptBytes);
  feed(b, "{}\n");
  EXPECT_EQ(drain(b), std::vector<std::string>{"{}"});

  // So it does when the start of a next message has come with it.
  feed(b, std::string(kLimit, 'y') + "\n{\"a\":");
  ASSERT_EQ(drain(b).size(), 1U);
  EXPECT_LE(b.capacity(), LineBuffer::kKeptBytes);
  feed(b, "1}\n");
  EXPECT_EQ(drain(b), std::vector<std::string>{"{\"a\":1}"});
}

TEST(LineBuffer, ConsumedBytesAreOverwritten) {
  LineBuffer b(64);
  feed(b, "{\"pin\":\"917364\"}\nnext");
  std::string_view line;
  ASSERT_EQ(b.next(line), LineBuffer::Status::line);
  const char* where = line.data();
  const std::size_t size = line.size();
  b.consume_line();
  // The buffer still owns this memory (the tail "next" follows it).
  for (std::size_t i = 0; i < size; ++i) EXPECT_EQ(where[i], '\0') << i;
}

}  // namespace
}  // namespace kortti::ipc
