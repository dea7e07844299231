#include <gtest/gtest.h>

#include "common/encoding.hpp"
#include "common/subject.hpp"

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

// What reaches a log line or a PIN dialog's text must not change how the
// text around it shows: a NUL ends pinentry's copy of the description, ESC
// and C1's CSI (0x9B) start terminal escape sequences, a bidirectional
// override makes a name read backwards.
TEST(PlainText, RefusesControlCharactersAndBidiOverridesButNotLetters) {
  EXPECT_TRUE(plain_text("EHR Testi, Lääkäri & Co (v2) \xE2\x82\xAC"));  // euro sign
  EXPECT_TRUE(plain_text(""));
  for (std::string_view bad :
       {std::string_view("a\0b", 3), std::string_view("a\x1B[2Jb"), std::string_view("a\nb"), std::string_view("a\x7F"),
        std::string_view("a\xC2\x9B"
                         "2J"),
        std::string_view("a\xC2\x85"),
        std::string_view("\xE2\x80\xAE"
                         "abc"),
        std::string_view("\xE2\x80\xAA"),
        std::string_view("\xE2\x81\xA6"
                         "x"),
        std::string_view("\xE2\x81\xA9"), std::string_view("a\xFF"), std::string_view("\xC3")})
    EXPECT_FALSE(plain_text(bad)) << printable(bad);
  // Neighbours of the refused ranges are ordinary characters.
  EXPECT_TRUE(plain_text("\xC2\xA0\xE2\x80\xA9\xE2\x80\xAF\xE2\x81\xA5\xE2\x81\xAA"));
}

TEST(Printable, ReplacesWhatPlainTextRefusesAndCutsAtACharacter) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  const std::string r(kReplacement);
  EXPECT_EQ(printable(std::string_view("a\0b\x1B\xC2\x9B\xE2\x80\xAEz", 10)), "a" + r + "b" + r + r + r + "z");
  EXPECT_EQ(printable("Lääkäri"), "Lääkäri");
  EXPECT_EQ(printable("\xFF"), r);
  const std::string cut = printable("ääääää", 5);  // 2 bytes each: cut after the third
  EXPECT_EQ(cut, "äää...");
  EXPECT_TRUE(plain_text(cut));
}

}  // namespace
// How a dialog names the person a certificate is for.
TEST(AsciiLower, LowersAsciiLettersOnly) {
  EXPECT_EQ(ascii_lower("Sec-Fetch-Mode: SSO.Example.FI:443"), "sec-fetch-mode: sso.example.fi:443");
  EXPECT_EQ(ascii_lower("ALLEKIRJOITUS \xc3\x84\xc3\x96"), "allekirjoitus \xc3\x84\xc3\x96") << "UTF-8 bytes stay";
}

TEST(CommonName, IsTheCnUnescapedAndAnEscapedCommaDoesNotStartAnotherAttribute) {
  EXPECT_EQ(common_name("CN=Testil\u00e4\u00e4k\u00e4ri Aino,O=DVV,C=FI"), "Testil\u00e4\u00e4k\u00e4ri Aino");
  EXPECT_EQ(common_name("C=FI,CN=Aino\\, Testi"), "Aino, Testi");
  // An OU that holds ",CN=" must not name someone else than the CN.
  EXPECT_EQ(common_name("OU=y\\,CN=L\u00e4\u00e4k\u00e4ri Testi,CN=Mallory,C=FI"), "Mallory");
  EXPECT_EQ(common_name("O=DVV,C=FI"), "O=DVV,C=FI");
  EXPECT_EQ(common_name("SERIALNUMBER=99+CN=Aino Testi,C=FI"), "Aino Testi");
  EXPECT_EQ(common_name("CN=,O=DVV"), "CN=,O=DVV") << "an empty CN names nobody";
}

}  // namespace kortti
