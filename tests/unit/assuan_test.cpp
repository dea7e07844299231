// The Assuan conversation with a pinentry program, over two pipes, the
// program's side written by the test.

#include <gtest/gtest.h>
#include <unistd.h>

#include "common/encoding.hpp"
#include "common/error.hpp"
#include "pinentry/assuan.hpp"

namespace kortti::pinentry {
namespace {

// A conversation whose program has already written `answer`.
class Pipes {
 public:
  explicit Pipes(const std::string& answer) {
    if (::pipe(to_) != 0 || ::pipe(from_) != 0) throw std::runtime_error("pipe");
    if (::write(from_[1], answer.data(), answer.size()) != static_cast<ssize_t>(answer.size()))
      throw std::runtime_error("write");
    ::close(from_[1]);
    conversation_.emplace(to_[1], from_[0], std::stop_token{});
  }
  ~Pipes() {
    conversation_.reset();
    ::close(to_[0]);
  }
  Conversation& conversation() { return *conversation_; }
  // What the conversation wrote to the program.
  [[nodiscard]] int to_program() const { return to_[0]; }

 private:
  int to_[2]{};
  int from_[2]{};
  std::optional<Conversation> conversation_;
};

Clock::time_point soon() { return Clock::now() + std::chrono::seconds(5); }

TEST(Assuan, APinOfSixtyFourCharactersOverDataLinesIsTaken) {
  const std::string pin(64, '7');
  Pipes p("D " + pin.substr(0, 30) + "\nD " + pin.substr(30) + "\nOK\n");
  EXPECT_EQ(p.conversation().getpin(soon()).view(), pin);
}

// Longer than protocol.md's 64 characters, in one data line or spread over
// several (as pinentry sends long data), it is refused while it is read.
TEST(Assuan, APinLongerThanSixtyFourCharactersIsRefused) {
  for (const std::string& answer : {"D " + std::string(65, '7') + "\nOK\n",
                                    "D " + std::string(600, '7') + "\nD " + std::string(600, '8') + "\nOK\n",
                                    "D " + std::string(64, '7') + "\nD %37\nOK\n"}) {
    Pipes p(answer);
    try {
      (void)p.conversation().getpin(soon());
      ADD_FAILURE() << "taken: " << answer.size() << " bytes";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::invalid_params) << e.what();
      EXPECT_NE(std::string(e.what()).find("longer than 64"), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find("777"), std::string::npos) << e.what();
    }
  }
}

TEST(Assuan, ABrokenEscapeIsTheProgramsFault) {
  Pipes p("D 12%4\nOK\n");
  try {
    (void)p.conversation().getpin(soon());
    ADD_FAILURE() << "taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::service_unavailable) << e.what();
  }
}

// A command's line longer than Assuan's 1,000 bytes is cut, at a whole
// character and never inside a %XX escape: pinentry-gnome3 refuses a text
// that is not UTF-8.
TEST(Assuan, ALineTooLongIsCutAtACharacter) {
  for (const std::string& tail : {std::string("\xC3\xA4"), std::string("%"), std::string("\xE2\x82\xAC")}) {
    for (std::size_t pad = 980; pad < 1000; ++pad) {
      Pipes p("OK\n");
      std::string words(pad, 'a');
      for (int i = 0; i < 20; ++i) words += tail;
      p.conversation().command("SETDESC", words, soon());
      std::string line(2048, '\0');
      const ssize_t n = ::read(p.to_program(), line.data(), line.size());
      ASSERT_GT(n, 0);
      line.resize(static_cast<std::size_t>(n));
      ASSERT_EQ(line.back(), '\n');
      line.pop_back();
      EXPECT_LE(line.size(), 999U);
      EXPECT_TRUE(valid_utf8(line)) << pad << ": " << line.substr(line.size() - 8);
      const auto percent = line.rfind('%');
      if (percent != std::string::npos) {
        EXPECT_LE(percent + 3, line.size()) << pad;
      }
    }
  }
}

}  // namespace
}  // namespace kortti::pinentry
