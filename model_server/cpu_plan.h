// Planning workers over a CPU budget: which CPUs each worker is pinned to and how many
// inference threads it runs. A plain function over plain data (see cpu_budget.h).
//
// Rules (the lessons of a real GPU-to-CPU migration):
//  - physical cores only (one logical CPU per core) unless use_logical_cores;
//  - the cgroup quota, not the visible core count, bounds the budget;
//  - workers get disjoint CPU sets, inside one NUMA node where possible;
//  - threads_per_worker = floor(budget / workers) unless given; a remainder is a warning.
#pragma once

#include <string>
#include <vector>

#include "model_server/cpu_budget.h"

namespace sg::serve {

struct PlanRequest {
  int workers = 0;                 // 0: one per NUMA node in the budget (at most one per CPU)
  int threads_per_worker = 0;      // 0: floor(budget / workers)
  bool use_logical_cores = false;  // false: hyperthread siblings are left idle
  bool pinning = true;             // false: workers inherit the whole mask (the naive setup)
};

struct WorkerCpus {
  std::vector<int> cpus;  // logical CPUs the worker is pinned to; empty when pinning is off
  int threads = 1;        // intra-op threads (torch::set_num_threads)
  int numa_node = -1;     // the node holding all of `cpus`; -1 when they span nodes or unpinned
};

struct CpuPlan {
  int budget = 0;          // CPUs the plan may use (units: physical cores or logical CPUs)
  int physical_cores = 0;  // distinct physical cores among the allowed CPUs
  int logical_cpus = 0;    // allowed logical CPUs
  std::vector<WorkerCpus> workers;
  std::vector<std::string> reasons;   // how each number was chosen, in order
  std::vector<std::string> warnings;  // what wastes or oversubscribes CPUs
};

CpuPlan PlanWorkers(const CpuBudget& budget, const PlanRequest& request);

// Human text: the budget, the reasons, one line per worker, the warnings.
std::string DescribePlan(const CpuPlan& plan);

}  // namespace sg::serve
