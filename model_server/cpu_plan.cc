#include "model_server/cpu_plan.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "common/strings.h"

namespace sg::serve {
namespace {

// One schedulable unit: a physical core (its lowest allowed logical CPU) or a logical CPU.
struct Unit {
  int cpu;
  int numa;
  int package;
  int core;
};

}  // namespace

CpuPlan PlanWorkers(const CpuBudget& budget, const PlanRequest& request) {
  CpuPlan plan;
  plan.logical_cpus = static_cast<int>(budget.cpus.size());

  // Physical cores among the allowed CPUs, keyed by (package, core_id).
  std::map<std::pair<int, int>, std::vector<const LogicalCpu*>> cores;
  for (const auto& cpu : budget.cpus) cores[{cpu.package_id, cpu.core_id}].push_back(&cpu);
  plan.physical_cores = static_cast<int>(cores.size());

  std::vector<Unit> units;
  if (request.use_logical_cores) {
    for (const auto& cpu : budget.cpus) {
      units.push_back({cpu.id, cpu.numa_node, cpu.package_id, cpu.core_id});
    }
    plan.reasons.push_back("using all " + std::to_string(units.size()) +
                           " allowed logical CPUs (use_logical_cores)");
  } else {
    for (const auto& [key, cpus] : cores) {
      const LogicalCpu* first = *std::min_element(cpus.begin(), cpus.end(),
                                                  [](auto* a, auto* b) { return a->id < b->id; });
      units.push_back({first->id, first->numa_node, first->package_id, first->core_id});
    }
    std::string text = std::to_string(plan.logical_cpus) + " allowed logical CPUs on " +
                       std::to_string(plan.physical_cores) + " physical cores";
    if (plan.logical_cpus > plan.physical_cores) {
      text += ": one logical CPU per core, hyperthread siblings left idle";
    }
    plan.reasons.push_back(text);
  }
  std::sort(units.begin(), units.end(), [](const Unit& a, const Unit& b) {
    return std::tie(a.numa, a.package, a.cpu) < std::tie(b.numa, b.package, b.cpu);
  });

  int budget_units = static_cast<int>(units.size());
  if (budget.quota_cpus) {
    int quota = std::max(1, static_cast<int>(std::floor(*budget.quota_cpus + 1e-9)));
    std::string text =
        "cgroup quota " + FormatDouble(*budget.quota_cpus) + " CPUs (" + budget.quota_source + ")";
    if (quota < budget_units) {
      text += " is below the " + std::to_string(budget_units) + " usable CPUs: budget " +
              std::to_string(quota);
      budget_units = quota;
    } else {
      text += " does not bind";
    }
    plan.reasons.push_back(text);
  }
  if (budget_units == 0) {
    plan.warnings.push_back("no usable CPU in the budget");
    return plan;
  }
  plan.budget = budget_units;

  // The front's reservation, taken out of the units the workers are planned over: one unit at a
  // time, the highest CPU of the NUMA node with the most units left (the last node on a tie), so
  // the nodes stay as even as possible for the workers.
  if (request.front_cpus > 0) {
    int front = request.front_cpus;
    if (!request.pinning) {
      plan.warnings.push_back("front_cpus " + std::to_string(front) +
                              " ignored: pinning is off, so the front shares every CPU");
    } else if (front >= budget_units) {
      plan.warnings.push_back("front_cpus " + std::to_string(front) +
                              " would leave no CPU of the " + std::to_string(budget_units) +
                              "-CPU budget to the workers: the front shares the budget instead");
    } else {
      std::map<int, std::vector<Unit>> by_node;
      for (const auto& u : units) by_node[u.numa].push_back(u);
      std::vector<Unit> reserved;
      for (int i = 0; i < front; ++i) {
        auto most = by_node.begin();
        for (auto it = by_node.begin(); it != by_node.end(); ++it) {
          if (it->second.size() >= most->second.size()) most = it;
        }
        reserved.push_back(most->second.back());
        most->second.pop_back();
      }
      std::erase_if(units, [&](const Unit& u) {
        return std::any_of(reserved.begin(), reserved.end(),
                           [&](const Unit& r) { return r.cpu == u.cpu; });
      });
      for (const auto& u : reserved) {
        if (request.use_logical_cores) {
          plan.front_cpus.push_back(u.cpu);
        } else {
          for (const auto* cpu : cores.at({u.package, u.core})) plan.front_cpus.push_back(cpu->id);
        }
      }
      std::sort(plan.front_cpus.begin(), plan.front_cpus.end());
      budget_units -= front;
      budget_units = std::min(budget_units, static_cast<int>(units.size()));
      plan.reasons.push_back(
          "front (HTTP, image decoding, preprocessing): " + std::to_string(front) +
          " CPU(s) reserved, cpus " + FormatCpuList(plan.front_cpus) +
          "; the workers are planned over the other " + std::to_string(budget_units));
    }
  }

  // Workers: given, or derived from the thread count, or one per NUMA node in the budget.
  int workers = request.workers;
  if (workers <= 0 && request.threads_per_worker > 0) {
    workers = std::max(1, budget_units / request.threads_per_worker);
    plan.reasons.push_back(std::to_string(workers) + " workers = budget " +
                           std::to_string(budget_units) + " / " +
                           std::to_string(request.threads_per_worker) + " threads each");
  } else if (workers <= 0) {
    std::set<int> all_nodes;
    for (const auto& u : units) all_nodes.insert(u.numa);
    workers = static_cast<int>(all_nodes.size());
    if (workers > budget_units) workers = budget_units;
    plan.reasons.push_back(std::to_string(workers) + " worker(s): one per NUMA node");
  } else {
    plan.reasons.push_back(std::to_string(workers) + " worker(s) requested");
  }
  if (workers > budget_units && request.pinning) {
    plan.warnings.push_back(std::to_string(workers) + " workers requested but the budget is " +
                            std::to_string(budget_units) + " CPUs: using " +
                            std::to_string(budget_units) + " workers of 1 CPU");
    workers = budget_units;
  }

  int threads = request.threads_per_worker;
  if (threads <= 0) {
    threads = std::max(1, budget_units / workers);
    plan.reasons.push_back("threads per worker = floor(" + std::to_string(budget_units) + " / " +
                           std::to_string(workers) + ") = " + std::to_string(threads));
  } else {
    plan.reasons.push_back(std::to_string(threads) + " threads per worker requested");
  }
  int used = workers * threads;
  if (used > budget_units) {
    plan.warnings.push_back("oversubscribed: " + std::to_string(workers) + " workers x " +
                            std::to_string(threads) + " threads = " + std::to_string(used) +
                            " threads on a budget of " + std::to_string(budget_units) + " CPUs");
  } else if (used < budget_units) {
    plan.warnings.push_back(std::to_string(budget_units) + " CPUs do not divide evenly into " +
                            std::to_string(workers) + " workers: using " + std::to_string(used) +
                            " of " + std::to_string(budget_units) + " (" +
                            FormatDouble(std::round(1000.0 * used / budget_units) / 10.0) + "%)");
  }

  if (!request.pinning) {
    plan.reasons.push_back("pinning off: every worker may run on all allowed CPUs");
    for (int w = 0; w < workers; ++w) plan.workers.push_back({{}, threads, -1});
    return plan;
  }

  // Assign disjoint units. Each worker takes `threads` units (fewer when oversubscribed: then
  // threads share the worker's own CPUs), from one NUMA node when some node still has enough.
  int per_worker = std::min(threads, budget_units / workers);
  std::map<int, std::vector<Unit>> free_by_node;
  // Keep the budget inside as few nodes as possible: take units in order.
  for (int i = 0; i < budget_units; ++i) free_by_node[units[i].numa].push_back(units[i]);
  // When the budget is cut by a quota, spread it so every worker can stay in one node.
  if (budget_units < static_cast<int>(units.size())) {
    free_by_node.clear();
    std::map<int, std::vector<Unit>> all_by_node;
    for (const auto& u : units) all_by_node[u.numa].push_back(u);
    // Round-robin over nodes, one whole share at a time, so workers spread over sockets.
    std::map<int, size_t> taken;
    int remaining = workers;
    bool progress = true;
    while (remaining > 0 && progress) {
      progress = false;
      for (auto& [node, list] : all_by_node) {
        if (remaining == 0) break;
        if (list.size() - taken[node] < static_cast<size_t>(per_worker)) continue;
        for (int i = 0; i < per_worker; ++i) free_by_node[node].push_back(list[taken[node]++]);
        --remaining;
        progress = true;
      }
    }
    if (remaining > 0) {  // no node layout fits: fall back to taking units in order
      free_by_node.clear();
      for (int i = 0; i < budget_units; ++i) free_by_node[units[i].numa].push_back(units[i]);
    }
  }
  for (int w = 0; w < workers; ++w) {
    WorkerCpus worker;
    worker.threads = threads;
    // The first node that still holds a whole share, so nodes are filled one after another.
    auto fit = std::find_if(free_by_node.begin(), free_by_node.end(), [&](const auto& entry) {
      return static_cast<int>(entry.second.size()) >= per_worker;
    });
    if (fit != free_by_node.end()) {
      auto& list = fit->second;
      for (int i = 0; i < per_worker; ++i) worker.cpus.push_back(list[i].cpu);
      list.erase(list.begin(), list.begin() + per_worker);
      worker.numa_node = fit->first;
    } else {
      for (auto& [node, list] : free_by_node) {
        while (!list.empty() && static_cast<int>(worker.cpus.size()) < per_worker) {
          worker.cpus.push_back(list.front().cpu);
          list.erase(list.begin());
        }
      }
      plan.warnings.push_back("worker " + std::to_string(w) + " spans NUMA nodes");
    }
    std::sort(worker.cpus.begin(), worker.cpus.end());
    plan.workers.push_back(std::move(worker));
  }
  return plan;
}

std::string DescribePlan(const CpuPlan& plan) {
  std::ostringstream out;
  out << "budget: " << plan.budget << " CPUs (" << plan.logical_cpus << " logical, "
      << plan.physical_cores << " physical allowed)\n";
  for (const auto& r : plan.reasons) out << "  - " << r << "\n";
  for (size_t w = 0; w < plan.workers.size(); ++w) {
    const auto& worker = plan.workers[w];
    out << "worker " << w << ": ";
    if (worker.cpus.empty()) {
      out << "unpinned";
    } else {
      out << "cpus " << FormatCpuList(worker.cpus);
      if (worker.numa_node >= 0) out << " (numa node " << worker.numa_node << ")";
    }
    out << ", " << worker.threads << " threads\n";
  }
  if (!plan.front_cpus.empty()) {
    out << "front: cpus " << FormatCpuList(plan.front_cpus)
        << " (HTTP, image decoding and preprocessing)\n";
  }
  for (const auto& w : plan.warnings) out << "warning: " << w << "\n";
  return out.str();
}

}  // namespace sg::serve
