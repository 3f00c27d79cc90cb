// The CPU limit is honoured (issue 19): `sg-serve plan` and a served model run inside a real
// cgroup with a CPU quota and a cpuset, made directly under /sys/fs/cgroup (v2, or the v1 `cpu`
// and `cpuset` hierarchies), and through podman (--cpus, --cpuset-cpus) where podman runs; the
// plan must follow the quota and the cpuset, and the workers' threads and pinning are read back
// from /proc.
//
// Needs root and a writable cgroup hierarchy (skipped, naming what is missing, otherwise); the
// podman case also needs podman and runc (scripts/setup installs both) and uses
// deploy/podman/containers.conf (why: that file).
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/deploy/scoped_cgroup.h"
#include "tests/support/run_tool.h"
#include "tests/support/test_support.h"

namespace sg {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using sg::testing::ChildProcess;
using sg::testing::OnlineCpuCount;
using sg::testing::ScopedCgroup;
using sg::testing::TempDir;
namespace fs = std::filesystem;

// `argv` run to its end, stdout and stderr in one text (`out`), as a person reads them.
sg::testing::ToolResult RunToEnd(const std::vector<std::string>& argv) {
  TempDir dir;
  sg::testing::RunOptions options;
  options.timeout = 120s;
  options.merge_output = true;
  return sg::testing::RunToCompletion(argv, dir.path(), options);
}

// The plan's headline: "budget: N CPUs" and one "worker i: cpus LIST (...), T threads" per worker.
struct PlanText {
  int budget = -1;
  std::vector<std::pair<std::string, int>> workers;  // cpus, threads
  std::string quota_line;
};

PlanText ParsePlan(const std::string& text) {
  PlanText plan;
  std::smatch m;
  if (std::regex_search(text, m, std::regex(R"(budget: (\d+) CPUs)"))) {
    plan.budget = std::stoi(m[1]);
  }
  std::regex worker(R"(worker \d+: cpus ([0-9,-]+) .*?(\d+) threads)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), worker);
       it != std::sregex_iterator(); ++it) {
    plan.workers.push_back({(*it)[1], std::stoi((*it)[2])});
  }
  if (std::regex_search(text, m, std::regex(R"(cgroup quota [^\n]*)"))) plan.quota_line = m[0];
  return plan;
}

// `sg-serve plan` exited 0 with a budget of `budget` CPUs and one worker on `cpus` running
// `budget` threads; its plan in `plan`.
void ExpectOneWorkerPlan(const sg::testing::ToolResult& out, int budget, const std::string& cpus,
                         PlanText* plan) {
  ASSERT_EQ(out.exit_code, 0) << out.out;
  *plan = ParsePlan(out.out);
  EXPECT_EQ(plan->budget, budget) << out.out;
  ASSERT_EQ(plan->workers.size(), 1u) << out.out;
  EXPECT_EQ(plan->workers[0].first, cpus) << out.out;
  EXPECT_EQ(plan->workers[0].second, budget) << out.out;
}

std::string SgServe() {
  return (sg::testing::BinDir() / "sg-serve").string();
}

struct PlanCase {
  double quota;
  std::string cpus;  // cpuset; "" = all
  int budget;        // expected
  std::string worker_cpus;
};

// The expected plans on this machine's CPUs: a quota caps the budget at floor(quota), at least
// 1; a cpuset is the set the workers get.
std::vector<PlanCase> Cases() {
  const int n = OnlineCpuCount();
  const std::string last = std::to_string(n - 1);
  std::vector<PlanCase> cases = {
      {0.5, "", 1, "0"},     // half a CPU: one worker, one thread
      {1.0, "", 1, "0"},     // one CPU
      {0, last, 1, last},    // no quota, one CPU in the cpuset: that CPU
      {0.5, last, 1, last},  // both
  };
  if (n >= 2) cases.push_back({2.0, "0-1", 2, "0-1"});  // a quota that does not bind
  return cases;
}

TEST(CpuLimitTest, PlanFollowsARealCgroupQuotaAndCpuset) {
  for (const auto& c : Cases()) {
    SCOPED_TRACE("quota " + std::to_string(c.quota) + " cpuset '" + c.cpus + "'");
    ScopedCgroup cgroup(c.quota, c.cpus);
    if (!cgroup.error().empty()) GTEST_SKIP() << "cgroup: " << cgroup.error();
    const sg::testing::ToolResult out = RunToEnd(cgroup.Wrap({SgServe(), "plan"}));
    PlanText plan;
    ASSERT_NO_FATAL_FAILURE(ExpectOneWorkerPlan(out, c.budget, c.worker_cpus, &plan));
    if (c.quota > 0) {
      // The quota was read from this cgroup's own file.
      EXPECT_NE(plan.quota_line.find("sg-deploy-test-"), std::string::npos) << out.out;
    }
  }
}

std::string ReadProc(pid_t pid, const std::string& file) {
  return sg::testing::ReadFile("/proc/" + std::to_string(pid) + "/" + file);
}

// Every thread's Cpus_allowed_list of a process.
std::set<std::string> ThreadAffinities(pid_t pid) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::smatch m;
    std::string status = sg::testing::ReadFile(task.path() / "status");
    if (std::regex_search(status, m, std::regex(R"(Cpus_allowed_list:\s*(\S+))"))) {
      out.insert(m[1]);
    }
  }
  return out;
}

// A served model in a cgroup of one CPU's quota with a cpuset of the last CPU: the plan makes
// one worker with one thread there, and /proc shows the worker pinned to it, in the cgroup,
// told OMP_NUM_THREADS=1, with every thread on that CPU after it has answered.
TEST(CpuLimitTest, ServedModelWorkersFollowTheCgroup) {
  const std::string last = std::to_string(OnlineCpuCount() - 1);
  ScopedCgroup cgroup(1.0, last);
  if (!cgroup.error().empty()) GTEST_SKIP() << "cgroup: " << cgroup.error();
  TempDir dir;
  const int inference = sg::testing::FreePort(), management = sg::testing::FreePort(),
            metrics = sg::testing::FreePort();
  json config = {{"inference_address", "127.0.0.1:" + std::to_string(inference)},
                 {"management_address", "127.0.0.1:" + std::to_string(management)},
                 {"metrics_address", "127.0.0.1:" + std::to_string(metrics)},
                 {"models",
                  {{"vec",
                    {{"path", sg::testing::ModelFixture("tensor_tiny.pt")},
                     {"handler", "tensor"},
                     {"input_shape", {4}}}}}}};
  auto path = dir.Write("serve.json", config.dump(1));
  auto argv = cgroup.Wrap({SgServe(), "--config", path.string()});
  ChildProcess server(argv[0], std::vector<std::string>(argv.begin() + 1, argv.end()));
  std::string why;
  ASSERT_TRUE(server.WaitReady(inference, "/ping", 60s, &why)) << why;
  sg::testing::HttpRequestSpec spec;
  spec.method = "POST";
  spec.target = "/predictions/vec";
  spec.body = R"({"data": [1, 2, 3, 4]})";
  spec.headers = {{"Content-Type", "application/json"}};
  for (int i = 0; i < 3; ++i) {
    auto r = sg::testing::Http(inference, spec);
    ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
  }
  auto describe = sg::testing::HttpGet(management, "/models/vec");
  ASSERT_TRUE(describe && describe->status == 200);
  json workers = json::parse(describe->body)[0]["workers"];
  ASSERT_EQ(workers.size(), 1u) << describe->body;
  const pid_t worker = workers[0]["pid"].get<pid_t>();
  EXPECT_EQ(workers[0]["pinnedCpus"], last);
  EXPECT_EQ(workers[0]["threadsReported"], 1);
  // From /proc: in the cgroup, pinned, one OpenMP thread.
  EXPECT_NE(ReadProc(worker, "cgroup").find("sg-deploy-test-"), std::string::npos)
      << ReadProc(worker, "cgroup");
  EXPECT_EQ(ThreadAffinities(worker), std::set<std::string>{last});
  EXPECT_EQ(ThreadAffinities(server.pid()), std::set<std::string>{last});
  std::string environ = ReadProc(worker, "environ");
  EXPECT_NE(environ.find(std::string("OMP_NUM_THREADS=1") + '\0'), std::string::npos);
}

// Through the container runtime: podman (runc, deploy/podman/containers.conf) with --cpus and
// --cpuset-cpus, the host's /usr and the built binaries mounted read-only into an empty root.
TEST(CpuLimitTest, PlanFollowsPodmanCpusAndCpuset) {
  if (geteuid() != 0) GTEST_SKIP() << "not root: podman would run rootless, without CPU limits";
  for (const char* tool : {"/usr/bin/podman", "/usr/sbin/runc"}) {
    if (!fs::exists(tool)) GTEST_SKIP() << tool << " missing (scripts/setup installs it)";
  }
  TempDir root;
  for (const char* d : {"usr", "etc", "proc", "sys", "dev", "tmp", "opt/sg"}) {
    fs::create_directories(root.path() / d);
  }
  for (const char* link : {"bin", "lib", "lib64", "sbin"}) {
    fs::create_symlink(std::string("usr/") + link, root.path() / link);
  }
  const std::string last = std::to_string(OnlineCpuCount() - 1);
  struct Case {
    std::string cpus_flag, cpuset_flag;
    int budget;
    std::string worker_cpus;
  };
  for (const Case& c : std::vector<Case>{{"0.5", "", 1, "0"}, {"1", last, 1, last}}) {
    SCOPED_TRACE("--cpus " + c.cpus_flag + " --cpuset-cpus '" + c.cpuset_flag + "'");
    std::vector<std::string> argv = {
        "/usr/bin/env",
        "CONTAINERS_CONF=" + (sg::testing::SourceDir() / "deploy/podman/containers.conf").string(),
        "/usr/bin/podman",
        "run",
        "--rm",
        "--network",
        "none",
        "--cpus",
        c.cpus_flag};
    if (!c.cpuset_flag.empty()) argv.insert(argv.end(), {"--cpuset-cpus", c.cpuset_flag});
    argv.insert(argv.end(), {"-v", "/usr:/usr:ro", "-v", "/etc/alternatives:/etc/alternatives:ro",
                             "-v", "/etc/ld.so.cache:/etc/ld.so.cache:ro", "-v",
                             sg::testing::BinDir().string() + ":/opt/sg:ro", "--rootfs",
                             root.path().string(), "/opt/sg/sg-serve", "plan"});
    const sg::testing::ToolResult out = RunToEnd(argv);
    PlanText plan;
    ASSERT_NO_FATAL_FAILURE(ExpectOneWorkerPlan(out, c.budget, c.worker_cpus, &plan));
    EXPECT_NE(plan.quota_line.find("cgroup quota " + c.cpus_flag), std::string::npos) << out.out;
  }
}

}  // namespace
}  // namespace sg
