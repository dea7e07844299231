// The Valvira registry: `korttid registry` imports next to a running daemon,
// registry.lookup and system.status answer from it, and an import is all or
// nothing, also for a reader asking while it runs.

#include <atomic>
#include <fstream>
#include <thread>

#include "common/sanitizers.hpp"
#include "tests/support/policy_fixture.hpp"

namespace kortti::test {
namespace {

PolicyDaemonOptions without_import() {
  PolicyDaemonOptions o;
  o.import_registry = false;
  return o;
}

std::string professional_line(const std::string& number, const std::string& marker) {
  return R"({"registration_number":")" + number + R"(","name":{"given":"Testi","family":"Henkilö"},)" +
         R"("rights":[{"code":"001","valid_from":"2001-01-01","valid_to":null}],"specialties":[")" + marker + R"("]})";
}

TEST(Registry, ImportThenLookupStatusAndCodeNames) {
  PolicyDaemon d(without_import());
  auto c = d.daemon().connect();
  EXPECT_FALSE(c->call("system.status")["registry"]["imported"].get<bool>());
  import_registry_fixture(d.daemon());

  const Json j = c->call("registry.lookup", {{"registration_number", "10000003"}});
  const Json& p = j["professional"];
  EXPECT_EQ(str(p["name"]["family"]), "Hoitaja");
  EXPECT_EQ(str(p["prescriber_id"]), "900003");
  EXPECT_EQ(str(p["identifiers"]["satu"]), "99900003C");
  EXPECT_FALSE(p["identifiers"].contains("hetu")) << "the personal identity code is not handed out";
  ASSERT_EQ(p["rights"].size(), 2U);
  EXPECT_EQ(str(p["rights"][1]["code"]), "121");
  // Names come from the imported code set.
  EXPECT_EQ(str(p["rights"][1]["name"]).rfind("nurse with the limited prescription right", 0), 0U) << p.dump(2);
  EXPECT_EQ(str(j["registry"]["source"]), "professionals.jsonl");
  EXPECT_EQ(j["registry"]["records"].get<int>(), 23);

  const Json student = c->call("registry.lookup", {{"registration_number", "10000005"}});
  EXPECT_EQ(str(student["professional"]["restrictions"][0]["target_name"]), "status student");

  const Json status = c->call("system.status");
  EXPECT_TRUE(status["registry"]["imported"].get<bool>());
  EXPECT_EQ(status["registry"]["records"].get<int>(), 23);
  EXPECT_FALSE(status["registry"]["stale"].get<bool>());
  EXPECT_EQ(str(status["registry"]["sha256"]).size(), 64U);

  const auto e = rpc_error([&] { c->call("registry.lookup", {{"registration_number", "29999999"}}); });
  EXPECT_EQ(e.code(), 1003);
  EXPECT_EQ(e.reason(), "not_found");
  EXPECT_NE(std::string(e.what()).find("29999999"), std::string::npos);

  const auto missing = rpc_error([&] { c->call("registry.lookup", Json::object()); });
  EXPECT_EQ(missing.code(), -32602);

  const auto r = registry_command(d.daemon(), {"status"});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("23 professionals from professionals.jsonl"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("code set rights: 6 codes"), std::string::npos) << r.out;
}

TEST(Registry, NothingImportedDeniesPrescriptionsAndSaysWhy) {
  PolicyDaemon d(without_import());
  const Json j = d.check_number("10000001", "sign.prescription", {{"atc_codes", Json::array({"J01CA04"})}});
  EXPECT_FALSE(j["allowed"].get<bool>());
  EXPECT_EQ(codes(j["reasons"]), std::vector<std::string>{"registry_empty"});
  EXPECT_FALSE(j["registry"]["imported"].get<bool>());
}

// A registry file that is there but cannot be read (here: not a database)
// is not "not imported": prescriptions are denied saying what is wrong, and
// a lookup is 1060, not "no such professional".
TEST(Registry, AnUnreadableRegistrySaysSoNotThatNothingWasImported) {
  PolicyDaemon d(without_import());
  write_file(d.daemon().registry(), std::string(4096, 'x'));
  const Json j = d.check_number("10000001", "sign.prescription", {{"atc_codes", Json::array({"J01CA04"})}});
  EXPECT_FALSE(j["allowed"].get<bool>());
  ASSERT_EQ(codes(j["reasons"]), std::vector<std::string>{"registry_unreadable"}) << j.dump();
  EXPECT_NE(str(j["reasons"][0]["message"]).find("could not be read"), std::string::npos) << j.dump();
  const auto e = rpc_error([&] { d.client().call("registry.lookup", {{"registration_number", "10000001"}}); });
  EXPECT_EQ(e.code(), 1060) << e.what();
  EXPECT_NE(std::string(e.what()).find("could not be read"), std::string::npos) << e.what();
  EXPECT_TRUE(d.client().call("system.status")["registry"].is_null()) << "unknown, not \"imported\": false";
  // The import refuses to touch a file that is not a registry; the admin
  // removes it, imports, and all is well again.
  const auto r = registry_command(d.daemon(), {"status"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("not a database"), std::string::npos) << r.err;
  fs::remove(d.daemon().registry());
  import_registry_fixture(d.daemon());
  EXPECT_TRUE(d.check_number("10000001", "sign.prescription", {{"atc_codes", Json::array({"J01CA04"})}})["allowed"]
                  .get<bool>());
}

TEST(Registry, ImportWarnsAboutCodesTheCodeSetsDoNotList) {
  PolicyDaemon d(PolicyDaemonOptions{});
  TempDir dir;
  write_file(dir / "x.jsonl",
             R"({"registration_number":"1","rights":[{"code":"999"}],"restrictions":[{"target":"11"}]})"
             "\n");
  const auto r = registry_command(d.daemon(), {"import", (dir / "x.jsonl").string()});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("warning: rights codes not in the imported code set: 999"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("warning: restriction targets not in the imported code set: 11"), std::string::npos) << r.out;
}

struct BadFile {
  const char* name;
  std::string content;
  std::string message;  // part of what korttid registry says
};

void PrintTo(const BadFile& file, std::ostream* os) { *os << file.name; }

class BadImport : public ::testing::TestWithParam<BadFile> {};

// Every bad file is refused whole, names its line, and leaves the set that
// was there before, which the daemon keeps answering from.
TEST_P(BadImport, IsRejectedWithItsLineAndTheOldSetStays) {
  PolicyDaemon d(PolicyDaemonOptions{});
  auto c = d.daemon().connect();
  const Json before = c->call("system.status")["registry"];

  TempDir dir;
  write_file(dir / "extract.jsonl", GetParam().content);
  const auto r = registry_command(d.daemon(), {"import", (dir / "extract.jsonl").string()});
  EXPECT_EQ(r.status, 65) << r.err;
  EXPECT_NE(r.err.find(GetParam().message), std::string::npos) << r.err;
  EXPECT_NE(r.err.find((dir / "extract.jsonl").string() + ": "), std::string::npos) << "names the file: " << r.err;
  EXPECT_NE(r.err.find("nothing was changed"), std::string::npos) << r.err;

  const Json after = c->call("system.status")["registry"];
  EXPECT_EQ(str(after["sha256"]), str(before["sha256"]));
  EXPECT_EQ(after["records"].get<int>(), 23);
  EXPECT_EQ(str(c->call("registry.lookup", {{"registration_number", "10000001"}})["professional"]["name"]["given"]),
            "Aino");
  // A professional only the rejected file had is not there.
  EXPECT_EQ(rpc_error([&] { c->call("registry.lookup", {{"registration_number", "55500001"}}); }).code(), 1003);
}

INSTANTIATE_TEST_SUITE_P(
    Files, BadImport,
    ::testing::Values(
        BadFile{"NotJson", professional_line("55500001", "x") + "\n{\"registration_number\": \n",
                "line 2: not valid JSON"},
        BadFile{"MissingRegistrationNumber", professional_line("55500001", "x") + "\n\n" + R"({"name":{"given":"A"}})",
                "line 3: registration_number: is required"},
        BadFile{"EmptyRegistrationNumber", professional_line("55500001", "x") + "\n" + R"({"registration_number":""})",
                "line 2: registration_number: must not be empty"},
        BadFile{"RightWithEmptyCode",
                professional_line("55500001", "x") + "\n" + R"({"registration_number":"2","rights":[{"code":""}]})",
                "line 2: rights[0].code: must not be empty"},
        BadFile{"BlankRegistrationNumber",
                professional_line("55500001", "x") + "\n" + R"({"registration_number":"  "})",
                "line 2: registration_number: must not begin or end with white space"},
        BadFile{"RightWithoutCode",
                professional_line("55500001", "x") + "\n" +
                    R"({"registration_number":"2","rights":[{"valid_from":"2020-01-01"}]})",
                "line 2: rights[0].code: is required"},
        BadFile{"BadDate",
                professional_line("55500001", "x") + "\n" +
                    R"({"registration_number":"2","rights":[{"code":"001","valid_from":"1.1.2020"}]})",
                "line 2: rights[0].valid_from: must be a date (YYYY-MM-DD), not '1.1.2020'"},
        BadFile{"DayTheCalendarDoesNotHave",
                professional_line("55500001", "x") + "\n" +
                    R"({"registration_number":"2","rights":[{"code":"001","valid_from":"2026-02-30"}]})",
                "line 2: rights[0].valid_from: must be a date (YYYY-MM-DD), not '2026-02-30'"},
        BadFile{"TwentyNinthOfFebruaryInACommonYear",
                professional_line("55500001", "x") + "\n" +
                    R"({"registration_number":"2","rights":[{"code":"001","valid_to":"2026-02-29"}]})",
                "line 2: rights[0].valid_to: must be a date (YYYY-MM-DD), not '2026-02-29'"},
        BadFile{"MonthThirteen",
                professional_line("55500001", "x") + "\n" +
                    R"({"registration_number":"2","restrictions":[{"target":"10","valid_to":"2026-13-01"}]})",
                "line 2: restrictions[0].valid_to: must be a date (YYYY-MM-DD), not '2026-13-01'"},
        BadFile{"HourTwentyFive",
                professional_line("55500001", "x") + "\n" + professional_line("55500002", "x") + "\n" +
                    R"({"registration_number":"3","rights":[{"code":"001","valid_from":"2026-02-28T25:00:00+02:00"}]})",
                "line 3: rights[0].valid_from: must be a date (YYYY-MM-DD) or an RFC 3339 time, not "
                "'2026-02-28T25:00:00+02:00'"},
        BadFile{"MinuteSixty",
                professional_line("55500001", "x") + "\n" +
                    R"({"registration_number":"2","rights":[{"code":"001","valid_from":"2026-02-28T10:60:00Z"}]})",
                "line 2: rights[0].valid_from: must be a date (YYYY-MM-DD) or an RFC 3339 time"},
        BadFile{"RestrictionTargetNotACode",
                professional_line("55500001", "x") + "\n" +
                    R"({"registration_number":"2","restrictions":[{"target":"prescribing"}]})",
                "line 2: restrictions[0].target: must be a two-digit code"},
        BadFile{
            "UnknownObjectSystem",
            professional_line("55500001", "x") + "\n" +
                R"({"registration_number":"2","restrictions":[{"target":"10","object":{"system":"VNR","code":"1"}}]})",
            "line 2: restrictions[0].object.system"},
        BadFile{"RepeatedRegistrationNumber",
                professional_line("55500001", "x") + "\n" + professional_line("55500001", "y") + "\n",
                "line 2: registration_number 55500001 already on line 1"},
        BadFile{"RepeatedSatu",
                R"({"registration_number":"1","identifiers":{"satu":"99900001A"}})"
                "\n"
                R"({"registration_number":"2","identifiers":{"satu":"99900001A"}})"
                "\n",
                "line 2: identifiers.satu 99900001A already on line 1"},
        BadFile{"NotAnObject", professional_line("55500001", "x") + "\n[1,2]\n", "line 2: line: must be a JSON object"},
        BadFile{"Empty", "\n\n", "the extract has no professionals"}),
    [](const ::testing::TestParamInfo<BadFile>& file) { return std::string(file.param.name); });

TEST(Registry, BadCodeSetLineIsRejectedWithItsNumber) {
  PolicyDaemon d(PolicyDaemonOptions{});
  TempDir dir;
  write_file(dir / "rights.csv", "code,name,valid_from,valid_to\n001,x,2020-01-01,\n002,y,2020-13-01,\n");
  const auto r = registry_command(d.daemon(), {"import-codes", "rights", (dir / "rights.csv").string()});
  EXPECT_EQ(r.status, 65);
  EXPECT_NE(r.err.find("line 3: valid_from: must be a date"), std::string::npos) << r.err;
  const auto status = registry_command(d.daemon(), {"status"});
  EXPECT_NE(status.out.find("code set rights: 6 codes"), std::string::npos) << status.out;
}

// Two extracts, A and B, each marking its records with its own name; B also
// has a professional A lacks. While they are imported in turn, every answer
// must come from one set: the record's mark equals the provenance's source,
// and B's extra professional exists exactly when the source is B.
TEST(Registry, AnImportRunningWhileTheDaemonAnswersNeverShowsHalfASet) {
  PolicyDaemon d(PolicyDaemonOptions{});
  TempDir dir;
  // Enough that an import is a long transaction; a quarter of it under
  // AddressSanitizer, where six imports of 20,000 took a minute of CI.
  constexpr int kRecords = KORTTI_ASAN_BUILD ? 5000 : 20000;
  for (const std::string set : {"A", "B"}) {
    std::ofstream out(dir / (set + ".jsonl"));
    for (int i = 0; i < kRecords; ++i) out << professional_line(std::to_string(30000000 + i), set) << "\n";
    if (set == "B") out << professional_line("40000001", "B") << "\n";
  }

  std::atomic<bool> done{false};
  std::atomic<int> imports{0};
  std::string import_error;
  std::thread importer([&] {
    for (int round = 0; round < 6; ++round) {
      const std::string set = round % 2 == 0 ? "A" : "B";
      auto r = registry_command(d.daemon(), {"import", (dir / (set + ".jsonl")).string(), "--source", set});
      if (r.status != 0) import_error = r.err;
      ++imports;
    }
    done = true;
  });

  auto c = d.daemon().connect();
  std::map<std::string, int> seen;
  int checks = 0;
  std::string failure;
  while (!done && failure.empty()) try {
      // A record both sets have (one at the end of the file: written last).
      const Json j = d.check_number(std::to_string(30000000 + kRecords - 1), "sign.document");
      const std::string source = str(j["registry"]["source"]);
      if (source == "A" || source == "B") {
        EXPECT_EQ(str(j["professional"]["specialties"][0]), source);
        EXPECT_EQ(j["registry"]["records"].get<int>(), source == "A" ? kRecords : kRecords + 1);
      }
      ++seen[source];
      // B's extra professional, through policy.check (which answers either way).
      const Json k = d.check_number("40000001", "sign.prescription", {{"atc_codes", Json::array({"J01CA04"})}});
      const std::string source_k = str(k["registry"]["source"]);
      if (source_k == "A") {
        EXPECT_EQ(codes(k["reasons"]), std::vector<std::string>{"unknown_professional"});
      } else if (source_k == "B") {
        EXPECT_TRUE(k["allowed"].get<bool>()) << k.dump(2);
      }
      ++checks;
    } catch (const std::exception& e) {
      failure = e.what();
    }
  importer.join();
  ASSERT_TRUE(failure.empty()) << failure;
  EXPECT_TRUE(import_error.empty()) << import_error;
  EXPECT_EQ(imports.load(), 6);
  EXPECT_GT(checks, 10);
  // Both sets were seen while imports ran.
  EXPECT_GT(seen["A"], 0);
  EXPECT_GT(seen["B"], 0);
  EXPECT_EQ(str(c->call("system.status")["registry"]["source"]), "B");
}

TEST(Registry, StaleRegistryWarnsByDefaultAndDeniesWhenConfigured) {
  for (const bool deny : {false, true}) {
    SCOPED_TRACE(deny ? "when_stale = deny" : "when_stale = warn");
    PolicyDaemonOptions o;
    o.registry = std::string("max_age_h = 24\nwhen_stale = \"") + (deny ? "deny" : "warn") + "\"\n";
    PolicyDaemon d(std::move(o));
    // Age the import, with the sqlite3 shell: as if made eight days ago.
    auto r = run({"sqlite3", d.daemon().registry().string(),
                  "UPDATE provenance SET imported_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-8 days')"});
    ASSERT_EQ(r.status, 0) << r.err;

    const Json j = d.check_number("10000001", "sign.prescription", {{"atc_codes", Json::array({"J01CA04"})}});
    EXPECT_EQ(j["allowed"].get<bool>(), !deny) << j.dump(2);
    EXPECT_EQ(codes(deny ? j["reasons"] : j["warnings"]), std::vector<std::string>{"registry_stale"}) << j.dump(2);
    EXPECT_TRUE(j["registry"]["stale"].get<bool>());
    EXPECT_TRUE(d.client().call("system.status")["registry"]["stale"].get<bool>());
    // A stale registry never blocks what it does not decide.
    const Json doc = d.check_number("10000001", "sign.document");
    EXPECT_TRUE(doc["allowed"].get<bool>()) << doc.dump(2);
    const auto status = registry_command(d.daemon(), {"status"});
    EXPECT_NE(status.out.find("STALE"), std::string::npos) << status.out;
  }
}

TEST(Registry, AnImportRunByRootBecomesTheOwnerOfTheRegistryFolder) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (CI runs as root)";
  TempDir dir;
  const fs::path state = dir / "state";
  fs::create_directories(state);
  ASSERT_EQ(::chown(state.c_str(), 65534, 65534), 0);  // nobody
  ASSERT_EQ(::chmod(state.c_str(), 0700), 0);
  ::chmod(dir.path().c_str(), 0755);
  write_file(dir / "korttid.toml", "[registry]\ndatabase = \"" + (state / "registry.sqlite").string() + "\"\n");
  auto r = run({korttid_binary().string(), "--config", (dir / "korttid.toml").string(), "registry", "import",
                (registry_fixture_dir() / "professionals.jsonl").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("running as nobody"), std::string::npos) << r.err;
  struct stat st {};
  ASSERT_EQ(::stat((state / "registry.sqlite").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534U);
}

}  // namespace
}  // namespace kortti::test
