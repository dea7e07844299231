#include <gtest/gtest.h>

#include "daemon/wiring.hpp"

namespace kortti::daemon {
namespace {

std::vector<pcsc::ReaderState> readers(std::initializer_list<const char*> names) {
  std::vector<pcsc::ReaderState> out;
  for (const char* n : names) {
    pcsc::ReaderState r;
    r.name = n;
    out.push_back(r);
  }
  return out;
}

TEST(ReaderForSlot, ExactNamesWin) {
  const auto r = readers({"Virtual PCD 00 00", "Virtual PCD 00 01"});
  EXPECT_EQ(reader_for_slot(r, "Virtual PCD 00 01"), "Virtual PCD 00 01");
}

TEST(ReaderForSlot, ModulesThatAppendToTheReaderNameMatchTheLongestReader) {
  const auto r = readers({"Gemalto PC Twin Reader 00 00", "Gemalto PC Twin Reader 00 00 (extra)"});
  EXPECT_EQ(reader_for_slot(r, "Gemalto PC Twin Reader 00 00 (extra) slot 1"), "Gemalto PC Twin Reader 00 00 (extra)");
  EXPECT_EQ(reader_for_slot(r, "Gemalto PC Twin Reader 00 00 PIN2"), "Gemalto PC Twin Reader 00 00");
}

TEST(ReaderForSlot, DescriptionsCutAt64CharactersStillMatch) {
  const std::string long_name = "Identiv uTrust 3700 F CL Reader with a very long product name [CCID Interface] 00 00";
  const auto r = readers({long_name.c_str()});
  EXPECT_EQ(reader_for_slot(r, long_name.substr(0, 64)), long_name);
}

TEST(ReaderForSlot, TwoReadersThatACutDescriptionCannotTellApartGetNeither) {
  const std::string model = "Identiv uTrust 3700 F CL Reader with a very long product name [CCID Interface]";
  const std::string first = model + " 00 00";
  const std::string second = model + " 01 00";
  const auto r = readers({first.c_str(), second.c_str()});
  EXPECT_EQ(reader_for_slot(r, first.substr(0, 64)), std::nullopt);
  EXPECT_EQ(reader_for_slot(r, first), first) << "a whole name still matches";
}

TEST(ReaderForSlot, NoReaderForSoftwareTokens) {
  const auto r = readers({"Virtual PCD 00 00"});
  EXPECT_EQ(reader_for_slot(r, "SoftHSM slot ID 0x2576892f"), std::nullopt);
  EXPECT_EQ(reader_for_slot(r, ""), std::nullopt);
}

TEST(FineidPinReference, SignatureTokensUsePin2) {
  EXPECT_EQ(fineid_pin_reference("Testilääkäri Aino"), 0x11);
  EXPECT_EQ(fineid_pin_reference("AINO TESTI (PIN2)"), 0x82);
  EXPECT_EQ(fineid_pin_reference("Allekirjoitustunnusluku"), 0x82);
  EXPECT_EQ(fineid_pin_reference("Signature PIN"), 0x82);
  EXPECT_EQ(fineid_pin_reference("perustunnusluku"), 0x11);
}

TEST(MonitorOptions, ConfiguredCardTypesAndReaderOverrides) {
  Config::Pcsc c;
  c.readers.push_back({"Cherry", false});
  c.card_types.push_back({"3B 8F 80 01", "FF FF 00 FF", "test_type", "a test"});
  const auto o = monitor_options(c);
  ASSERT_EQ(o.overrides.size(), 1U);
  EXPECT_EQ(o.overrides[0].pinpad, false);
  const Bytes atr = {0x3B, 0x8F, 0x42, 0x01};
  ASSERT_TRUE(o.atrs.match(atr).has_value());
  EXPECT_EQ(o.atrs.match(atr)->card_type, "test_type");
  EXPECT_TRUE(is_fineid_family("dvv_healthcare"));
  EXPECT_FALSE(is_fineid_family("test_type"));
}

// The listener's files are the user's: $XDG_DATA_HOME, else ~/.local/share.
TEST(ScsOptions, TheDefaultFilesAreInTheUsersDataFolder) {
  const char* saved_data = std::getenv("XDG_DATA_HOME");
  const std::string saved = saved_data != nullptr ? saved_data : "";
  Config config;
  ::setenv("XDG_DATA_HOME", "/home/aino/.data", 1);
  EXPECT_EQ(scs_options(config).certificate, "/home/aino/.data/kortti/scs/localhost.pem");
  EXPECT_EQ(scs_options(config).key, "/home/aino/.data/kortti/scs/localhost.key");
  ::unsetenv("XDG_DATA_HOME");
  EXPECT_EQ(scs_options(config).certificate,
            std::string(std::getenv("HOME")) + "/.local/share/kortti/scs/localhost.pem");
  config.scs.key = "/etc/scs.key";
  EXPECT_EQ(scs_options(config).key, "/etc/scs.key");
  if (saved_data != nullptr) ::setenv("XDG_DATA_HOME", saved.c_str(), 1);
}

}  // namespace
}  // namespace kortti::daemon
