// The gateway's `io_threads: 0` follows the CPU budget (issue 19): started inside a real cgroup
// with a CPU quota (scoped_cgroup.h), it runs one I/O thread per CPU of the quota, rounded up,
// not one per CPU of the machine; the threads are counted in /proc/<pid>/task by their name.
//
// Needs root and a writable cgroup hierarchy (skipped, naming what is missing, otherwise).
#include <sched.h>

#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/deploy/scoped_cgroup.h"
#include "tests/integration/gateway/gateway_process.h"
#include "tests/support/test_support.h"

namespace sg {
namespace {

using namespace std::chrono_literals;
using sg::testing::ScopedCgroup;
namespace fs = std::filesystem;

// Threads of `pid` named `name` (the gateway names its I/O threads "sg-io").
int ThreadsNamed(pid_t pid, const std::string& name) {
  int count = 0;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    if (sg::testing::ReadFile(task.path() / "comm") == name + "\n") ++count;
  }
  return count;
}

int AffinityCount() {
  cpu_set_t set;
  CPU_ZERO(&set);
  return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
}

TEST(GatewayThreadsTest, AutoIoThreadsFollowTheCgroupQuota) {
  const int cpus = AffinityCount();
  ASSERT_GT(cpus, 0);
  struct Case {
    double quota;  // CPUs; 0: none
    int io_threads;
  };
  // Without a quota, one per CPU this test may use; a quota caps it, rounded up. On a machine of
  // 2 CPUs the 1-CPU and half-CPU quotas are the cases that tell the quota from the CPUs.
  std::vector<Case> cases = {{0, cpus}, {1.0, 1}, {0.5, 1}, {1.5, std::min(cpus, 2)}};
  for (const Case& c : cases) {
    SCOPED_TRACE("quota " + std::to_string(c.quota));
    ScopedCgroup cgroup(c.quota, "");
    if (!cgroup.error().empty()) GTEST_SKIP() << "cgroup: " << cgroup.error();
    sg::testing::TempDir dir;
    const int port = sg::testing::FreePort(), admin = sg::testing::FreePort();
    nlohmann::json config = sg::testing::MakeConfig(sg::testing::FreePort());
    config["io_threads"] = 0;
    config["listen"] = sg::testing::Addr(port);
    config["admin_listen"] = sg::testing::Addr(admin);
    config["capture"]["pair_log"] = {{"path", (dir.path() / "pairs.jsonl").string()}};
    const fs::path path = dir.Write("gateway.json", config.dump(1));
    const auto argv =
        cgroup.Wrap({(sg::testing::BinDir() / "shadowgate").string(), "--config", path.string()});
    sg::testing::ChildProcess gateway(argv[0],
                                      std::vector<std::string>(argv.begin() + 1, argv.end()));
    std::string why;
    ASSERT_TRUE(gateway.WaitReady(admin, "/healthz", 30s, &why)) << why;
    // The admin listener may answer before the last I/O thread is made; every one is made and
    // named before the gateway logs that it listens (a count taken at /healthz alone found 1 of
    // 2 threads in 2 of 8 runs under scripts/stress-check).
    ASSERT_TRUE(sg::testing::WaitUntil(
        [&] { return gateway.Log().find("shadowgate listening on") != std::string::npos; }, 30s))
        << gateway.Log();
    const std::string cgroups =
        sg::testing::ReadFile("/proc/" + std::to_string(gateway.pid()) + "/cgroup");
    EXPECT_NE(cgroups.find("sg-deploy-test-"), std::string::npos) << cgroups;
    EXPECT_EQ(ThreadsNamed(gateway.pid(), "sg-io"), c.io_threads);
  }
}

}  // namespace
}  // namespace sg
