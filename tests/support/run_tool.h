// Runs one of the project's executables (build/bin) to completion, for tests of command lines.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace sg::testing {

struct ToolResult {
  int exit_code = -1;  // -1: did not exit normally (or did not finish in time)
  std::string out, err;
};

// Runs `argv` (argv[0] a path), its stdout and stderr captured to stdout.txt and stderr.txt in
// `dir`, and waits up to `timeout`. A program that cannot be started or does not finish (it is
// stopped then) fails the current test.
ToolResult RunToCompletion(const std::vector<std::string>& argv, const std::filesystem::path& dir,
                           std::chrono::seconds timeout = std::chrono::seconds(30));

// RunToCompletion of BinDir()/`program` with `args`.
ToolResult RunTool(const std::string& program, const std::vector<std::string>& args,
                   const std::filesystem::path& dir,
                   std::chrono::seconds timeout = std::chrono::seconds(30));

}  // namespace sg::testing
