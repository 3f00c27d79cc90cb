// A cgroup made for one test, with a CPU quota and a cpuset, and a way to start a program in it
// (the deploy tests' CPU-limit cases: sg-serve's plan and workers, the gateway's I/O threads).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace sg::testing {

// CPUs the machine has online.
int OnlineCpuCount();

// A cgroup of this test with a CPU quota (in CPUs; 0: none) and a cpuset ("": the parent's):
// v2 when /sys/fs/cgroup is the unified hierarchy, else the v1 `cpu` and `cpuset` hierarchies.
// Removed on destruction (after every process in it has exited). Needs root; error() says why
// the cgroup could not be made (tests skip then).
class ScopedCgroup {
 public:
  ScopedCgroup(double quota_cpus, const std::string& cpus);
  ~ScopedCgroup();
  ScopedCgroup(const ScopedCgroup&) = delete;
  ScopedCgroup& operator=(const ScopedCgroup&) = delete;

  // "" when the cgroup is ready, else why not.
  const std::string& error() const { return error_; }
  int version() const { return version_; }

  // argv that runs `program args...` inside this cgroup: a shell moves itself in, then execs.
  std::vector<std::string> Wrap(const std::vector<std::string>& command) const;

 private:
  static inline int counter_ = 0;
  int version_ = 0;
  std::string error_;
  std::vector<std::filesystem::path> dirs_;
};

}  // namespace sg::testing
