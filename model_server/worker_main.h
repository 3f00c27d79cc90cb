// The worker process: `sg-serve worker ...`, started by the front process, already pinned (the
// affinity is applied between fork and exec, before libtorch initialises any thread pool).
#pragma once

#include <string>

namespace sg::serve {

struct WorkerArgs {
  std::string socket_path;   // the front's Unix socket to connect to
  std::string spec;          // ModelConfigToJson() of the model to serve
  int threads = 1;           // intra-op threads (the plan's share)
  int interop_threads = 1;   // inter-op threads
  int batch_memory_fd = -1;  // the slot's shared batch memory (a memfd), -1: none
};

// Connects, loads and warms up the model, reports ready, then serves batches until the front
// closes the socket. Returns the process exit code (0 on a normal end, 3 when the model cannot
// be loaded, after telling the front why).
int RunWorker(const WorkerArgs& args);

}  // namespace sg::serve
