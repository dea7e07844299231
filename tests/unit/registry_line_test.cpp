// An extract or a code set with a line past the 64 KiB limit is refused
// at that line, having read no more of it than the limit: a file of one
// endless line costs the import 64 KiB, not the file's size.

#include <gtest/gtest.h>

#include <functional>
#include <istream>
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

}  // namespace
}  // namespace kortti::test
