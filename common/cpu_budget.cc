#include "common/cpu_budget.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <set>
#include <sstream>

#include "common/strings.h"

namespace sg {
namespace {

namespace fs = std::filesystem;

// The first line of a file, trimmed; nullopt when it cannot be read.
std::optional<std::string> ReadLine(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string line;
  std::getline(in, line);
  return std::string(Trim(line));
}

std::optional<long long> ParseInt(std::string_view text) {
  text = Trim(text);
  long long value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<int> ReadInt(const fs::path& path) {
  auto line = ReadLine(path);
  if (!line) return std::nullopt;
  auto v = ParseInt(*line);
  if (!v) return std::nullopt;
  return static_cast<int>(*v);
}

std::vector<int> Intersect(const std::vector<int>& a, const std::vector<int>& b) {
  std::vector<int> out;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

// Directories from `leaf` up to `top` (both included), leaf first.
std::vector<fs::path> Ancestors(const fs::path& top, const std::string& relative) {
  std::vector<fs::path> out;
  fs::path rel = fs::path(relative).relative_path();
  while (true) {
    out.push_back(top / rel);
    if (rel.empty()) break;
    rel = rel.parent_path();
  }
  return out;
}

struct CgroupLine {
  std::vector<std::string> controllers;  // empty for the v2 unified line
  std::string controllers_text;
  std::string path;
};

std::vector<CgroupLine> ReadProcCgroup(const fs::path& file) {
  std::vector<CgroupLine> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    auto first = line.find(':');
    if (first == std::string::npos) continue;
    auto second = line.find(':', first + 1);
    if (second == std::string::npos) continue;
    CgroupLine entry;
    entry.controllers_text = line.substr(first + 1, second - first - 1);
    if (!entry.controllers_text.empty()) entry.controllers = Split(entry.controllers_text, ',');
    entry.path = line.substr(second + 1);
    out.push_back(std::move(entry));
  }
  return out;
}

void ApplyQuota(CpuBudget& budget, double cpus, const fs::path& source) {
  if (!budget.quota_cpus || cpus < *budget.quota_cpus) {
    budget.quota_cpus = cpus;
    budget.quota_source = source.string();
  }
}

// The first of `names` in `dir` that holds a CPU list (the effective set first, then the
// configured one); a file that cannot be parsed is noted and the next one tried.
void ReadCpuset(const fs::path& dir, std::initializer_list<const char*> names, CpuBudget& budget,
                std::optional<std::vector<int>>& cpuset) {
  for (const char* name : names) {
    auto line = ReadLine(dir / name);
    if (!line || line->empty()) continue;
    if (auto cpus = ParseCpuList(*line)) {
      cpuset = *cpus;
      budget.cpuset_source = (dir / name).string();
      return;
    }
    budget.notes.push_back("cannot parse " + (dir / name).string() + ": " + *line);
  }
}

// cgroup v2: cpu.max ("max 100000" or "QUOTA PERIOD") along the path, cpuset.cpus.effective.
void ReadCgroupV2(const fs::path& mount, const std::string& path, CpuBudget& budget,
                  std::optional<std::vector<int>>& cpuset) {
  for (const auto& dir : Ancestors(mount, path)) {
    if (auto line = ReadLine(dir / "cpu.max")) {
      auto fields = Split(*line, ' ');
      if (fields.size() == 2 && fields[0] != "max") {
        auto quota = ParseInt(fields[0]);
        auto period = ParseInt(fields[1]);
        if (quota && period && *quota > 0 && *period > 0) {
          ApplyQuota(budget, static_cast<double>(*quota) / static_cast<double>(*period),
                     dir / "cpu.max");
        } else {
          budget.notes.push_back("cannot parse " + (dir / "cpu.max").string() + ": " + *line);
        }
      }
    }
    if (!cpuset) ReadCpuset(dir, {"cpuset.cpus.effective", "cpuset.cpus"}, budget, cpuset);
  }
}

// cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us and cpuset.cpus in their own hierarchies.
void ReadCgroupV1(const fs::path& mount, const CgroupLine& entry, CpuBudget& budget,
                  std::optional<std::vector<int>>& cpuset) {
  bool has_cpu = std::find(entry.controllers.begin(), entry.controllers.end(), "cpu") !=
                 entry.controllers.end();
  bool has_cpuset = std::find(entry.controllers.begin(), entry.controllers.end(), "cpuset") !=
                    entry.controllers.end();
  fs::path hierarchy = mount / entry.controllers_text;
  if (!fs::exists(hierarchy) && has_cpu) hierarchy = mount / "cpu";
  // Inside a container the hierarchy root is often the container's own cgroup, while
  // /proc/self/cgroup still shows the host path: fall back to the mount's root.
  fs::path path(entry.path);
  if (!fs::exists(hierarchy / path.relative_path())) path = fs::path("/");
  for (const auto& dir : Ancestors(hierarchy, path.string())) {
    if (has_cpu) {
      auto quota = ReadInt(dir / "cpu.cfs_quota_us");
      auto period = ReadInt(dir / "cpu.cfs_period_us");
      if (quota && period && *quota > 0 && *period > 0) {
        ApplyQuota(budget, static_cast<double>(*quota) / *period, dir / "cpu.cfs_quota_us");
      }
    }
    if (has_cpuset && !cpuset) {
      ReadCpuset(dir, {"cpuset.effective_cpus", "cpuset.cpus"}, budget, cpuset);
    }
  }
}

}  // namespace

std::optional<std::vector<int>> ParseCpuList(std::string_view text) {
  text = Trim(text);
  std::set<int> cpus;
  if (text.empty()) return std::vector<int>{};
  for (const auto& part : Split(text, ',')) {
    auto dash = part.find('-');
    if (dash == std::string::npos) {
      auto v = ParseInt(part);
      if (!v || *v < 0) return std::nullopt;
      cpus.insert(static_cast<int>(*v));
    } else {
      auto lo = ParseInt(std::string_view(part).substr(0, dash));
      auto hi = ParseInt(std::string_view(part).substr(dash + 1));
      if (!lo || !hi || *lo < 0 || *hi < *lo || *hi - *lo > 100000) return std::nullopt;
      for (long long c = *lo; c <= *hi; ++c) cpus.insert(static_cast<int>(c));
    }
  }
  return std::vector<int>(cpus.begin(), cpus.end());
}

std::string FormatCpuList(const std::vector<int>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(cpus[i]);
    if (j > i) out += '-' + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out;
}

CpuBudget DiscoverCpuBudget(const std::string& root, const std::vector<int>& affinity) {
  CpuBudget budget;
  fs::path base(root.empty() ? "/" : root);
  fs::path cpu_dir = base / "sys/devices/system/cpu";

  // Online CPUs: the "online" list, else every cpuN directory, else the affinity mask.
  std::vector<int> online;
  if (auto line = ReadLine(cpu_dir / "online"); line && ParseCpuList(*line)) {
    online = *ParseCpuList(*line);
  } else {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(cpu_dir, ec)) {
      auto name = entry.path().filename().string();
      if (name.size() > 3 && name.rfind("cpu", 0) == 0) {
        if (auto v = ParseInt(std::string_view(name).substr(3))) {
          online.push_back(static_cast<int>(*v));
        }
      }
    }
    std::sort(online.begin(), online.end());
    if (online.empty()) {
      budget.notes.push_back("no CPU topology under " + cpu_dir.string() +
                             "; using the affinity mask alone");
      online = affinity;
    }
  }
  budget.online_count = static_cast<int>(online.size());

  std::vector<int> mask = affinity;
  std::sort(mask.begin(), mask.end());
  std::vector<int> allowed = Intersect(online, mask);

  // cgroups: quota and cpuset.
  std::optional<std::vector<int>> cpuset;
  fs::path mount = base / "sys/fs/cgroup";
  for (const auto& entry : ReadProcCgroup(base / "proc/self/cgroup")) {
    if (entry.controllers.empty() && entry.controllers_text.empty()) {
      ReadCgroupV2(mount, entry.path, budget, cpuset);
    } else {
      ReadCgroupV1(mount, entry, budget, cpuset);
    }
  }
  if (cpuset) allowed = Intersect(allowed, *cpuset);
  budget.allowed = allowed;

  // NUMA nodes: nodeN/cpulist.
  std::map<int, int> node_of;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(base / "sys/devices/system/node", ec)) {
    auto name = entry.path().filename().string();
    if (name.rfind("node", 0) != 0) continue;
    auto node = ParseInt(std::string_view(name).substr(4));
    if (!node) continue;
    auto line = ReadLine(entry.path() / "cpulist");
    if (!line) continue;
    if (auto cpus = ParseCpuList(*line)) {
      for (int c : *cpus) node_of[c] = static_cast<int>(*node);
    }
  }

  for (int id : allowed) {
    LogicalCpu cpu;
    cpu.id = id;
    fs::path topo = cpu_dir / ("cpu" + std::to_string(id)) / "topology";
    auto core = ReadInt(topo / "core_id");
    auto package = ReadInt(topo / "physical_package_id");
    std::optional<std::vector<int>> siblings;
    if (auto line = ReadLine(topo / "thread_siblings_list")) siblings = ParseCpuList(*line);
    if (!core || !package) {
      // Without topology every logical CPU counts as its own core (a note says so once).
      if (budget.notes.empty() || budget.notes.back().rfind("no topology", 0) != 0) {
        budget.notes.push_back("no topology for cpu" + std::to_string(id) +
                               ": treating each logical CPU as a physical core");
      }
    }
    cpu.core_id = core.value_or(id);
    cpu.package_id = package.value_or(0);
    cpu.siblings = siblings && !siblings->empty() ? *siblings : std::vector<int>{id};
    auto it = node_of.find(id);
    cpu.numa_node = it == node_of.end() ? 0 : it->second;
    budget.cpus.push_back(std::move(cpu));
  }
  return budget;
}

int ThreadBudget(const CpuBudget& budget) {
  int threads = static_cast<int>(budget.allowed.size());
  if (budget.quota_cpus) {
    // The quota is a ratio of two integers: 1e-9 keeps an exact 2.0 from rounding up to 3.
    threads = std::min(threads, static_cast<int>(std::ceil(*budget.quota_cpus - 1e-9)));
  }
  return std::max(1, threads);
}

std::vector<int> CurrentAffinity() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) out.push_back(c);
  }
  return out;
}

bool PinProcess(const std::vector<int>& cpus, std::string* error) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) CPU_SET(c, &set);
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    int tid = 0;
    auto name = task.path().filename().string();
    std::from_chars(name.data(), name.data() + name.size(), tid);
    // A thread that ended since the listing is gone, not a failure.
    if (tid > 0 && sched_setaffinity(tid, sizeof set, &set) != 0 && errno != ESRCH) {
      *error = "cannot pin thread " + name + " to cpus " + FormatCpuList(cpus) + ": " +
               std::strerror(errno);
      return false;
    }
  }
  if (ec) {
    *error = "cannot list /proc/self/task: " + ec.message();
    return false;
  }
  return true;
}

}  // namespace sg
