// An extract or a code set with a line past the 64 KiB limit is refused
// at that line, having read no more of it than the limit: a file of one
// endless line costs the import 64 KiB, not the file's size.

#include <gtest/gtest.h>

#include <functional>
#include <istream>
#include <sstream>
#include <streambuf>

#include "policy/policy.hpp"

namespace kortti::test {
namespace {

// `total` bytes of `fill`, counting what the reader took: a stream that
// stands for a file too large to hold.
class Endless : public std::streambuf {
 public:
  Endless(std::string prefix, char fill, std::size_t total) : prefix_(std::move(prefix)), fill_(fill), left_(total) {}
  [[nodiscard]] std::size_t taken() const { return taken_; }

 protected:
  int_type underflow() override {
    if (left_ == 0) return traits_type::eof();
    std::size_t n = 0;
    for (; n < sizeof chunk_ && n < left_; ++n) {
      chunk_[n] = offset_ < prefix_.size() ? prefix_[offset_] : fill_;
      ++offset_;
    }
    left_ -= n;
    taken_ += n;
    setg(chunk_, chunk_, chunk_ + n);
    return traits_type::to_int_type(chunk_[0]);
  }

 private:
  std::string prefix_;
  char fill_;
  std::size_t left_;
  std::size_t offset_ = 0;
  std::size_t taken_ = 0;
  char chunk_[4096];
};

constexpr std::size_t kHuge = 256 * 1024 * 1024;

std::string refusal(const std::function<void()>& import) {
  try {
    import();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "accepted";
}

TEST(RegistryLine, AnEndlessExtractLineIsRefusedHavingReadLittleOfIt) {
  policy::Registry registry(":memory:");
  Endless file("", 'x', kHuge);
  std::istream in(&file);
  const std::string why = refusal([&] { (void)registry.import_professionals(in, "test"); });
  EXPECT_EQ(why, "line 1: longer than 65536 bytes");
  EXPECT_LT(file.taken(), 1U << 20) << "the import read the line whole before refusing it";
}

TEST(RegistryLine, AnEndlessCodeSetLineIsRefusedHavingReadLittleOfIt) {
  policy::Registry registry(":memory:");
  Endless file("{\"code\":\"", 'x', kHuge);
  std::istream in(&file);
  const std::string why = refusal([&] { (void)registry.import_codes("rights", in, false); });
  EXPECT_EQ(why, "line 1: longer than 65536 bytes");
  EXPECT_LT(file.taken(), 1U << 20) << "the import read the line whole before refusing it";
}

// A line of blanks past the limit is not a blank line to skip: the file is
// refused there, and nothing after it is read (it was read on as empty
// lines, for ever).
TEST(RegistryLine, ABlankLinePastTheLimitIsRefusedNotSkipped) {
  policy::Registry registry(":memory:");
  std::istringstream in(std::string(70000, ' ') + "\nmore\n");
  EXPECT_EQ(refusal([&] { (void)registry.import_professionals(in, "test"); }), "line 1: longer than 65536 bytes");
  std::istringstream codes(std::string(70000, '\t') + "\n");
  EXPECT_EQ(refusal([&] { (void)registry.import_codes("rights", codes, false); }), "line 1: longer than 65536 bytes");
}

TEST(RegistryLine, ALineOfExactlyTheLimitIsReadAndOneByteMoreIsNot) {
  policy::Registry registry(":memory:");
  for (const std::string end : {"\n", "\r\n", ""}) {
    // Read, and refused as what it is (not a professional), not for its length.
    std::istringstream at_limit(std::string(65536, 'x') + end);
    const std::string a = refusal([&] { (void)registry.import_professionals(at_limit, "test"); });
    EXPECT_EQ(a.rfind("line 1: ", 0), 0U) << a;
    EXPECT_EQ(a.find("longer than"), std::string::npos) << a;
    std::istringstream over(std::string(65537, 'x') + end);
    EXPECT_EQ(refusal([&] { (void)registry.import_professionals(over, "test"); }), "line 1: longer than 65536 bytes");
  }
}

}  // namespace
}  // namespace kortti::test
