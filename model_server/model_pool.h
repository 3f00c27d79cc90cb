// The front process's side of one model: a bounded job queue, dynamic batching and one slot per
// worker process. Each slot has a thread that starts its pinned worker, feeds it batches over a
// Unix socket and waits for the replies (blocking, off the I/O threads; inference itself runs
// only in the worker). A worker that dies fails only its in-flight jobs (503) and is restarted
// on the same CPUs; a reply later than the response timeout fails the batch (504) and the worker
// is replaced.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/metrics.h"
#include "model_server/cpu_plan.h"
#include "model_server/serve_config.h"
#include "model_server/server_timing.h"

namespace sg {
class Subprocess;
}

namespace sg::serve {

struct BatchTimings;

// Called exactly once per job, from a pool thread, with the HTTP status, the JSON body and where
// the job's time went.
using JobCallback =
    std::function<void(int status, std::string body, const RequestTimings& timings)>;

// Metrics of one model (references into the server's registry).
// TorchServe's own per-request counters are the front's (ts_metrics.h): they are labelled by the
// version a request named.
struct PoolMetrics {
  Histogram* latency = nullptr;          // request latency (s), enqueue to reply
  Histogram* queue_latency = nullptr;    // time in queue (s)
  Histogram* batch_size = nullptr;       // samples per batch
  Family<Counter>* responses = nullptr;  // by status code
  Counter* worker_restarts = nullptr;
  // Per batch, as measured by the worker (s).
  Histogram* worker_preprocess = nullptr;
  Histogram* worker_forward = nullptr;
  Histogram* worker_postprocess = nullptr;
};

struct PoolEnvironment {
  std::string self_exe;    // this binary, re-executed as `sg-serve worker`
  std::string socket_dir;  // private directory for the workers' Unix sockets
  std::string log_level = "info";
  std::chrono::milliseconds worker_start_timeout{120000};  // load + warm-up
};

class ModelPool {
 public:
  ModelPool(ModelConfig model, PoolEnvironment env, PoolMetrics metrics);
  ~ModelPool();  // Stop(0)
  ModelPool(const ModelPool&) = delete;
  ModelPool& operator=(const ModelPool&) = delete;

  // Starts one worker per entry (previous workers are stopped first; queued jobs stay queued).
  void SetWorkers(const std::vector<WorkerCpus>& workers);

  enum class SubmitResult { kQueued, kQueueFull, kStopping };
  // Queues `body`; `done` is called later. When not queued, `done` is not called.
  // `kind` is an InputKind (0: the model's handler).
  SubmitResult Submit(std::string body, JobCallback done, int kind = 0);

  // Counts a prediction the front answered itself, without queueing it (input its
  // preprocessing refused), as a reply with `status`.
  void CountFrontReply(int status);

  // Stops accepting, waits up to `grace` for queued and in-flight jobs, fails the rest (503),
  // stops the workers. Idempotent.
  void Stop(std::chrono::milliseconds grace);

  const ModelConfig& model() const { return model_; }
  int ready_workers() const;
  int min_workers() const;
  // TorchServe's describe-model entry (jobQueueStatus included), plus pinning and threads.
  nlohmann::json Describe() const;
  // Waits until every worker is READY (true), or one has failed to start (false, with its reason
  // in `error`), or `deadline`, or Stop (false). True at once with no workers.
  bool WaitReady(std::chrono::steady_clock::time_point deadline, std::string* error) const;
  // Predictions waiting: queued, and sent ahead to a busy worker.
  size_t pending() const;
  // Why a worker last refused to start (model file, labels, warm-up), empty when none did.
  std::string fatal_error() const;

 private:
  struct Job {
    uint64_t id = 0;
    std::string body;
    int kind = 0;
    JobCallback done;
    std::chrono::steady_clock::time_point enqueued;
    std::chrono::steady_clock::time_point dispatched;
  };
  // A batch sent to a worker and not answered yet. A worker answers its batches in order: the
  // first one in flight is the one it runs, the others (dispatch_ahead) wait in it.
  struct InFlight {
    std::vector<Job> jobs;
    std::chrono::steady_clock::time_point deadline;  // the first job's response timeout
  };
  struct Slot;

  // The slot's thread: starts its worker, sends it batches (TakeBatch) while ReadReplies, on a
  // thread of its own, answers them; restarts the worker when it is gone.
  void RunSlot(Slot* slot);
  bool StartWorker(Slot* slot, std::unique_ptr<Subprocess>* process, int* fd);
  // Waits until the worker has room (one batch in flight, two with dispatch_ahead) and jobs to
  // fill it; moves them into a new InFlight at the back of the slot's and returns it. nullptr
  // when the slot stops or its worker is gone.
  InFlight* TakeBatch(Slot* slot);
  // The kBatch payload for `batch`: preprocessed samples go into the slot's shared batch
  // memory (the next lane) when they fit, everything else inline.
  std::string EncodeForWorker(Slot* slot, const InFlight& batch);
  // Reads the worker's replies and answers the first batch in flight with each, until the
  // connection ends: the worker died, timed out (it is killed), sent a bad reply (killed) or
  // the slot closed the connection. Then marks the worker gone, with the verdict for the batch
  // it was running.
  void ReadReplies(Slot* slot, int fd, Subprocess& process);
  void Requeue(std::vector<Job>& batch);
  // `worker`: the stages the worker reported for the job's batch, when it answered.
  void Finish(Job& job, int status, std::string body, const BatchTimings* worker = nullptr);
  // Stops and joins every slot. kill_workers: SIGKILL busy workers first (their in-flight
  // requests get 503) instead of waiting up to response_timeout for them.
  void StopSlots(bool kill_workers);
  void ExpireLoop();
  void SetStatus(Slot* slot, const std::string& status, pid_t pid);

  const ModelConfig model_;
  const PoolEnvironment env_;
  const PoolMetrics metrics_;
  std::atomic<uint64_t> next_id_{1};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> in_flight_{0};

  std::mutex slots_mutex_;  // serialises SetWorkers and Stop
  // Guarded by mutex_.
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;  // queue changes, slot stops, answered batches, workers gone
  std::condition_variable expire_cv_;   // wakes the expiry thread at destruction
  std::deque<Job> queue_;
  // Jobs sent to a worker behind the batch it runs (dispatch_ahead): still waiting, so they
  // count against job_queue_size and as pending.
  size_t ahead_ = 0;
  std::vector<std::unique_ptr<Slot>> slots_;
  bool stopping_ = false;
  bool expire_stop_ = false;
  std::string fatal_error_;

  std::thread expire_thread_;
};

}  // namespace sg::serve
