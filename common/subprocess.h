// Starting, signalling and reaping child processes (model-server workers, test fixtures).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace sg {

struct SpawnOptions {
  // Environment changes applied to the parent's environment for the child.
  std::vector<std::pair<std::string, std::string>> set_env;  // default: none
  std::vector<std::string> unset_env;                        // default: none
  // Logical CPUs the child (and every thread it starts) may run on; empty: inherit.
  std::vector<int> cpu_affinity;
  // Files to receive the child's stdout/stderr (created, truncated); empty: inherit.
  std::string stdout_path;
  std::string stderr_path;
  // The child's working directory (after stdout_path and stderr_path are opened); empty: inherit.
  std::string working_dir;
  // Child receives SIGKILL if the parent dies first: no orphans after a crashed test or server.
  bool die_with_parent = true;
  // Descriptors of the parent that the child keeps, under the same numbers (their close-on-exec
  // flag is cleared in the child only).
  std::vector<int> keep_fds;
};

// A running child process. Destruction stops it (SIGTERM, then SIGKILL after a grace period) and
// reaps it, so no child outlives its owner, even when a test assertion fails. Move-only.
class Subprocess {
 public:
  // Starts argv[0] (looked up in PATH when it has no '/'). Returns nullopt and sets `error` when
  // the program cannot be started (exec failure is reported, not a silent exit 127).
  static std::optional<Subprocess> Spawn(const std::vector<std::string>& argv,
                                         const SpawnOptions& options, std::string* error);

  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();

  pid_t pid() const { return pid_; }

  // True while the child has not exited (reaps it if it has).
  bool Running();
  // Sends `signal` if the child is still running.
  void Signal(int signal);
  // Waits up to `timeout` for the child to exit; its wait status, or nullopt on timeout.
  std::optional<int> WaitFor(std::chrono::milliseconds timeout);
  // SIGTERM, wait up to `grace`, then SIGKILL; returns the wait status.
  int Stop(std::chrono::milliseconds grace = std::chrono::seconds(5));
  // Wait status once exited ("exited 3", "killed by signal 9"), for messages.
  std::optional<int> exit_status() const { return status_; }

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}
  bool TryReap();

  pid_t pid_ = -1;
  std::optional<int> status_;
};

// "exited with code 3", "killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int status);

}  // namespace sg
