#include <gtest/gtest.h>

#include <stdexcept>
#include <type_traits>

#include "common/openssl.hpp"
#include "common/owned.hpp"

namespace kortti {
namespace {

// A C-style object and its release function, counting what the deleter does.
struct Thing {
  int frees = 0;
};
int g_release_calls = 0;
void release_thing(Thing* t) noexcept {
  ++g_release_calls;
  ++t->frees;
}
using ThingPtr = Owned<Thing, release_thing>;

// One word, as a raw pointer: no function pointer stored beside it.
static_assert(sizeof(ThingPtr) == sizeof(void*));
static_assert(sizeof(X509Ptr) == sizeof(void*));
static_assert(sizeof(X509StackPtr) == sizeof(void*));
static_assert(sizeof(BorrowedX509StackPtr) == sizeof(void*));
static_assert(sizeof(OpensslString) == sizeof(void*));
static_assert(std::is_nothrow_invocable_v<FreeWith<release_thing>, Thing*>);

class OwnedPointer : public ::testing::Test {
 protected:
  void SetUp() override { g_release_calls = 0; }
};

TEST_F(OwnedPointer, FreesOnceAtTheEndOfItsScope) {
  Thing thing;
  { const ThingPtr p(&thing); }
  EXPECT_EQ(thing.frees, 1);
}

TEST_F(OwnedPointer, FreesOnceAfterAMoveAndAReset) {
  Thing thing;
  {
    ThingPtr a(&thing);
    ThingPtr b = std::move(a);
    a.reset();  // NOLINT(bugprone-use-after-move): moved-from state is specified
    EXPECT_EQ(thing.frees, 0);
    b.reset();
    EXPECT_EQ(thing.frees, 1);
    b.reset();
  }
  EXPECT_EQ(thing.frees, 1);
}

TEST_F(OwnedPointer, FreesOnceWhenAnExceptionPasses) {
  Thing thing;
  try {
    const ThingPtr p(&thing);
    throw std::runtime_error("between the allocation and the end of the scope");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(thing.frees, 1);
}

TEST_F(OwnedPointer, DoesNotFreeWhatItReleased) {
  Thing thing;
  {
    ThingPtr p(&thing);
    EXPECT_EQ(p.release(), &thing);
  }
  EXPECT_EQ(thing.frees, 0);
}

TEST_F(OwnedPointer, NeverPassesNullToTheFreeFunction) {
  { const ThingPtr empty; }
  { const ThingPtr null(nullptr); }
  {
    ThingPtr p;
    p.reset();
    p.reset(nullptr);
  }
  FreeWith<release_thing>{}(static_cast<Thing*>(nullptr));  // as a deleter called by hand
  EXPECT_EQ(g_release_calls, 0);
}

// The OpenSSL aliases under ASan: a leak or a double free fails this test.
TEST_F(OwnedPointer, X509StacksOwnOrBorrowTheirCertificates) {
  X509Ptr borrowed(X509_new());
  ASSERT_TRUE(borrowed);
  {
    const BorrowedX509StackPtr view(sk_X509_new_null());
    ASSERT_TRUE(view);
    ASSERT_EQ(sk_X509_push(view.get(), borrowed.get()), 1);
  }
  EXPECT_EQ(X509_set_version(borrowed.get(), X509_VERSION_3), 1);  // still alive

  const X509StackPtr owning(sk_X509_new_null());
  ASSERT_TRUE(owning);
  ASSERT_EQ(sk_X509_push(owning.get(), borrowed.get()), 1);
  borrowed.release();  // the stack frees it
}

TEST_F(OwnedPointer, OpensslStringsAreFreedWithOpensslFree) {
  X509Ptr cert(X509_new());
  ASSERT_TRUE(cert);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("Owned"), -1, -1, 0);
  const OpensslString line(X509_NAME_oneline(X509_get_subject_name(cert.get()), nullptr, 0));
  ASSERT_TRUE(line);
  EXPECT_STREQ(line.get(), "/CN=Owned");
}

}  // namespace
}  // namespace kortti
