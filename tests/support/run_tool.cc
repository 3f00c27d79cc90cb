#include "tests/support/run_tool.h"

#include <sys/wait.h>

#include <gtest/gtest.h>

#include "common/subprocess.h"
#include "tests/support/test_support.h"

namespace sg::testing {

ToolResult RunToCompletion(const std::vector<std::string>& argv, const std::filesystem::path& dir,
                           std::chrono::seconds timeout) {
  SpawnOptions options;
  options.stdout_path = (dir / "stdout.txt").string();
  options.stderr_path = (dir / "stderr.txt").string();
  ToolResult result;
  std::string error;
  auto process = Subprocess::Spawn(argv, options, &error);
  if (!process) {
    ADD_FAILURE() << "cannot start " << argv[0] << ": " << error;
    return result;
  }
  auto status = process->WaitFor(timeout);
  if (!status) {
    ADD_FAILURE() << argv[0] << " did not finish in " << timeout.count() << " s";
    process->Stop();
    return result;
  }
  result.exit_code = WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  result.out = ReadFile(options.stdout_path);
  result.err = ReadFile(options.stderr_path);
  return result;
}

ToolResult RunTool(const std::string& program, const std::vector<std::string>& args,
                   const std::filesystem::path& dir, std::chrono::seconds timeout) {
  std::vector<std::string> argv = {(BinDir() / program).string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunToCompletion(argv, dir, timeout);
}

}  // namespace sg::testing
