#include "common/logging.h"

#include <unistd.h>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace sg {
namespace {

// Captures what the process writes to stderr while `fn` runs.
template <typename Fn>
std::string CaptureStderr(Fn fn) {
  ::testing::internal::CaptureStderr();
  fn();
  spdlog::default_logger()->flush();
  return ::testing::internal::GetCapturedStderr();
}

TEST(LoggingTest, FlagsSelectLevelAndJson) {
  CLI::App app;
  LogOptions options;
  AddLoggingFlags(app, options);
  const char* argv[] = {"prog", "--log-level", "debug", "--log-json"};
  app.parse(4, argv);
  EXPECT_EQ(options.level, "debug");
  EXPECT_EQ(options.format, LogFormat::kJson);

  CLI::App strict;
  LogOptions other;
  AddLoggingFlags(strict, other);
  const char* bad[] = {"prog", "--log-level", "loud"};
  EXPECT_THROW(strict.parse(3, bad), CLI::ValidationError);
}

TEST(LoggingTest, JsonLinesAreValidJsonWithEscapedMessage) {
  ASSERT_TRUE(SetUpLogging({"info", LogFormat::kJson}, "sg-test"));
  std::string out = CaptureStderr([] {
    spdlog::info("quote \" backslash \\ newline \n end {}", 42);
    spdlog::debug("hidden");
  });
  ASSERT_FALSE(out.empty());
  ASSERT_EQ(out.back(), '\n');
  ASSERT_EQ(out.find('\n'), out.size() - 1) << "exactly one line: " << out;
  auto line = nlohmann::json::parse(out);
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["logger"], "sg-test");
  EXPECT_EQ(line["msg"], "quote \" backslash \\ newline \n end 42");
  EXPECT_TRUE(line["ts"].is_number());
}

TEST(LoggingTest, TextFormatHonoursLevel) {
  ASSERT_TRUE(SetUpLogging({"warn", LogFormat::kText}, "sg-text"));
  std::string out = CaptureStderr([] {
    spdlog::info("not shown");
    spdlog::warn("shown {}", 1);
  });
  EXPECT_EQ(out.find("not shown"), std::string::npos);
  EXPECT_NE(out.find("sg-text: shown 1"), std::string::npos) << out;
  EXPECT_FALSE(SetUpLogging({"loud", LogFormat::kText}, "x"));
}

}  // namespace
}  // namespace sg
