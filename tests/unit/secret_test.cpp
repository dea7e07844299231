#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/json.hpp"
#include "common/sanitizers.hpp"
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

#if !KORTTI_ASAN_BUILD && !KORTTI_TSAN_BUILD
// What a thread frees in a WipeFrees scope is overwritten first. glibc's
// allocator gives the chunk just freed to the next request of its size on
// the same thread (its tcache), and uses its first 16 bytes itself. (The
// sanitizer builds, whose allocator is their own, have no such scope.)
TEST(WipeFrees, WhatIsFreedInTheScopeIsOverwritten) {
  constexpr std::size_t kSize = 200;
  auto after_free = [&](bool scoped, bool sized) {
    void* block = ::operator new(kSize);
    std::memset(block, 'P', kSize);
    asm volatile("" : : "r"(block) : "memory");
    {
      std::optional<WipeFrees> scope;
      if (scoped) scope.emplace();
      if (sized)
        ::operator delete(block, kSize);
      else
        ::operator delete(block);
    }
    void* again = ::operator new(kSize);
    asm volatile("" : : "r"(again) : "memory");
    EXPECT_EQ(again, block) << "the allocator gave another chunk";
    std::string tail(static_cast<const char*>(again) + 16, kSize - 16);
    ::operator delete(again);
    return tail;
  };
  EXPECT_EQ(after_free(false, true), std::string(kSize - 16, 'P')) << "outside a scope, nothing is overwritten";
  EXPECT_EQ(after_free(true, true).find('P'), std::string::npos);
  EXPECT_EQ(after_free(true, false).find('P'), std::string::npos);
}
#endif

}  // namespace
}  // namespace kortti
