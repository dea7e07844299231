// An extract is parsed in batches of 512 lines: the first as the import
// asks for it, the rest on a thread of their own, ahead of the inserts.
// Around the batch's edge every line is imported once, a bad line is named
// by its number wherever it falls, and the provenance's hash is the file's.

#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "common/digest.hpp"
#include "common/encoding.hpp"
#include "policy/policy.hpp"

namespace kortti::test {
namespace {

std::string extract(std::size_t lines, std::size_t bad_line = 0) {
  std::string text;
  for (std::size_t i = 1; i <= lines; ++i) {
    // Blank lines count for the numbering, not for the batch.
    if (i % 100 == 0) text += "  \n";
    text += i == bad_line ? std::string(R"({"registration_number":""})")
                          : R"({"registration_number":")" + std::to_string(10000000 + i) + R"("})";
    text += "\n";
  }
  return text;
}

// The line number a file's `n`th record (from 1) is on, its blank lines counted.
std::size_t line_of(std::size_t n) { return n + n / 100; }

class ExtractBatches : public ::testing::TestWithParam<std::size_t> {};

TEST_P(ExtractBatches, EveryRecordIsImportedOnceAndTheHashIsTheFiles) {
  const std::size_t n = GetParam();
  policy::Registry registry(":memory:");
  const std::string text = extract(n);
  std::istringstream in(text);
  const auto result = registry.import_professionals(in, "test");
  EXPECT_EQ(result.records, n);
  EXPECT_EQ(result.provenance.sha256, hex_encode(digest(DigestAlgorithm::sha256, as_bytes(text))));
  EXPECT_TRUE(registry.by_registration_number(std::to_string(10000000 + n)).professional);
}

TEST_P(ExtractBatches, ABadLineIsNamedWhereverItFalls) {
  const std::size_t bad = GetParam();
  policy::Registry registry(":memory:");
  std::istringstream good(extract(3));
  (void)registry.import_professionals(good, "before");
  std::istringstream in(extract(1600, bad));
  std::string why = "accepted";
  try {
    (void)registry.import_professionals(in, "test");
  } catch (const std::invalid_argument& e) {
    why = e.what();
  }
  EXPECT_EQ(why, "line " + std::to_string(line_of(bad)) + ": registration_number: must not be empty");
  EXPECT_EQ(registry.provenance().source, "before") << "the set before stays";
}

INSTANTIATE_TEST_SUITE_P(AroundTheBatch, ExtractBatches, ::testing::Values(1, 511, 512, 513, 1024, 1025, 1600));

}  // namespace
}  // namespace kortti::test
