// ThreadBudget: how many threads a budget holds (the gateway's io_threads 0). Discovery itself is
// tested with recorded trees in tests/unit/model_server/cpu_plan_test.cc.
#include "common/cpu_budget.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/support/test_support.h"

namespace sg {
namespace {

namespace fs = std::filesystem;

CpuBudget Budget(int allowed, std::optional<double> quota) {
  CpuBudget budget;
  for (int i = 0; i < allowed; ++i) budget.allowed.push_back(i);
  budget.quota_cpus = quota;
  return budget;
}

TEST(ThreadBudgetTest, AllowedCpusCappedByTheQuotaRoundedUp) {
  EXPECT_EQ(ThreadBudget(Budget(64, std::nullopt)), 64);  // no quota: the affinity and cpuset
  EXPECT_EQ(ThreadBudget(Budget(64, 2.0)), 2);            // a 2-CPU limit on a 64-CPU node
  EXPECT_EQ(ThreadBudget(Budget(64, 2.5)), 3);            // a part CPU is a thread
  EXPECT_EQ(ThreadBudget(Budget(64, 0.5)), 1);
  EXPECT_EQ(ThreadBudget(Budget(64, 200000.0 / 100000)), 2);  // exact: not 3
  EXPECT_EQ(ThreadBudget(Budget(4, 16.0)), 4);                // a quota above the CPUs
  EXPECT_EQ(ThreadBudget(Budget(0, std::nullopt)), 1);        // never none
}

void WriteFile(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text << "\n";
}

// A 64-CPU node, the process in a cgroup v1 `cpu` group with a 2-CPU quota (Kubernetes on a
// cgroup v1 node): the quota comes from the group's own files and caps the threads.
TEST(ThreadBudgetTest, FromACgroupV1QuotaOnALargeNode) {
  testing::TempDir dir;
  const fs::path root = dir.path();
  WriteFile(root / "sys/devices/system/cpu/online", "0-63");
  WriteFile(root / "proc/self/cgroup",
            "4:cpu,cpuacct:/kubepods/pod1/c1\n3:cpuset:/kubepods/pod1/c1");
  const fs::path group = root / "sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/c1";
  WriteFile(group / "cpu.cfs_quota_us", "200000");
  WriteFile(group / "cpu.cfs_period_us", "100000");
  std::vector<int> affinity;
  for (int i = 0; i < 64; ++i) affinity.push_back(i);
  const CpuBudget budget = DiscoverCpuBudget(root.string(), affinity);
  ASSERT_TRUE(budget.quota_cpus);
  EXPECT_EQ(budget.allowed.size(), 64u);
  EXPECT_EQ(ThreadBudget(budget), 2);
}

}  // namespace
}  // namespace sg
