// The real shadowgate binary as a child process for the gateway's integration tests: a config
// written to a temp dir, the process started and waited for, /metrics read, the pair log read
// back after SIGTERM, and `shadowgate check` run on a config.
#pragma once

#include <chrono>
#include <filesystem>
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

// A JSON file's content; a discarded value (is_discarded()) when it is missing or not JSON.
nlohmann::json ReadJsonFile(const std::filesystem::path& path);

class GatewayProcess;
// GET /admin/comparison of `gateway`: the current comparison, or a null json when it cannot be
// read.
nlohmann::json AdminComparison(const GatewayProcess& gateway);

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

// The comparison tests' upstreams: nginx (from WriteNginxConfig in `dir`) as a primary that
// answers {"v": 1} on every path, and a shadow that answers /same alike, /close within the
// tolerance of kJudgedRules ({"v": 1.0005}) and /diff otherwise ({"v": 2}). `ready` false (with
// a failed EXPECT) when nginx did not start.
struct JudgedUpstreams {
  int primary_port = 0;
  int shadow_port = 0;
  std::optional<ChildProcess> nginx;
  bool ready = false;
};
JudgedUpstreams StartJudgedUpstreams(const TempDir& dir);
// Numbers within 1e-3 of the primary's are within tolerance; anything else differs.
inline constexpr const char* kJudgedRules =
    R"({"rules": [{"name": "api", "kind": "json", "tolerance": [{"path": "$.v", "abs": 0.001}]}]})";
// At least 5 pairs, at most 5% mismatches.
inline constexpr const char* kJudgedGates = R"({"gates": [{"metric": "pairs", "min": 5},
                                             {"metric": "mismatch_rate", "max": 0.05}]})";

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
