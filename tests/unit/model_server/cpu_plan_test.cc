// Planning over recorded sysfs/cgroup trees written into a temp dir.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "model_server/cpu_budget.h"
#include "model_server/cpu_plan.h"
#include "model_server/doctor.h"
#include "tests/support/test_support.h"

namespace sg::serve {
namespace {

namespace fs = std::filesystem;

void WriteFile(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text << "\n";
}

std::vector<int> Range(int lo, int hi) {
  std::vector<int> out;
  for (int i = lo; i <= hi; ++i) out.push_back(i);
  return out;
}

// A 2-socket Xeon: 12 cores per socket, 2 threads per core. Logical CPUs 0-11 are socket 0's
// first threads, 12-23 socket 1's, 24-35 and 36-47 their hyperthread siblings (Linux's usual
// numbering). NUMA node N = socket N.
void WriteXeon(const fs::path& root) {
  fs::path cpu = root / "sys/devices/system/cpu";
  WriteFile(cpu / "online", "0-47");
  for (int id = 0; id < 48; ++id) {
    int first = id % 24;
    int package = first / 12;
    int core = first % 12;
    fs::path topo = cpu / ("cpu" + std::to_string(id)) / "topology";
    WriteFile(topo / "core_id", std::to_string(core));
    WriteFile(topo / "physical_package_id", std::to_string(package));
    WriteFile(topo / "thread_siblings_list",
              std::to_string(first) + "," + std::to_string(first + 24));
  }
  WriteFile(root / "sys/devices/system/node/node0/cpulist", "0-11,24-35");
  WriteFile(root / "sys/devices/system/node/node1/cpulist", "12-23,36-47");
}

void WriteCgroupV2(const fs::path& root, const std::string& path, const std::string& cpu_max,
                   const std::string& cpuset) {
  WriteFile(root / "proc/self/cgroup", "0::" + path);
  fs::path dir = root / "sys/fs/cgroup" / fs::path(path).relative_path();
  WriteFile(root / "sys/fs/cgroup/cpu.max", "max 100000");
  if (!cpu_max.empty()) WriteFile(dir / "cpu.max", cpu_max);
  if (!cpuset.empty()) WriteFile(dir / "cpuset.cpus.effective", cpuset);
}

TEST(CpuListTest, ParsesAndFormats) {
  EXPECT_EQ(ParseCpuList("0-3,8,10-11"), (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(ParseCpuList(" 5 "), (std::vector<int>{5}));
  EXPECT_EQ(ParseCpuList(""), (std::vector<int>{}));
  EXPECT_FALSE(ParseCpuList("3-1"));
  EXPECT_FALSE(ParseCpuList("a"));
  EXPECT_FALSE(ParseCpuList("1,,2"));
  EXPECT_EQ(FormatCpuList({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
  EXPECT_EQ(FormatCpuList({}), "");
}

TEST(CpuBudgetTest, XeonTopology) {
  testing::TempDir dir;
  WriteXeon(dir.path());
  auto budget = DiscoverCpuBudget(dir.path().string(), Range(0, 47));
  EXPECT_EQ(budget.online_count, 48);
  ASSERT_EQ(budget.allowed.size(), 48u);
  EXPECT_FALSE(budget.quota_cpus);
  const auto& cpu30 = budget.cpus[30];
  EXPECT_EQ(cpu30.id, 30);
  EXPECT_EQ(cpu30.core_id, 6);
  EXPECT_EQ(cpu30.package_id, 0);
  EXPECT_EQ(cpu30.numa_node, 0);
  EXPECT_EQ(cpu30.siblings, (std::vector<int>{6, 30}));
  EXPECT_EQ(budget.cpus[40].numa_node, 1);
}

TEST(CpuPlanTest, XeonBareMetalOneWorkerPerSocketPhysicalCoresOnly) {
  testing::TempDir dir;
  WriteXeon(dir.path());
  auto plan = PlanWorkers(DiscoverCpuBudget(dir.path().string(), Range(0, 47)), {});
  EXPECT_EQ(plan.logical_cpus, 48);
  EXPECT_EQ(plan.physical_cores, 24);
  EXPECT_EQ(plan.budget, 24);
  ASSERT_EQ(plan.workers.size(), 2u);
  EXPECT_EQ(FormatCpuList(plan.workers[0].cpus), "0-11");
  EXPECT_EQ(plan.workers[0].numa_node, 0);
  EXPECT_EQ(plan.workers[0].threads, 12);
  EXPECT_EQ(FormatCpuList(plan.workers[1].cpus), "12-23");
  EXPECT_EQ(plan.workers[1].numa_node, 1);
  EXPECT_TRUE(plan.warnings.empty()) << DescribePlan(plan);
}

TEST(CpuPlanTest, XeonFourWorkersStayInsideNodes) {
  testing::TempDir dir;
  WriteXeon(dir.path());
  PlanRequest request;
  request.workers = 4;
  auto plan = PlanWorkers(DiscoverCpuBudget(dir.path().string(), Range(0, 47)), request);
  ASSERT_EQ(plan.workers.size(), 4u);
  EXPECT_EQ(FormatCpuList(plan.workers[0].cpus), "0-5");
  EXPECT_EQ(FormatCpuList(plan.workers[1].cpus), "6-11");
  EXPECT_EQ(FormatCpuList(plan.workers[2].cpus), "12-17");
  EXPECT_EQ(FormatCpuList(plan.workers[3].cpus), "18-23");
  for (const auto& w : plan.workers) EXPECT_EQ(w.threads, 6);
}

TEST(CpuPlanTest, LogicalCoresWhenAsked) {
  testing::TempDir dir;
  WriteXeon(dir.path());
  PlanRequest request;
  request.workers = 2;
  request.use_logical_cores = true;
  auto plan = PlanWorkers(DiscoverCpuBudget(dir.path().string(), Range(0, 47)), request);
  EXPECT_EQ(plan.budget, 48);
  ASSERT_EQ(plan.workers.size(), 2u);
  EXPECT_EQ(FormatCpuList(plan.workers[0].cpus), "0-11,24-35");
  EXPECT_EQ(plan.workers[0].threads, 24);
}

TEST(CpuPlanTest, KubernetesPodQuotaBindsNotTheNodeCoreCount) {
  testing::TempDir dir;
  WriteXeon(dir.path());
  WriteCgroupV2(dir.path(), "/kubepods.slice/kubepods-burstable.slice/pod42/cri-abc",
                "800000 100000", "0-47");
  auto budget = DiscoverCpuBudget(dir.path().string(), Range(0, 47));
  ASSERT_TRUE(budget.quota_cpus);
  EXPECT_DOUBLE_EQ(*budget.quota_cpus, 8.0);
  EXPECT_NE(budget.quota_source.find("pod42/cri-abc/cpu.max"), std::string::npos);

  auto plan = PlanWorkers(budget, {});
  EXPECT_EQ(plan.budget, 8);
  ASSERT_EQ(plan.workers.size(), 2u);
  // Each worker gets 4 physical cores in its own socket: no throttling, no node crossing.
  EXPECT_EQ(FormatCpuList(plan.workers[0].cpus), "0-3");
  EXPECT_EQ(FormatCpuList(plan.workers[1].cpus), "12-15");
  EXPECT_EQ(plan.workers[0].threads, 4);
  EXPECT_TRUE(plan.warnings.empty()) << DescribePlan(plan);

  PlanRequest one;
  one.workers = 1;
  auto single = PlanWorkers(budget, one);
  ASSERT_EQ(single.workers.size(), 1u);
  EXPECT_EQ(FormatCpuList(single.workers[0].cpus), "0-7");
  EXPECT_EQ(single.workers[0].threads, 8);
  EXPECT_EQ(single.workers[0].numa_node, 0);

  DoctorInput input{budget, plan, {{"OMP_PROC_BIND", "true"}}, ""};
  auto text = FormatFindings(Diagnose(input));
  EXPECT_NE(text.find("warn  quota: cgroup quota 8 CPUs"), std::string::npos) << text;
  EXPECT_NE(text.find("warn  openmp: OMP_PROC_BIND=true"), std::string::npos) << text;
  EXPECT_NE(text.find("warn  hyperthreads: 48 logical CPUs on 24 physical"), std::string::npos)
      << text;
}

TEST(CpuPlanTest, TightestQuotaAlongTheCgroupPathWins) {
  testing::TempDir dir;
  WriteXeon(dir.path());
  WriteCgroupV2(dir.path(), "/a/b", "800000 100000", "");
  WriteFile(dir.path() / "sys/fs/cgroup/a/cpu.max", "300000 100000");
  auto budget = DiscoverCpuBudget(dir.path().string(), Range(0, 47));
  ASSERT_TRUE(budget.quota_cpus);
  EXPECT_DOUBLE_EQ(*budget.quota_cpus, 3.0);
}

TEST(CpuPlanTest, RestrictedCpusetAndAffinity) {
  testing::TempDir dir;
  WriteXeon(dir.path());
  WriteCgroupV2(dir.path(), "/docker/xyz", "", "0-5,24-29");
  auto budget = DiscoverCpuBudget(dir.path().string(), Range(0, 47));
  EXPECT_EQ(FormatCpuList(budget.allowed), "0-5,24-29");
  auto plan = PlanWorkers(budget, {});
  EXPECT_EQ(plan.physical_cores, 6);
  ASSERT_EQ(plan.workers.size(), 1u);
  EXPECT_EQ(FormatCpuList(plan.workers[0].cpus), "0-5");
  EXPECT_EQ(plan.workers[0].threads, 6);

  // taskset on top of the cpuset: only the intersection counts.
  auto narrowed = DiscoverCpuBudget(dir.path().string(), {0, 1, 24, 40});
  EXPECT_EQ(FormatCpuList(narrowed.allowed), "0-1,24");
  auto small = PlanWorkers(narrowed, {});
  EXPECT_EQ(small.physical_cores, 2);
  ASSERT_EQ(small.workers.size(), 1u);
  EXPECT_EQ(FormatCpuList(small.workers[0].cpus), "0-1");
}

TEST(CpuPlanTest, NonDivisibleCountsWarn) {
  testing::TempDir dir;
  WriteXeon(dir.path());
  WriteCgroupV2(dir.path(), "/c", "", "0-7");
  PlanRequest request;
  request.workers = 3;
  auto plan = PlanWorkers(DiscoverCpuBudget(dir.path().string(), Range(0, 47)), request);
  EXPECT_EQ(plan.budget, 8);
  ASSERT_EQ(plan.workers.size(), 3u);
  for (const auto& w : plan.workers) EXPECT_EQ(w.threads, 2);
  EXPECT_EQ(FormatCpuList(plan.workers[2].cpus), "4-5");
  ASSERT_EQ(plan.warnings.size(), 1u);
  EXPECT_EQ(plan.warnings[0], "8 CPUs do not divide evenly into 3 workers: using 6 of 8 (75%)");
}

TEST(CpuPlanTest, OversubscriptionAndTooManyWorkers) {
  testing::TempDir dir;
  WriteXeon(dir.path());
  WriteCgroupV2(dir.path(), "/c", "", "0-3");
  PlanRequest request;
  request.workers = 2;
  request.threads_per_worker = 4;
  auto budget = DiscoverCpuBudget(dir.path().string(), Range(0, 47));
  auto plan = PlanWorkers(budget, request);
  ASSERT_EQ(plan.workers.size(), 2u);
  EXPECT_EQ(plan.workers[0].threads, 4);
  EXPECT_EQ(FormatCpuList(plan.workers[0].cpus), "0-1");  // disjoint even when oversubscribed
  EXPECT_EQ(FormatCpuList(plan.workers[1].cpus), "2-3");
  ASSERT_FALSE(plan.warnings.empty());
  EXPECT_NE(plan.warnings[0].find("oversubscribed"), std::string::npos);
  DoctorInput input{budget, plan, {}, ""};
  EXPECT_NE(FormatFindings(Diagnose(input)).find("BAD   plan: 8 inference threads"),
            std::string::npos);

  PlanRequest many;
  many.workers = 6;
  auto clamped = PlanWorkers(budget, many);
  EXPECT_EQ(clamped.workers.size(), 4u);
  EXPECT_NE(clamped.warnings[0].find("6 workers requested"), std::string::npos);
}

TEST(CpuPlanTest, CgroupV1Quota) {
  testing::TempDir dir;
  WriteXeon(dir.path());
  WriteFile(dir.path() / "proc/self/cgroup",
            "5:cpuset:/kubepods/pod7\n4:cpu,cpuacct:/kubepods/pod7\n");
  WriteFile(dir.path() / "sys/fs/cgroup/cpu,cpuacct/kubepods/pod7/cpu.cfs_quota_us", "250000");
  WriteFile(dir.path() / "sys/fs/cgroup/cpu,cpuacct/kubepods/pod7/cpu.cfs_period_us", "100000");
  WriteFile(dir.path() / "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1");
  WriteFile(dir.path() / "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000");
  WriteFile(dir.path() / "sys/fs/cgroup/cpuset/kubepods/pod7/cpuset.cpus", "12-23,36-47");
  auto budget = DiscoverCpuBudget(dir.path().string(), Range(0, 47));
  ASSERT_TRUE(budget.quota_cpus);
  EXPECT_DOUBLE_EQ(*budget.quota_cpus, 2.5);
  EXPECT_EQ(FormatCpuList(budget.allowed), "12-23,36-47");
  auto plan = PlanWorkers(budget, {});
  EXPECT_EQ(plan.budget, 2);
  ASSERT_EQ(plan.workers.size(), 1u);
  EXPECT_EQ(FormatCpuList(plan.workers[0].cpus), "12-13");
  EXPECT_EQ(plan.workers[0].numa_node, 1);
}

TEST(CpuPlanTest, PinningOffLeavesWorkersUnpinned) {
  testing::TempDir dir;
  WriteXeon(dir.path());
  PlanRequest request;
  request.workers = 2;
  request.threads_per_worker = 48;
  request.pinning = false;
  auto plan = PlanWorkers(DiscoverCpuBudget(dir.path().string(), Range(0, 47)), request);
  ASSERT_EQ(plan.workers.size(), 2u);
  EXPECT_TRUE(plan.workers[0].cpus.empty());
  EXPECT_EQ(plan.workers[0].threads, 48);
}

TEST(CpuPlanTest, FrontCpusAreReservedAndKeepWorkersInsideNodes) {
  testing::TempDir dir;
  WriteXeon(dir.path());
  auto budget = DiscoverCpuBudget(dir.path().string(), Range(0, 47));
  PlanRequest request;
  request.front_cpus = 2;
  auto plan = PlanWorkers(budget, request);
  EXPECT_EQ(plan.budget, 24);
  // One core from each node, with its hyperthread sibling: the workers keep 11 cores per node.
  EXPECT_EQ(FormatCpuList(plan.front_cpus), "11,23,35,47");
  ASSERT_EQ(plan.workers.size(), 2u);
  EXPECT_EQ(FormatCpuList(plan.workers[0].cpus), "0-10");
  EXPECT_EQ(FormatCpuList(plan.workers[1].cpus), "12-22");
  EXPECT_EQ(plan.workers[0].threads, 11);
  EXPECT_EQ(plan.workers[1].numa_node, 1);
  EXPECT_TRUE(plan.warnings.empty()) << DescribePlan(plan);
  EXPECT_NE(DescribePlan(plan).find("front: cpus 11,23,35,47"), std::string::npos);

  // In a pod with an 8-CPU quota: 1 for the front, 7 for the workers.
  WriteCgroupV2(dir.path(), "/pod", "800000 100000", "");
  request.front_cpus = 1;
  request.workers = 7;
  plan = PlanWorkers(DiscoverCpuBudget(dir.path().string(), Range(0, 47)), request);
  EXPECT_EQ(plan.budget, 8);
  EXPECT_EQ(FormatCpuList(plan.front_cpus), "23,47");
  ASSERT_EQ(plan.workers.size(), 7u);
  std::set<int> used;
  for (const auto& w : plan.workers) {
    EXPECT_EQ(w.threads, 1);
    for (int c : w.cpus) {
      EXPECT_TRUE(used.insert(c).second) << "cpu " << c << " given twice";
      EXPECT_NE(c, 23);
      EXPECT_NE(c, 47);
    }
  }
}

TEST(CpuPlanTest, FrontCpusThatLeaveNoWorkerCpuOrWithoutPinningAreWarnings) {
  testing::TempDir dir;
  WriteXeon(dir.path());
  auto budget = DiscoverCpuBudget(dir.path().string(), Range(0, 3));
  PlanRequest request;
  request.front_cpus = 4;
  auto plan = PlanWorkers(budget, request);
  EXPECT_TRUE(plan.front_cpus.empty());
  ASSERT_EQ(plan.warnings.size(), 1u);
  EXPECT_NE(plan.warnings[0].find("would leave no CPU"), std::string::npos) << plan.warnings[0];
  EXPECT_EQ(plan.workers.at(0).threads, 4);

  request.front_cpus = 1;
  request.pinning = false;
  plan = PlanWorkers(budget, request);
  EXPECT_TRUE(plan.front_cpus.empty());
  ASSERT_EQ(plan.warnings.size(), 1u);
  EXPECT_NE(plan.warnings[0].find("pinning is off"), std::string::npos) << plan.warnings[0];
}

TEST(CpuBudgetTest, MissingTopologyFallsBackToAffinity) {
  testing::TempDir dir;
  auto budget = DiscoverCpuBudget(dir.path().string(), {0, 1, 2});
  EXPECT_EQ(FormatCpuList(budget.allowed), "0-2");
  EXPECT_FALSE(budget.notes.empty());
  auto plan = PlanWorkers(budget, {});
  EXPECT_EQ(plan.budget, 3);
}

TEST(DoctorTest, BlasFromMaps) {
  std::string maps =
      "7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3\n"
      "7f02-7f03 r-xp 0 08:01 2 /usr/lib/x86_64-linux-gnu/libc.so.6\n";
  auto libs = MappedBlasLibraries(maps);
  ASSERT_EQ(libs.size(), 1u);
  CpuBudget budget;
  CpuPlan plan;
  auto text = FormatFindings(Diagnose({budget, plan, {}, maps}));
  EXPECT_NE(text.find("ok    blas: loaded: "), std::string::npos) << text;
  std::string reference = "7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/blas/libblas.so.3\n";
  text = FormatFindings(Diagnose({budget, plan, {}, reference}));
  EXPECT_NE(text.find("BAD   blas: reference BLAS"), std::string::npos) << text;
}

}  // namespace
}  // namespace sg::serve
