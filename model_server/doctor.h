// `sg-serve doctor`: what hurts CPU inference on this machine, as findings over plain data.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "model_server/cpu_plan.h"

namespace sg::serve {

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
  std::string topic;  // "blas", "plan", "hyperthreads", "quota", "openmp"
  std::string message;
};

std::vector<Finding> Diagnose(const DoctorInput& input);

// The BLAS library files mapped in `maps` (paths containing libblas, openblas, mkl, blis).
std::vector<std::string> MappedBlasLibraries(const std::string& maps);

// "ok    blas: ..." lines.
std::string FormatFindings(const std::vector<Finding>& findings);

}  // namespace sg::serve
