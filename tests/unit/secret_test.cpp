#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <vector>

#include "common/error.hpp"
#include "common/json.hpp"
#include "common/secret.hpp"

namespace kortti {
namespace {

TEST(SecretString, TakeCopiesThenWipesTheSource) {
  std::string source = "917364";
  const char* where = source.data();
  SecretString pin = SecretString::take(source);
  EXPECT_EQ(pin.view(), "917364");
  EXPECT_TRUE(source.empty());
  // The old buffer (small-string storage inside `source`) holds no digits.
  for (int i = 0; i < 6; ++i) EXPECT_EQ(where[i], '\0');
}

// With the locked heap full the copy throws, and the source is wiped all
// the same: it is ordinary memory, freed by its owner after the throw.
TEST(SecretString, TakeWipesTheSourceWhenTheLockedHeapIsFull) {
  if (CRYPTO_secure_malloc_initialized() == 0) {
    ASSERT_NE(CRYPTO_secure_malloc_init(4096, 16), 0);
  }
  std::vector<SecretString> filler;
  try {
    for (int i = 0; i < 10000; ++i) filler.emplace_back(std::string_view("0123456789abcdef0123456789abcde"));
    FAIL() << "the locked heap never filled";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::service_unavailable);
  }
  std::string source = "917364";
  const char* where = source.data();
  EXPECT_THROW((void)SecretString::take(source), Error);
  EXPECT_TRUE(source.empty());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(where[i], '\0');
  filler.clear();  // room again for whatever runs next in this process
}

TEST(SecretString, MovesWithoutCopying) {
  SecretString a("1234");
  const char* data = a.data();
  SecretString b = std::move(a);
  EXPECT_EQ(b.data(), data);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_EQ(b.view(), "1234");
  EXPECT_EQ(b.data()[b.size()], '\0');
}

TEST(WipingJson, ParsedStringsAreStoredWithTheWipingAllocator) {
  Json j = Json::parse(R"({"pin":"123456","x":[1,"abc"]})");
  auto& pin = j["pin"].get_ref<WipingString&>();
  static_assert(std::is_same_v<std::decay_t<decltype(pin)>::allocator_type, WipingAllocator<char>>);
  EXPECT_EQ(pin, "123456");
  SecretString s = SecretString::take(pin);
  EXPECT_TRUE(j["pin"].get_ref<WipingString&>().empty());
  EXPECT_EQ(s.view(), "123456");
}

}  // namespace
}  // namespace kortti
