#include "tests/integration/deploy/scoped_cgroup.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

namespace sg::testing {
namespace {

namespace fs = std::filesystem;

bool WriteText(const fs::path& path, const std::string& text, std::string* error) {
  std::ofstream out(path);
  out << text;
  out.flush();
  if (!out) {
    *error = "cannot write '" + text + "' to " + path.string() + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

std::string FirstLine(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

int OnlineCpuCount() {
  return static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
}

ScopedCgroup::ScopedCgroup(double quota_cpus, const std::string& cpus) {
  const std::string name =
      "sg-deploy-test-" + std::to_string(getpid()) + "-" + std::to_string(counter_++);
  if (geteuid() != 0) {
    error_ = "not root: cgroups cannot be made";
    return;
  }
  const fs::path root = "/sys/fs/cgroup";
  if (fs::exists(root / "cgroup.controllers")) {
    version_ = 2;
    // The controllers must be enabled for the children of the root.
    std::string ignored;
    WriteText(root / "cgroup.subtree_control", "+cpu +cpuset", &ignored);
    dirs_.push_back(root / name);
  } else if (fs::exists(root / "cpu/cpu.cfs_quota_us") && fs::exists(root / "cpuset/cpuset.cpus")) {
    version_ = 1;
    dirs_.push_back(root / "cpu" / name);
    dirs_.push_back(root / "cpuset" / name);
  } else {
    error_ = "no cgroup v2 at /sys/fs/cgroup and no v1 cpu and cpuset hierarchies under it";
    return;
  }
  for (const auto& dir : dirs_) {
    std::error_code ec;
    if (!fs::create_directory(dir, ec)) {
      error_ = "cannot create " + dir.string() + ": " + ec.message();
      dirs_.pop_back();
      return;
    }
  }
  const fs::path cpu = dirs_[0];
  const fs::path cpuset = version_ == 2 ? dirs_[0] : dirs_[1];
  if (quota_cpus > 0) {
    const int period = 100000, quota = static_cast<int>(quota_cpus * period);
    bool ok = version_ == 2
                  ? WriteText(cpu / "cpu.max", std::to_string(quota) + " " + std::to_string(period),
                              &error_)
                  : WriteText(cpu / "cpu.cfs_period_us", std::to_string(period), &error_) &&
                        WriteText(cpu / "cpu.cfs_quota_us", std::to_string(quota), &error_);
    if (!ok) return;
  }
  if (version_ == 1) {
    // A v1 cpuset starts empty: copy the parent's memory nodes, and its CPUs unless given.
    if (!WriteText(cpuset / "cpuset.mems", FirstLine(cpuset.parent_path() / "cpuset.mems"),
                   &error_)) {
      return;
    }
    const std::string all = FirstLine(cpuset.parent_path() / "cpuset.cpus");
    if (!WriteText(cpuset / "cpuset.cpus", cpus.empty() ? all : cpus, &error_)) return;
  } else if (!cpus.empty() && !WriteText(cpuset / "cpuset.cpus", cpus, &error_)) {
    return;
  }
}

ScopedCgroup::~ScopedCgroup() {
  for (const auto& dir : dirs_) {
    // rmdir fails while a process that just exited is still being released: retry briefly.
    for (int i = 0; i < 100 && ::rmdir(dir.c_str()) != 0 && errno == EBUSY; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

std::vector<std::string> ScopedCgroup::Wrap(const std::vector<std::string>& command) const {
  std::string script;
  for (const auto& dir : dirs_) script += "echo $$ > " + (dir / "cgroup.procs").string() + " && ";
  script += "exec \"$@\"";
  std::vector<std::string> argv = {"/bin/sh", "-c", script, "sh"};
  argv.insert(argv.end(), command.begin(), command.end());
  return argv;
}

}  // namespace sg::testing
