// Every installed executable follows the same command-line conventions: `--version` prints
// "<program> <project version>" and exits 0, and any usage error (an unknown flag, a missing
// value) exits 2, as bad configs and bad input files do. CLI11's own codes (109 for an unknown
// flag, 105 for a missing value) used to leak out of sg-serve and shadowgate.
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/run_tool.h"
#include "tests/support/test_support.h"

namespace sg {
namespace {

// Runs `program` with `args` in a fresh temporary folder.
testing::ToolResult RunTool(const std::string& program, const std::vector<std::string>& args) {
  testing::TempDir dir;
  return testing::RunTool(program, args, dir.path());
}

class CliConventionsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    // sg-serve is built only where libtorch is (its tests show as not built otherwise).
    if (!std::filesystem::exists(testing::BinDir() / GetParam())) {
      GTEST_SKIP() << GetParam() << " is not built here";
    }
  }
};

TEST_P(CliConventionsTest, VersionPrintsTheProjectVersion) {
  auto result = RunTool(GetParam(), {"--version"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, GetParam() + " " SG_PROJECT_VERSION "\n");
}

TEST_P(CliConventionsTest, UsageErrorsExit2WithAMessage) {
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--no-such-flag"}, {"--log-level"}}) {
    auto result = RunTool(GetParam(), args);
    EXPECT_EQ(result.exit_code, 2) << args[0] << ": " << result.out << result.err;
    EXPECT_FALSE((result.out + result.err).empty()) << args[0];
  }
}

TEST_P(CliConventionsTest, HelpExits0) {
  auto result = RunTool(GetParam(), {"--help"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("--version"), std::string::npos) << result.out;
}

INSTANTIATE_TEST_SUITE_P(InstalledTools, CliConventionsTest,
                         ::testing::Values("shadowgate", "sg-serve", "sg-compare", "sg-load"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (auto& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace sg
