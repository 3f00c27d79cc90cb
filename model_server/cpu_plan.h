// Planning workers over a CPU budget: which CPUs each worker is pinned to and how many
// inference threads it runs. A plain function over plain data (see cpu_budget.h).
//
// Rules (the lessons of a real GPU-to-CPU migration):
//  - physical cores only (one logical CPU per core) unless use_logical_cores;
//  - the cgroup quota, not the visible core count, bounds the budget;
//  - workers get disjoint CPU sets, inside one NUMA node where possible;
//  - threads_per_worker = floor(budget / workers) unless given; a remainder is a warning;
//  - front_cpus > 0 reserves that many CPUs of the budget for the front process (HTTP, image
//    decoding and preprocessing), so the workers' CPUs run nothing but inference.
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
  int front_cpus = 0;              // CPUs (budget units) for the front; 0: it shares the budget
};

struct WorkerCpus {
  std::vector<int> cpus;  // logical CPUs the worker is pinned to; empty when pinning is off
  int threads = 1;        // intra-op threads (torch::set_num_threads)
  int numa_node = -1;     // the node holding all of `cpus`; -1 when they span nodes or unpinned
};

struct CpuPlan {
  int budget = 0;          // CPUs the plan may use (units: physical cores or logical CPUs),
                           // the front's reserved ones included
  int physical_cores = 0;  // distinct physical cores among the allowed CPUs
  int logical_cpus = 0;    // allowed logical CPUs
  std::vector<WorkerCpus> workers;
  // Logical CPUs reserved for the front process (its cores' hyperthread siblings included);
  // empty when the front shares the budget with the workers (front_cpus 0, pinning off, or no
  // CPU left for workers). The workers' CPUs never include these.
  std::vector<int> front_cpus;
  std::vector<std::string> reasons;   // how each number was chosen, in order
  std::vector<std::string> warnings;  // what wastes or oversubscribes CPUs
};

CpuPlan PlanWorkers(const CpuBudget& budget, const PlanRequest& request);

// Human text: the budget, the reasons, one line per worker, the warnings.
std::string DescribePlan(const CpuPlan& plan);

}  // namespace sg::serve
