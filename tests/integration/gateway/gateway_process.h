// The real shadowgate binary as a child process for the gateway's integration tests: a config
// written to a temp dir, the process started and waited for, /metrics read, the pair log read
// back after SIGTERM, and `shadowgate check` run on a config.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/pair_record.h"
#include "tests/support/test_support.h"

namespace sg::testing {

std::string Addr(int port);

// A config with one route "r" to `primary_port`, optionally mirrored to `shadow_port` (mirror
// "cpu", updated with `mirror`).
nlohmann::json MakeConfig(int primary_port, int shadow_port = 0,
                          nlohmann::json mirror = nlohmann::json::object());

// True once `condition` holds (polled every 10 ms), or its value at `timeout`.
bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

class GatewayProcess {
 public:
  // Sets free listen/admin ports and a pair log in `dir`, writes the config there and starts
  // shadowgate on it; EXPECTs it to become ready.
  GatewayProcess(nlohmann::json config, const TempDir& dir);
  int port() const { return port_; }
  int admin_port() const { return admin_port_; }
  bool ready() const { return ready_; }
  ChildProcess& process() { return *process_; }
  // The pair log it writes.
  const std::string& pairs_path() const { return pairs_; }

  // The value of one sample line of /metrics ("name{labels}"), 0 when absent, -1 when /metrics
  // cannot be read.
  double Metric(const std::string& sample) const;
  // Mirror "cpu" of route "r": outcome and not-mirrored counters.
  double Outcome(const std::string& outcome) const;
  double NotMirrored(const std::string& reason) const;
  // Stops the gateway (SIGTERM), EXPECTs a clean exit and returns the pair log's entries.
  std::vector<PairLogEntry> StopAndReadPairs();

 private:
  int port_ = 0;
  int admin_port_ = 0;
  bool ready_ = false;
  std::string pairs_;
  std::optional<ChildProcess> process_;
};

// An nginx config in `dir` (no daemon, temp files and pid in `dir`) with one server per entry:
// {port, what goes inside its server block after `listen`}. Run it with
//   ChildProcess("/usr/sbin/nginx", {"-p", dir, "-c", <returned path>, "-e", "stderr"}).
std::filesystem::path WriteNginxConfig(const TempDir& dir,
                                       const std::vector<std::pair<int, std::string>>& servers);

struct CheckResult {
  int exit_code = -1;  // -1: did not exit normally
  std::string output;  // stdout and stderr
};
// Runs `shadowgate check --config <config>` (in `working_dir`, when given: the folders a config
// names relative to the working directory are checked there) and waits for it.
CheckResult RunCheck(const std::filesystem::path& config,
                     const std::filesystem::path& working_dir = {});
// Runs shadowgate with `args` and waits (10 s) for it to exit: for runs that must not start.
CheckResult RunShadowgate(const std::vector<std::string>& args,
                          const std::filesystem::path& working_dir = {});

}  // namespace sg::testing
