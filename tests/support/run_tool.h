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

struct RunOptions {
  // How long the program may run; it is stopped after, and the test fails.
  std::chrono::seconds timeout = std::chrono::seconds(30);
  // stderr into the same file as stdout (stdout.txt): `out` holds both in the order written and
  // `err` is empty. For messages shown whole when an assertion fails.
  bool merge_output = false;
  // A file given as standard input; empty: the test's own.
  std::filesystem::path stdin_path;
};

// Runs `argv` (argv[0] a path), its stdout and stderr captured to stdout.txt and stderr.txt in
// `dir`, and waits up to `options.timeout`. A program that cannot be started or does not finish
// (it is stopped then) fails the current test.
ToolResult RunToCompletion(const std::vector<std::string>& argv, const std::filesystem::path& dir,
                           const RunOptions& options);
ToolResult RunToCompletion(const std::vector<std::string>& argv, const std::filesystem::path& dir,
                           std::chrono::seconds timeout = std::chrono::seconds(30));

// RunToCompletion of BinDir()/`program` with `args`.
ToolResult RunTool(const std::string& program, const std::vector<std::string>& args,
                   const std::filesystem::path& dir,
                   std::chrono::seconds timeout = std::chrono::seconds(30));

// `promtool check metrics` on a /metrics text (written to `dir`): the problems it reports, one a
// line, "" when the text is clean. promtool is Debian's, unpacked by scripts/setup under
// /opt/shadowgate/prometheus (else the one in PATH); a parse error or a missing promtool fails
// the current test.
std::string PromtoolProblems(const std::string& metrics_text, const std::filesystem::path& dir);

}  // namespace sg::testing
