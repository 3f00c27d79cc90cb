#include "model_server/doctor.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

#include "common/strings.h"

namespace sg::serve {

std::vector<std::string> MappedBlasLibraries(const std::string& maps) {
  std::set<std::string> found;
  std::istringstream in(maps);
  std::string line;
  while (std::getline(in, line)) {
    auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    std::string name = ToLowerAscii(std::filesystem::path(path).filename().string());
    if (name.find("blas") != std::string::npos || name.find("mkl") != std::string::npos ||
        name.find("blis") != std::string::npos) {
      found.insert(path);
    }
  }
  return {found.begin(), found.end()};
}

std::vector<GpuDevice> ParseNvidiaSmiCsv(const std::string& text) {
  std::vector<GpuDevice> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields;
    std::istringstream cells(line);
    std::string cell;
    while (std::getline(cells, cell, ',')) {
      auto first = cell.find_first_not_of(" \t\r");
      auto last = cell.find_last_not_of(" \t\r");
      fields.push_back(first == std::string::npos ? "" : cell.substr(first, last - first + 1));
    }
    if (fields.size() != 4 || fields[1].empty()) continue;
    GpuDevice d;
    try {
      d.index = std::stoi(fields[0]);
    } catch (const std::exception&) {
      continue;
    }
    d.name = fields[1];
    d.memory = fields[2];
    d.driver_version = fields[3];
    out.push_back(std::move(d));
  }
  return out;
}

Finding DiagnoseGpu(const GpuInfo& gpu) {
  using Level = Finding::Level;
  std::string names;
  for (const auto& d : gpu.nvidia_smi) {
    if (!names.empty()) names += ", ";
    names += std::to_string(d.index) + ": " + d.name;
    if (!d.memory.empty()) names += " (" + d.memory + ")";
  }
  std::string driver =
      gpu.nvidia_smi.empty() ? std::string() : ", driver " + gpu.nvidia_smi.front().driver_version;
  if (!gpu.torch_has_cuda) {
    if (gpu.nvidia_smi.empty()) {
      return {Level::kOk, "gpu",
              "libtorch built without CUDA and no GPU listed by nvidia-smi: device cuda "
              "is refused at start-up"};
    } else {
      return {Level::kWarn, "gpu",
              std::to_string(gpu.nvidia_smi.size()) + " GPU(s) here (" + names + driver +
                  ") but this libtorch is CPU-only: device cuda is refused; build "
                  "against a CUDA libtorch (-DSG_TORCH_FROM_PYTHON=ON)"};
    }
  } else if (gpu.device_count == 0) {
    return {Level::kWarn, "gpu",
            "libtorch has CUDA but sees no device (driver, CUDA_VISIBLE_DEVICES): device "
            "cuda is refused at start-up"};
  } else {
    return {Level::kOk, "gpu",
            std::to_string(gpu.device_count) + " CUDA device(s) for libtorch" +
                (names.empty() ? std::string(" (nvidia-smi not found: no names)")
                               : ": " + names + driver)};
  }
}

std::vector<Finding> Diagnose(const DoctorInput& input) {
  using Level = Finding::Level;
  std::vector<Finding> out;

  // BLAS: the reference libblas is 10-40x slower than OpenBLAS/MKL for inference.
  auto libs = MappedBlasLibraries(input.maps);
  bool fast = false, reference = false;
  std::string list;
  for (const auto& lib : libs) {
    std::string real = lib;
    std::error_code ec;
    auto resolved = std::filesystem::canonical(lib, ec);
    if (!ec) real = resolved.string();
    std::string lower = ToLowerAscii(real);
    if (lower.find("openblas") != std::string::npos || lower.find("mkl") != std::string::npos ||
        lower.find("blis") != std::string::npos) {
      fast = true;
    } else {
      reference = true;
    }
    if (!list.empty()) list += ", ";
    list += real;
  }
  if (libs.empty()) {
    out.push_back({Level::kWarn, "blas", "no BLAS library is mapped after libtorch loaded"});
  } else if (fast) {
    out.push_back({Level::kOk, "blas", "loaded: " + list});
  } else if (reference) {
    out.push_back({Level::kBad, "blas",
                   "reference BLAS loaded (" + list +
                       "): 10-40x slower; run scripts/setup or update-alternatives to OpenBLAS"});
  }

  // The plan: oversubscription and waste.
  int threads = 0;
  for (const auto& w : input.plan.workers) threads += w.threads;
  if (input.plan.budget > 0 && threads > input.plan.budget) {
    out.push_back({Level::kBad, "plan",
                   std::to_string(threads) + " inference threads on a budget of " +
                       std::to_string(input.plan.budget) + " CPUs (oversubscribed)"});
  } else {
    out.push_back({Level::kOk, "plan",
                   std::to_string(input.plan.workers.size()) + " workers, " +
                       std::to_string(threads) + " threads on a budget of " +
                       std::to_string(input.plan.budget) + " CPUs"});
  }
  for (const auto& w : input.plan.warnings) out.push_back({Level::kWarn, "plan", w});

  // Hyperthreads.
  if (input.plan.logical_cpus > input.plan.physical_cores) {
    out.push_back({Level::kWarn, "hyperthreads",
                   std::to_string(input.plan.logical_cpus) + " logical CPUs on " +
                       std::to_string(input.plan.physical_cores) +
                       " physical cores: siblings share execution units; the plan uses one "
                       "per core"});
  } else {
    out.push_back({Level::kOk, "hyperthreads", "no hyperthread siblings in the allowed CPUs"});
  }

  // Quota below what the process sees.
  int visible = static_cast<int>(input.budget.allowed.size());
  if (input.budget.quota_cpus && *input.budget.quota_cpus < visible) {
    out.push_back({Level::kWarn, "quota",
                   "cgroup quota " + FormatDouble(*input.budget.quota_cpus) + " CPUs (" +
                       input.budget.quota_source + ") is below the " + std::to_string(visible) +
                       " visible CPUs: code sizing thread pools from the core count is throttled"});
  } else if (input.budget.quota_cpus) {
    out.push_back(
        {Level::kOk, "quota", "cgroup quota " + FormatDouble(*input.budget.quota_cpus) + " CPUs"});
  } else {
    out.push_back({Level::kOk, "quota", "no cgroup CPU quota"});
  }
  if (input.budget.online_count > visible) {
    out.push_back({Level::kWarn, "cpuset",
                   "only " + std::to_string(visible) + " of " +
                       std::to_string(input.budget.online_count) +
                       " online CPUs are allowed (affinity/cpuset)"});
  }

  // OpenMP pinning variables: libgomp pins every thread of every worker to the same CPUs.
  bool any_omp = false;
  for (const char* name : {"OMP_PROC_BIND", "GOMP_CPU_AFFINITY", "OMP_PLACES", "KMP_AFFINITY"}) {
    auto it = input.env.find(name);
    if (it == input.env.end()) continue;
    any_omp = true;
    out.push_back({Level::kWarn, "openmp",
                   std::string(name) + "=" + it->second +
                       " is set: sg-serve removes it from workers (it would pin every worker's "
                       "threads to the same CPUs)"});
  }
  for (const char* name : {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"}) {
    auto it = input.env.find(name);
    if (it == input.env.end()) continue;
    any_omp = true;
    out.push_back({Level::kWarn, "openmp",
                   std::string(name) + "=" + it->second +
                       " is set: sg-serve sets thread counts from the plan instead"});
  }
  if (!any_omp) out.push_back({Level::kOk, "openmp", "no OpenMP pinning variables set"});
  return out;
}

std::string FormatFindings(const std::vector<Finding>& findings) {
  std::ostringstream out;
  for (const auto& f : findings) {
    const char* level = f.level == Finding::Level::kOk     ? "ok  "
                        : f.level == Finding::Level::kWarn ? "warn"
                                                           : "BAD ";
    out << level << "  " << f.topic << ": " << f.message << "\n";
  }
  return out.str();
}

}  // namespace sg::serve
