#include "comparator/online_comparator.h"

#include <malloc.h>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "comparator/checkpoint.h"
#include "comparator/report_writer.h"

namespace sg::comparator {

using nlohmann::json;

OnlineComparator::OnlineComparator(std::shared_ptr<const CompareConfig> config,
                                   std::shared_ptr<const GateConfig> gates, OnlineOptions options)
    : config_(std::move(config)),
      gates_(std::move(gates)),
      options_(std::move(options)),
      comparison_(config_),
      worker_([this] { Run(); }) {
  if (options_.checkpoint_path.empty()) return;
  std::lock_guard lock(state_mutex_);
  checkpoint_.path = options_.checkpoint_path;
  const LoadedCheckpoint loaded = LoadCheckpoint(
      options_.checkpoint_path, {options_.run, options_.config_sha256}, config_, &comparison_);
  switch (loaded.result) {
    case LoadedCheckpoint::Result::kNone:
      spdlog::info("comparison checkpoint {}: none yet, run \"{}\" starts empty",
                   options_.checkpoint_path, options_.run);
      break;
    case LoadedCheckpoint::Result::kLoaded:
      checkpoint_.resumed_judged = loaded.judged;
      checkpoint_.resumed = std::to_string(loaded.pairs) + " pairs (" +
                            std::to_string(loaded.judged) + " records), written at " +
                            std::to_string(loaded.written_at_us) + " us";
      spdlog::info("comparison checkpoint {}: run \"{}\" resumed with {}", options_.checkpoint_path,
                   options_.run, checkpoint_.resumed);
      break;
    case LoadedCheckpoint::Result::kRefused:
      checkpoint_.refused = loaded.reason;
      spdlog::error(
          "comparison checkpoint {} refused: {}; set aside as {}; run \"{}\" starts empty",
          options_.checkpoint_path, loaded.reason,
          loaded.set_aside.empty() ? "(could not rename it)" : loaded.set_aside, options_.run);
      break;
  }
}

OnlineComparator::~OnlineComparator() {
  Close();
}

void OnlineComparator::Close() {
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  std::call_once(joined_, [this] {
    worker_.join();
    // The final state, whatever the interval: a graceful stop loses nothing.
    if (!options_.checkpoint_path.empty()) Checkpoint();
  });
}

void OnlineComparator::Checkpoint() {
  // Only the worker (or Close, after it stopped) changes the state, so it is encoded under the
  // lock and written (fsync included) outside it: /admin/comparison and the cutover's evaluations
  // do not wait for the disk.
  const uint64_t judged = queue_stats().judged;
  std::string text, error;
  try {
    std::lock_guard lock(state_mutex_);
    text = EncodeCheckpoint({options_.run, options_.config_sha256}, comparison_,
                            checkpoint_.resumed_judged + judged);
  } catch (const std::exception& e) {  // never the end of the gateway: counted as a failure
    error = options_.checkpoint_path + ": cannot encode the state: " + e.what();
  }
  const bool written =
      error.empty() && WriteFileAtomically(options_.checkpoint_path, text, 0644, &error);
  std::string().swap(text);
  // Encoding builds a tree many times the file (61 MB for a month's 5 MB), freed into this
  // thread's malloc arena, which glibc keeps: given back, the gateway's RSS follows its state
  // instead of its largest checkpoint so far (docs/gateway.md, Soak).
  ::malloc_trim(0);
  std::lock_guard lock(state_mutex_);
  if (written) {
    ++checkpoint_.written;
  } else {
    ++checkpoint_.failed;
    checkpoint_.last_error = error;
    spdlog::error("comparison checkpoint not written: {}", error);
  }
}

OnlineComparator::CheckpointStats OnlineComparator::checkpoint_stats() const {
  std::lock_guard lock(state_mutex_);
  return checkpoint_;
}

bool OnlineComparator::Offer(PairRecord record) {
  {
    std::lock_guard lock(queue_mutex_);
    if (stopping_ || queue_.size() >= options_.queue_capacity) {
      ++dropped_;
      return false;
    }
    queue_.emplace_back(std::move(record));
    ++accepted_;
  }
  queue_cv_.notify_one();
  return true;
}

bool OnlineComparator::Offer(MirrorCounters counters) {
  {
    std::lock_guard lock(queue_mutex_);
    if (stopping_ || queue_.size() >= options_.queue_capacity) {
      ++dropped_;
      return false;
    }
    queue_.emplace_back(std::move(counters));
    ++accepted_;
  }
  queue_cv_.notify_one();
  return true;
}

void OnlineComparator::Flush() {
  std::unique_lock lock(queue_mutex_);
  const uint64_t target = accepted_;
  drained_cv_.wait(lock, [&] { return judged_ >= target; });
}

OnlineComparator::QueueStats OnlineComparator::queue_stats() const {
  std::lock_guard lock(queue_mutex_);
  return {accepted_, dropped_, judged_, queue_.size(), options_.queue_capacity};
}

void OnlineComparator::Run() {
  using Clock = std::chrono::steady_clock;
  const bool checkpoints = !options_.checkpoint_path.empty();
  auto next_checkpoint = Clock::now() + options_.checkpoint_interval;
  bool dirty = false;  // judged something since the last checkpoint
  std::deque<std::variant<PairRecord, MirrorCounters>> batch;
  for (;;) {
    {
      std::unique_lock lock(queue_mutex_);
      auto ready = [&] { return stopping_ || !queue_.empty(); };
      if (checkpoints && dirty) {
        queue_cv_.wait_until(lock, next_checkpoint, ready);
      } else {
        queue_cv_.wait(lock, ready);
      }
      if (queue_.empty() && stopping_) return;  // Close() writes the last checkpoint
      batch.swap(queue_);
    }
    dirty |= !batch.empty();
    if (checkpoints && dirty && Clock::now() >= next_checkpoint) {
      Checkpoint();
      dirty = false;
      next_checkpoint = Clock::now() + options_.checkpoint_interval;
    }
    {
      std::lock_guard lock(state_mutex_);
      for (const auto& entry : batch) {
        if (const auto* pair = std::get_if<PairRecord>(&entry)) {
          comparison_.Add(*pair);
        } else {
          comparison_.AddCounters(std::get<MirrorCounters>(entry));
        }
      }
    }
    {
      std::lock_guard lock(queue_mutex_);
      judged_ += batch.size();
    }
    batch.clear();
    drained_cv_.notify_all();
  }
}

json OnlineComparator::Report() const {
  static const GateConfig kNoGates;
  ReportInputs inputs{options_.run, {"online"}, options_.rules_file, options_.gates_file, {}};
  json report;
  {
    std::lock_guard lock(state_mutex_);
    report = BuildReport(comparison_, gates_ ? *gates_ : kNoGates, inputs);
  }
  if (!gates_) report.erase("verdict");
  const QueueStats q = queue_stats();
  report["queue"] = {{"accepted", q.accepted},
                     {"dropped", q.dropped},
                     {"judged", q.judged},
                     {"depth", q.depth},
                     {"capacity", q.capacity}};
  if (!options_.checkpoint_path.empty()) {
    const CheckpointStats c = checkpoint_stats();
    report["checkpoint"] = {
        {"path", c.path},       {"interval_s", options_.checkpoint_interval.count() / 1000.0},
        {"resumed", c.resumed}, {"resumed_judged", c.resumed_judged},
        {"refused", c.refused}, {"written", c.written},
        {"failed", c.failed},   {"last_error", c.last_error}};
  }
  return report;
}

std::string OnlineComparator::RenderJson() const {
  return Report().dump(-1, ' ', false, json::error_handler_t::replace);
}

bool OnlineComparator::WriteReport(const std::string& dir, std::string* error) const {
  json report = Report();
  if (!report.contains("verdict")) {
    report["verdict"] = {
        {"verdict", "INSUFFICIENT_DATA"}, {"exit_code", 4}, {"gates", json::array()}};
  }
  return WriteReports(report, dir, error);
}

}  // namespace sg::comparator
