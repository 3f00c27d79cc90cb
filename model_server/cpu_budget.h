// The CPU budget (affinity, cgroup cpuset and quota, topology) is common/cpu_budget.h, shared
// with the gateway; sg-serve's code names it in its own namespace.
#pragma once

#include "common/cpu_budget.h"

namespace sg::serve {

using sg::CpuBudget;
using sg::CurrentAffinity;
using sg::DiscoverCpuBudget;
using sg::FormatCpuList;
using sg::LogicalCpu;
using sg::ParseCpuList;
using sg::PinProcess;

}  // namespace sg::serve
