// OnlineComparator: the comparator hosted inside the gateway. The gateway's I/O threads hand
// pair records over a bounded queue (Offer never blocks and never judges); one worker thread
// judges them into a Comparison. RenderJson() gives the current comparison and verdict for
// `GET /admin/comparison`.
//
// Thread safety: every public method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>

#include <nlohmann/json_fwd.hpp>

#include "common/pair_record.h"
#include "comparator/compare_config.h"
#include "comparator/comparison.h"
#include "comparator/gates.h"

namespace sg::comparator {

struct OnlineOptions {
  size_t queue_capacity = 4096;  // records waiting to be judged; more are dropped and counted
  std::string run = "online";    // run name shown in reports
  std::string rules_file;        // where the rules and gates came from, shown in reports
  std::string gates_file;
  // Checkpoints (comparator/checkpoint.h, docs/comparator.md): the state is written to
  // checkpoint_path every checkpoint_interval while pairs arrive, and at Close; at start a
  // checkpoint of this run (`run`) and this config (`config_sha256`) is resumed, any other is
  // refused, logged and set aside. Empty path: no checkpoints.
  std::string checkpoint_path;
  std::chrono::milliseconds checkpoint_interval = std::chrono::seconds(60);
  std::string config_sha256;  // CompareConfigHash of the rules' text
};

class OnlineComparator {
 public:
  // `gates` may be null: the rendered JSON then has no verdict. Starts the worker thread.
  OnlineComparator(std::shared_ptr<const CompareConfig> config,
                   std::shared_ptr<const GateConfig> gates, OnlineOptions options = {});
  // Close(): judges what is queued, then stops the worker.
  ~OnlineComparator();
  OnlineComparator(const OnlineComparator&) = delete;
  OnlineComparator& operator=(const OnlineComparator&) = delete;

  // Queues a record for judging. Returns false (and counts a drop) when the queue is full.
  // Cost on the caller's thread: one move and one lock of a short critical section.
  bool Offer(PairRecord record);
  bool Offer(MirrorCounters counters);

  // Blocks until every record offered before the call has been judged.
  void Flush();

  // Stops accepting (later offers are dropped and counted), judges every record already
  // queued, then stops the worker; the state stays readable (RenderJson, WriteReport).
  // Idempotent.
  void Close();

  struct QueueStats {
    uint64_t accepted = 0;
    uint64_t dropped = 0;
    uint64_t judged = 0;
    size_t depth = 0;
    size_t capacity = 0;
  };
  QueueStats queue_stats() const;

  // {"schema", "run", "generated_at", "inputs", "verdict" (when gates were given),
  //  "comparison", "queue": {accepted, dropped, judged, depth, capacity}}: report.json's
  // schema plus the queue. Cost grows with the reservoir size (the rank tests), not with pairs.
  std::string RenderJson() const;
  nlohmann::json Report() const;

  // Writes report.json/.md/.html for the current state into `dir`.
  bool WriteReport(const std::string& dir, std::string* error) const;

  struct CheckpointStats {
    std::string path;             // empty: no checkpoints
    std::string resumed;          // "": started empty; else what was resumed (pairs, when written)
    std::string refused;          // why a checkpoint found at start was refused ("" when none)
    uint64_t resumed_judged = 0;  // records judged before this process, from the checkpoint
    uint64_t written = 0;
    uint64_t failed = 0;
    std::string last_error;
  };
  CheckpointStats checkpoint_stats() const;

 private:
  void Run();
  // Writes the checkpoint now (worker thread or Close).
  void Checkpoint();

  std::shared_ptr<const CompareConfig> config_;
  std::shared_ptr<const GateConfig> gates_;
  OnlineOptions options_;

  // Guarded by queue_mutex_.
  mutable std::mutex queue_mutex_;
  std::condition_variable queue_cv_;    // work arrived or stopping
  std::condition_variable drained_cv_;  // judged_ advanced
  std::deque<std::variant<PairRecord, MirrorCounters>> queue_;
  bool stopping_ = false;
  uint64_t accepted_ = 0;
  uint64_t dropped_ = 0;
  uint64_t judged_ = 0;

  // Guarded by state_mutex_.
  mutable std::mutex state_mutex_;
  Comparison comparison_;
  CheckpointStats checkpoint_;

  std::once_flag joined_;  // Close() joins the worker once, whichever thread calls it
  std::thread worker_;     // last: started after everything it uses
};

}  // namespace sg::comparator
