#include <gtest/gtest.h>

#include "common/encoding.hpp"

namespace kortti {
namespace {

Bytes bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

TEST(Base64, EncodesRfc4648Vectors) {
  EXPECT_EQ(base64_encode(bytes("")), "");
  EXPECT_EQ(base64_encode(bytes("f")), "Zg==");
  EXPECT_EQ(base64_encode(bytes("fo")), "Zm8=");
  EXPECT_EQ(base64_encode(bytes("foo")), "Zm9v");
  EXPECT_EQ(base64_encode(bytes("foobar")), "Zm9vYmFy");
}

TEST(Base64, DecodesWhatItEncodes) {
  for (std::size_t n = 0; n < 70; ++n) {
    Bytes data(n);
    for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<std::uint8_t>(i * 37 + 11);
    auto back = base64_decode(base64_encode(data));
    ASSERT_TRUE(back.has_value()) << n;
    EXPECT_EQ(*back, data);
  }
}

TEST(Base64, RejectsAnythingNotCanonical) {
  for (const char* bad :
       {"Zg=", "Zg", "Z===", "Zm9v\n", " Zm9v", "Zm-v", "Zm_v", "Zh==", "Zm9=", "====", "Zg==Zg==", "=Zg=", "Z\0g="})
    EXPECT_FALSE(base64_decode(bad).has_value()) << bad;
}

TEST(Hex, RoundTripsAndRejectsJunk) {
  EXPECT_EQ(hex_encode(bytes("\x01\xab\xff")), "01abff");
  EXPECT_EQ(hex_encode(bytes("\x01\xab\xff"), true), "01ABFF");
  EXPECT_EQ(*hex_decode("01ABff"), bytes("\x01\xab\xff"));
  EXPECT_FALSE(hex_decode("0").has_value());
  EXPECT_FALSE(hex_decode("0g").has_value());
}

}  // namespace
}  // namespace kortti
