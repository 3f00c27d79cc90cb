// Discovering the CPU budget a process really has: the affinity mask intersected with the cgroup
// cpuset, the cgroup CPU quota (v2 cpu.max, v1 cfs_quota_us/cfs_period_us) and the sysfs
// topology (physical core, package, hyperthread siblings, NUMA node).
//
// Every path is read under a root prefix ("" in production, a recorded tree in tests), and the
// affinity mask is passed in, so discovery is a plain function over files.
//
// Shared by sg-serve (its CPU plan: model_server/cpu_plan.h) and the gateway (how many I/O
// threads io_threads 0 starts: ThreadBudget).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sg {

// One logical CPU (hardware thread) as sysfs describes it.
struct LogicalCpu {
  int id = 0;
  int core_id = 0;            // topology/core_id: same value for hyperthread siblings of one core
  int package_id = 0;         // topology/physical_package_id: the socket
  int numa_node = 0;          // the nodeN directory that lists it; 0 when the machine shows no NUMA
  std::vector<int> siblings;  // topology/thread_siblings_list, itself included
};

struct CpuBudget {
  // CPUs this process may run on: affinity mask ∩ cgroup cpuset ∩ online CPUs, ascending.
  std::vector<int> allowed;
  // Topology of every allowed CPU, in the order of `allowed`.
  std::vector<LogicalCpu> cpus;
  // CPUs the machine has online (what nproc-style code would believe).
  int online_count = 0;
  // CPU quota in CPUs (quota / period), when a cgroup limits it; the tightest along the path.
  std::optional<double> quota_cpus;
  std::string quota_source;   // the file it came from, for messages
  std::string cpuset_source;  // the cpuset file intersected, if any
  // Non-fatal problems met while reading (missing files are normal outside containers).
  std::vector<std::string> notes;
};

// Parses a kernel CPU list such as "0-3,8,10-11". nullopt on malformed text.
std::optional<std::vector<int>> ParseCpuList(std::string_view text);
// Formats ascending CPUs as a kernel CPU list ("0-3,8,10-11").
std::string FormatCpuList(const std::vector<int>& cpus);

// Reads the budget under `root` (e.g. "" or "/tmp/recorded"): root/sys/devices/system/cpu,
// root/sys/devices/system/node, root/proc/self/cgroup and root/sys/fs/cgroup.
// `affinity` is the process's sched_getaffinity mask (tests pass any list).
CpuBudget DiscoverCpuBudget(const std::string& root, const std::vector<int>& affinity);

// How many threads keep the budget busy without oversubscribing it: the allowed CPUs, capped by
// the cgroup quota rounded up (0.5 CPU: 1, 2.5 CPUs: 3), at least 1. A pod with a 2-CPU limit on
// a 64-CPU node gets 2, not 64.
int ThreadBudget(const CpuBudget& budget);

// This process's affinity mask (sched_getaffinity).
std::vector<int> CurrentAffinity();

// Pins every thread of this process to `cpus` (threads started later inherit the mask of the
// thread that starts them). False with `error` when a thread cannot be pinned.
bool PinProcess(const std::vector<int>& cpus, std::string* error);

}  // namespace sg
