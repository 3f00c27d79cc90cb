// `sg-serve doctor`: what hurts CPU inference on this machine, as findings over plain data.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "model_server/cpu_plan.h"

namespace sg::serve {

// One GPU as the driver's nvidia-smi lists it.
struct GpuDevice {
  int index = 0;
  std::string name;            // "NVIDIA H100 80GB HBM3"
  std::string memory;          // "81559 MiB"
  std::string driver_version;  // "550.54.15"
};

// What the GPU side of this machine offers sg-serve's `device: cuda`.
struct GpuInfo {
  bool torch_has_cuda = false;        // the libtorch sg-serve is built against has CUDA
  int device_count = 0;               // torch::cuda::device_count(): devices libtorch can use
  std::vector<GpuDevice> nvidia_smi;  // empty when nvidia-smi is absent or fails
};

struct DoctorInput {
  CpuBudget budget;
  CpuPlan plan;
  // Environment variables that matter (OMP_*, GOMP_*, MKL_*, OPENBLAS_*), name -> value.
  std::map<std::string, std::string> env;
  // Text of /proc/self/maps after libtorch has loaded (which BLAS is really mapped).
  std::string maps;
};

struct Finding {
  enum class Level { kOk, kWarn, kBad };
  Level level = Level::kOk;
  std::string topic;  // "blas", "plan", "hyperthreads", "quota", "openmp", "gpu"
  std::string message;
};

std::vector<Finding> Diagnose(const DoctorInput& input);

// The BLAS library files mapped in `maps` (paths containing libblas, openblas, mkl, blis).
std::vector<std::string> MappedBlasLibraries(const std::string& maps);

// `nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader`
// output, one device per line; lines that do not have the four fields are skipped.
std::vector<GpuDevice> ParseNvidiaSmiCsv(const std::string& text);

// Probes libtorch (CUDA built in, device count) and runs nvidia-smi for the names. Defined in
// torch_runner.cc: callers link sg_model_server_torch.
GpuInfo ProbeGpus();

// The "gpu" finding: what `device: cuda` will do here (refused, or which devices serve it).
Finding DiagnoseGpu(const GpuInfo& gpu);

// "ok    blas: ..." lines.
std::string FormatFindings(const std::vector<Finding>& findings);

}  // namespace sg::serve
