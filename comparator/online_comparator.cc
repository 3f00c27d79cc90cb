#include "comparator/online_comparator.h"

#include <nlohmann/json.hpp>

#include "comparator/report_writer.h"

namespace sg::comparator {

using nlohmann::json;

OnlineComparator::OnlineComparator(std::shared_ptr<const CompareConfig> config,
                                   std::shared_ptr<const GateConfig> gates, OnlineOptions options)
    : config_(std::move(config)),
      gates_(std::move(gates)),
      options_(std::move(options)),
      comparison_(config_),
      worker_([this] { Run(); }) {}

OnlineComparator::~OnlineComparator() {
  Close();
}

void OnlineComparator::Close() {
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  std::call_once(joined_, [this] { worker_.join(); });
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
  std::deque<std::variant<PairRecord, MirrorCounters>> batch;
  for (;;) {
    {
      std::unique_lock lock(queue_mutex_);
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) return;
      batch.swap(queue_);
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
