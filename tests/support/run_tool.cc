#include "tests/support/run_tool.h"

#include <sys/wait.h>

#include <fstream>

#include <gtest/gtest.h>

#include "common/subprocess.h"
#include "tests/support/test_support.h"

namespace sg::testing {

ToolResult RunToCompletion(const std::vector<std::string>& argv, const std::filesystem::path& dir,
                           const RunOptions& options) {
  SpawnOptions spawn;
  spawn.stdout_path = (dir / "stdout.txt").string();
  spawn.stderr_path = options.merge_output ? spawn.stdout_path : (dir / "stderr.txt").string();
  // Spawn redirects only the output: a shell opens the input file, then becomes the program.
  std::vector<std::string> command = argv;
  if (!options.stdin_path.empty()) {
    command = {"/bin/sh", "-c", "exec \"$@\" < \"$0\"", options.stdin_path.string()};
    command.insert(command.end(), argv.begin(), argv.end());
  }
  ToolResult result;
  std::string error;
  auto process = Subprocess::Spawn(command, spawn, &error);
  if (!process) {
    ADD_FAILURE() << "cannot start " << argv[0] << ": " << error;
    return result;
  }
  auto status = process->WaitFor(options.timeout);
  if (!status) {
    ADD_FAILURE() << argv[0] << " did not finish in " << options.timeout.count() << " s";
    process->Stop();
    return result;
  }
  result.exit_code = WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  result.out = ReadFile(spawn.stdout_path);
  if (!options.merge_output) result.err = ReadFile(spawn.stderr_path);
  return result;
}

ToolResult RunToCompletion(const std::vector<std::string>& argv, const std::filesystem::path& dir,
                           std::chrono::seconds timeout) {
  RunOptions options;
  options.timeout = timeout;
  return RunToCompletion(argv, dir, options);
}

ToolResult RunTool(const std::string& program, const std::vector<std::string>& args,
                   const std::filesystem::path& dir, std::chrono::seconds timeout) {
  std::vector<std::string> argv = {(BinDir() / program).string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunToCompletion(argv, dir, timeout);
}

std::string PromtoolProblems(const std::string& metrics_text, const std::filesystem::path& dir) {
  const std::filesystem::path unpacked = "/opt/shadowgate/prometheus/usr/bin/promtool";
  const std::string promtool = std::filesystem::exists(unpacked) ? unpacked.string() : "promtool";
  const auto input = dir / "metrics.txt";
  std::ofstream(input, std::ios::binary) << metrics_text;
  RunOptions options;
  options.merge_output = true;
  options.stdin_path = input;
  auto result = RunToCompletion({promtool, "check", "metrics"}, dir, options);
  // 0: clean; 3: lint problems, listed; anything else: the text did not parse, or no promtool.
  if (result.exit_code == 0) return "";
  EXPECT_EQ(result.exit_code, 3) << promtool << " check metrics: " << result.out;
  return result.out.empty() ? "(promtool exited " + std::to_string(result.exit_code) + ")"
                            : result.out;
}

}  // namespace sg::testing
