#include "common/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/support/test_support.h"

namespace sg {
namespace {

struct Mirror {
  std::string upstream;
  double percent = 100;
};
struct Route {
  std::string name;
  std::vector<Mirror> mirrors;
  std::chrono::microseconds timeout{std::chrono::seconds(30)};
};
struct Sample {
  std::string listen = "127.0.0.1:8000";
  int threads = 0;
  bool verbose = false;
  std::vector<Route> routes;
};

Sample ParseSample(const ConfigNode& root) {
  ObjectReader r(root);
  Sample s;
  s.listen = r.Get<std::string>("listen", s.listen);
  s.threads = r.GetInRange<int>("threads", 0, 0, 256);
  s.verbose = r.Get<bool>("verbose", false);
  if (auto routes = r.Optional("routes")) {
    for (const auto& route_node : routes->Elements()) {
      ObjectReader rr(route_node);
      Route route;
      route.name = rr.Require<std::string>("name");
      route.timeout = rr.Get<std::chrono::microseconds>("timeout", route.timeout);
      if (auto mirrors = rr.Optional("mirrors")) {
        for (const auto& m : mirrors->Elements()) {
          ObjectReader mr(m);
          Mirror mirror;
          mirror.upstream = mr.Require<std::string>("upstream");
          mirror.percent = mr.GetInRange<double>("percent", 100, 0, 100);
          mr.Finish();
          route.mirrors.push_back(mirror);
        }
      }
      rr.Finish();
      s.routes.push_back(route);
    }
  }
  r.Finish();
  return s;
}

Sample Parse(const std::string& text) {
  return ParseConfig<Sample>(text, "configs/gateway.json", ParseSample);
}

std::vector<std::string> Problems(const std::string& text) {
  try {
    Parse(text);
  } catch (const ConfigError& e) {
    return e.problems();
  }
  return {};
}

TEST(ConfigTest, ParsesValuesAndDefaults) {
  Sample s = Parse(R"({"threads": 4, "routes": [{"name": "a", "timeout": "250ms",
                     "mirrors": [{"upstream": "u", "percent": 12.5}]}]})");
  EXPECT_EQ(s.listen, "127.0.0.1:8000");
  EXPECT_EQ(s.threads, 4);
  ASSERT_EQ(s.routes.size(), 1u);
  EXPECT_EQ(s.routes[0].timeout, std::chrono::milliseconds(250));
  ASSERT_EQ(s.routes[0].mirrors.size(), 1u);
  EXPECT_DOUBLE_EQ(s.routes[0].mirrors[0].percent, 12.5);
}

TEST(ConfigTest, OutOfRangeNamesFileJsonPathAndReason) {
  auto problems = Problems(R"({"routes": [{"name": "a", "mirrors": [{"upstream": "u"},
                             {"upstream": "v", "percent": 120}]}]})");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0],
            "configs/gateway.json: $.routes[0].mirrors[1].percent: must be in [0, 100], got 120");
}

TEST(ConfigTest, UnknownKeyIsAnError) {
  auto problems = Problems(R"({"routes": [{"name": "a", "mirorrs": []}]})");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "configs/gateway.json: $.routes[0].mirorrs: unknown key");
}

TEST(ConfigTest, ReportsEveryProblemAtOnce) {
  auto problems = Problems(R"({"threads": "four", "verbose": 1, "bogus": true,
                              "routes": [{"timeout": "5 parsecs"}]})");
  ASSERT_EQ(problems.size(), 5u);
  EXPECT_EQ(problems[0], "configs/gateway.json: $.threads: must be an integer, got a string");
  EXPECT_EQ(problems[1], "configs/gateway.json: $.verbose: must be a boolean, got an integer");
  EXPECT_EQ(problems[2], "configs/gateway.json: $.routes[0]: missing required key \"name\"");
  EXPECT_EQ(problems[3],
            "configs/gateway.json: $.routes[0].timeout: invalid duration \"5 parsecs\" (write a "
            "number with a unit: us, ms, s, m, h, d)");
  EXPECT_EQ(problems[4], "configs/gateway.json: $.bogus: unknown key");
}

TEST(ConfigTest, WrongStructureStopsWithItsPath) {
  auto problems = Problems(R"({"routes": {"name": "a"}})");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "configs/gateway.json: $.routes: must be an array, got an object");
  problems = Problems(R"([1, 2])");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "configs/gateway.json: $: must be an object, got an array");
}

TEST(ConfigTest, SyntaxErrorHasLineAndColumn) {
  auto problems = Problems("{\n  \"threads\": 4,\n  \"listen\" \"x\"\n}");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0],
            "configs/gateway.json: line 3, column 14: invalid JSON: syntax error while parsing "
            "object separator - unexpected string literal; expected ':'");
}

TEST(ConfigTest, NumberBeyondADoubleIsAConfigError) {
  // nlohmann throws out_of_range for it, not parse_error: it aborted shadowgate check.
  auto problems = Problems("{\"threads\": 1e999}");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "configs/gateway.json: invalid JSON: number overflow parsing '1e999'");
}

TEST(ConfigTest, NonIntegerNumberIsRejectedForIntegerField) {
  auto problems = Problems(R"({"threads": 2.5})");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "configs/gateway.json: $.threads: must be an integer, got 2.5");
}

TEST(ConfigTest, DuplicateKeysAreErrorsWithTheirPath) {
  // nlohmann would keep the last value; each repeat is reported, with the other problems.
  auto problems = Problems(R"({"threads": 1, "threads": 2, "routes": [{"name": "a"},
                              {"name": "b", "mirrors": [{"upstream": "u", "percent": 5,
                              "percent": 50}], "name": "c"}], "a b": 1, "a b": 2})");
  ASSERT_EQ(problems.size(), 5u);
  EXPECT_EQ(problems[0], "configs/gateway.json: $.threads: duplicate key");
  EXPECT_EQ(problems[1], "configs/gateway.json: $.routes[1].mirrors[0].percent: duplicate key");
  EXPECT_EQ(problems[2], "configs/gateway.json: $.routes[1].name: duplicate key");
  EXPECT_EQ(problems[3], "configs/gateway.json: $[\"a b\"]: duplicate key");
  EXPECT_EQ(problems[4], "configs/gateway.json: $[\"a b\"]: unknown key");
  // The same key in different objects is no repeat.
  EXPECT_TRUE(Problems(R"({"routes": [{"name": "a", "mirrors": [{"upstream": "u"},
                         {"upstream": "v"}]}, {"name": "b"}]})")
                  .empty());
}

TEST(ConfigTest, OddKeysArePrintedQuoted) {
  auto problems = Problems(R"({"a b": 1})");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "configs/gateway.json: $[\"a b\"]: unknown key");
}

TEST(ConfigTest, DurationsAcceptEveryUnit) {
  auto duration = [](const std::string& text) {
    return ParseConfig<std::chrono::microseconds>(
        "\"" + text + "\"", "d.json", [](const ConfigNode& n) { return n.AsDuration(); });
  };
  EXPECT_EQ(duration("100us").count(), 100);
  EXPECT_EQ(duration("1.5ms").count(), 1500);
  EXPECT_EQ(duration("2s").count(), 2000000);
  EXPECT_EQ(duration("1m").count(), 60000000);
  EXPECT_EQ(duration("1.5h").count(), int64_t{5400} * 1000000);
  EXPECT_EQ(duration("30d").count(), int64_t{30} * 86400 * 1000000);  // a month of mirroring
  EXPECT_THROW(duration("-1s"), ConfigError);
  EXPECT_THROW(duration("10"), ConfigError);
}

TEST(ConfigTest, LoadConfigFileReportsMissingFile) {
  testing::TempDir dir;
  auto missing = (dir.path() / "nope.json").string();
  try {
    LoadConfigFile<Sample>(missing, ParseSample);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), missing + ": cannot open: No such file or directory");
  }
  auto good = dir.Write("ok.json", R"({"threads": 3})");
  EXPECT_EQ(LoadConfigFile<Sample>(good.string(), ParseSample).threads, 3);
}

TEST(ConfigTest, LoadConfigFileRefusesWhatIsNotASmallRegularFile) {
  // `check /dev/zero` grew without bound, and a FIFO blocked in open until a writer came.
  testing::TempDir dir;
  auto fifo = (dir.path() / "fifo").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const auto& odd : {fifo, std::string("/dev/zero"), dir.path().string()}) {
    try {
      LoadConfigFile<Sample>(odd, ParseSample);
      ADD_FAILURE() << "expected ConfigError for " << odd;
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()), odd + ": is not a regular file");
    }
  }
  std::string contents, error;
  auto big = dir.Write("big.json", std::string(100, ' '));
  EXPECT_FALSE(ReadSmallFile(big.string(), 99, &contents, &error));
  EXPECT_EQ(error, "larger than 99 bytes");
  EXPECT_TRUE(ReadSmallFile(big.string(), 100, &contents, &error)) << error;
  EXPECT_EQ(contents.size(), 100u);
}

}  // namespace
}  // namespace sg
