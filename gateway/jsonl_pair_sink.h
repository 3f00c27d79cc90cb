// JsonlPairSink: the pair log as JSONL (docs/pair-log.md), encoded and written by one writer
// thread fed through a bounded queue, with size-based rotation, rotated files compressed with
// zstd on a thread of their own, and retention by count, total size and age.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <variant>

#include "gateway/gateway_config.h"
#include "gateway/pair_sink.h"

namespace sg::gateway {

class JsonlPairSink : public PairSink {
 public:
  // Opens (appends to) config.path. Returns nullptr and sets `error` when it cannot be opened.
  static std::unique_ptr<JsonlPairSink> Open(const PairLogConfig& config, std::string* error);
  ~JsonlPairSink() override;

  bool Submit(PairRecord record) override;
  bool Submit(MirrorCounters counters) override;
  bool Submit(CutoverDecision decision) override;
  uint64_t dropped() const override { return dropped_.load(std::memory_order_relaxed); }
  void Close() override;
  // The writer reopens the path before its next batch (at once when idle).
  void Reopen() override;

  // Lines written so far (tests, metrics).
  uint64_t written() const { return written_.load(std::memory_order_relaxed); }

 private:
  JsonlPairSink(const PairLogConfig& config, std::FILE* file, uint64_t size);
  bool Enqueue(PairLogEntry entry);
  void WriterLoop();
  void WriteLine(const std::string& line);
  void Rotate();
  // Closes file_ and opens the path again (appending), for Reopen().
  void ReopenFile();
  // Makes the rotated files durable on compressor_, off the writer thread, unless it is already
  // running: compresses the plain rotated files (path.i) into path.i.zst (each fsynced before
  // its rename), or without compression fsyncs path.1 when `rotated`; then fsyncs the folder, so
  // the renames, the new files and the removals are on disk. WaitForCompression() joins it (the
  // writer calls it before renaming files).
  void StartCompression(bool rotated = false);
  void WaitForCompression();
  // Removes the oldest rotated files past max_total_bytes and max_age (writer thread).
  void ApplyRetention();

  // The writer wakes for a batch, not for every record: when the queue gets its first record it
  // waits up to kBatchDelay for kBatchSize of them (a wake-up per record costs the I/O threads a
  // futex call and the machine a context switch each; at 20k pairs/s that is most of the sink's
  // cost). Lines reach the file at most kBatchDelay late.
  static constexpr size_t kBatchSize = 64;
  static constexpr std::chrono::milliseconds kBatchDelay{20};
  // How often max_total_bytes and max_age are applied besides at each rotation.
  static constexpr std::chrono::seconds kRetentionPeriod{60};

  const PairLogConfig config_;
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> written_{0};
  // Guarded by mutex_.
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<PairLogEntry> queue_;
  bool closing_ = false;
  bool reopen_ = false;  // Reopen() was called: the writer reopens the file
  // Owned by the writer thread.
  std::FILE* file_;
  uint64_t file_size_;
  std::chrono::steady_clock::time_point last_retention_{};
  std::thread compressor_;                // started and joined by the writer thread only
  std::atomic<bool> compressing_{false};  // compressor_ has not finished yet
  std::thread writer_;
};

}  // namespace sg::gateway
