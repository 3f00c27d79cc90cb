#include "gateway/jsonl_pair_sink.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/atomic_file.h"
#include "common/zstd_file.h"

namespace sg::gateway {

namespace {

// The pair log holds request and response bodies: readable by its owner only (0600), whatever
// the umask. `mode` is "ab" or "wb".
std::FILE* OpenPrivate(const std::string& path, const char* mode) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (mode[0] == 'a' ? O_APPEND : O_TRUNC);
  const int fd = ::open(path.c_str(), flags, 0600);
  if (fd < 0) return nullptr;
  std::FILE* file = ::fdopen(fd, mode);
  if (!file) ::close(fd);
  return file;
}

}  // namespace

std::unique_ptr<JsonlPairSink> JsonlPairSink::Open(const PairLogConfig& config,
                                                   std::string* error) {
  std::FILE* file = OpenPrivate(config.path, "ab");
  if (!file) {
    *error = "cannot open pair log " + config.path + ": " + std::strerror(errno);
    return nullptr;
  }
  std::error_code ec;
  auto size = std::filesystem::file_size(config.path, ec);
  return std::unique_ptr<JsonlPairSink>(new JsonlPairSink(config, file, ec ? 0 : size));
}

JsonlPairSink::JsonlPairSink(const PairLogConfig& config, std::FILE* file, uint64_t size)
    : config_(config), file_(file), file_size_(size) {
  writer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "sg-pairlog");
    // Rotated files a previous run left plain (it stopped while compressing) are compressed now.
    ApplyRetention();
    StartCompression();
    WriterLoop();
    WaitForCompression();
  });
}

JsonlPairSink::~JsonlPairSink() {
  Close();
}

bool JsonlPairSink::Submit(PairRecord record) {
  return Enqueue(std::move(record));
}
bool JsonlPairSink::Submit(MirrorCounters counters) {
  return Enqueue(std::move(counters));
}

bool JsonlPairSink::Submit(CutoverDecision decision) {
  return Enqueue(std::move(decision));
}

bool JsonlPairSink::Enqueue(PairLogEntry entry) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (closing_ || queue_.size() >= static_cast<size_t>(config_.queue_capacity)) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    queue_.push_back(std::move(entry));
    // The first record starts the writer's batch delay; a full batch ends it.
    wake = queue_.size() == 1 || queue_.size() == kBatchSize;
  }
  if (wake) wake_.notify_one();
  return true;
}

void JsonlPairSink::Reopen() {
  {
    std::lock_guard lock(mutex_);
    reopen_ = true;
  }
  wake_.notify_one();
}

void JsonlPairSink::Close() {
  {
    std::lock_guard lock(mutex_);
    if (closing_) return;
    closing_ = true;
  }
  wake_.notify_one();
  if (writer_.joinable()) writer_.join();
  if (file_) {
    std::fclose(file_);
    file_ = nullptr;
  }
}

void JsonlPairSink::WriterLoop() {
  std::deque<PairLogEntry> batch;
  for (;;) {
    bool reopen = false;
    {
      std::unique_lock lock(mutex_);
      // Idle, the writer still wakes once a minute to apply max_age.
      if (!wake_.wait_for(lock, kRetentionPeriod,
                          [this] { return closing_ || reopen_ || !queue_.empty(); })) {
        lock.unlock();
        ApplyRetention();
        continue;
      }
      if (!reopen_) {
        wake_.wait_for(lock, kBatchDelay,
                       [this] { return closing_ || reopen_ || queue_.size() >= kBatchSize; });
      }
      if (queue_.empty() && closing_ && !reopen_) break;
      batch.swap(queue_);
      reopen = std::exchange(reopen_, false);
    }
    if (reopen) ReopenFile();
    // Encoding (base64, JSON) happens here, off the I/O threads.
    for (auto& entry : batch) {
      std::string line = std::visit([](const auto& e) { return EncodePairLogLine(e); }, entry);
      line += '\n';
      WriteLine(line);
    }
    batch.clear();
    if (file_) std::fflush(file_);
    if (std::chrono::steady_clock::now() - last_retention_ >= kRetentionPeriod) ApplyRetention();
  }
}

void JsonlPairSink::WriteLine(const std::string& line) {
  if (!file_) return;
  if (file_size_ > 0 && file_size_ + line.size() > static_cast<uint64_t>(config_.max_file_bytes)) {
    Rotate();
    if (!file_) return;
  }
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size()) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  file_size_ += line.size();
  written_.fetch_add(1, std::memory_order_relaxed);
}

void JsonlPairSink::ReopenFile() {
  // Opened before the old one is closed: a failure keeps the old file.
  std::FILE* file = OpenPrivate(config_.path, "ab");
  if (!file) {
    spdlog::error("pair log: cannot reopen {}: {}", config_.path, std::strerror(errno));
    return;
  }
  if (file_) std::fclose(file_);
  file_ = file;
  std::error_code ec;
  auto size = std::filesystem::file_size(config_.path, ec);
  file_size_ = ec ? 0 : size;
  spdlog::info("pair log: reopened {}", config_.path);
}

void JsonlPairSink::Rotate() {
  std::fclose(file_);
  file_ = nullptr;
  // The files are renamed below: the compression of the last rotated one must be done first.
  WaitForCompression();
  // path.N is dropped, path.(i) -> path.(i+1), path -> path.1 (each in whichever form it has:
  // compressed, or plain when compression is off or failed).
  std::error_code ec;
  const std::string& path = config_.path;
  for (const char* suffix : {"", ".zst"}) {
    std::filesystem::remove(path + "." + std::to_string(config_.max_files) + suffix, ec);
    for (int i = config_.max_files - 1; i >= 1; --i) {
      std::filesystem::rename(path + "." + std::to_string(i) + suffix,
                              path + "." + std::to_string(i + 1) + suffix, ec);
    }
  }
  std::filesystem::rename(path, path + ".1", ec);
  file_ = OpenPrivate(path, "wb");
  file_size_ = 0;
  if (!file_) spdlog::error("pair log: cannot reopen {} after rotation", path);
  ApplyRetention();
  StartCompression(/*rotated=*/true);
}

void JsonlPairSink::StartCompression(bool rotated) {
  if (compressor_.joinable()) return;
  if (config_.compression != "zstd") {
    if (!rotated) return;
    // The finished file, then the folder: after a crash path.1 is there whole, the renames done.
    // (Retention may have removed path.1 already: then only the folder.)
    compressor_ = std::thread([path = config_.path] {
      pthread_setname_np(pthread_self(), "sg-pairlog-sync");
      std::string error;
      std::error_code ec;
      const bool kept = std::filesystem::exists(path + ".1", ec);
      if ((kept && !SyncFile(path + ".1", &error)) || !SyncFolderOf(path, &error)) {
        spdlog::error("pair log: rotation not known to be on disk: {}", error);
      }
    });
    return;
  }
  std::vector<std::string> plain;
  std::error_code ec;
  for (int i = 1; i <= config_.max_files; ++i) {
    std::string file = config_.path + "." + std::to_string(i);
    if (std::filesystem::is_regular_file(file, ec) && !IsZstdFile(file)) plain.push_back(file);
  }
  if (plain.empty()) return;
  compressing_.store(true, std::memory_order_release);
  compressor_ = std::thread([this, files = std::move(plain), level = config_.compression_level] {
    pthread_setname_np(pthread_self(), "sg-pairlog-zst");
    for (const auto& file : files) {
      std::string error;
      // The compressed file is complete (renamed into place) before the plain one goes: a
      // reader listing the folder in between sees both for that instant, never neither.
      if (!CompressFileZstd(file, file + ".zst", level, &error)) {
        spdlog::error("pair log: {} stays uncompressed: {}", file, error);
      } else if (::unlink(file.c_str()) != 0) {
        spdlog::error("pair log: cannot remove {}: {}", file, std::strerror(errno));
      }
    }
    // Each .zst was fsynced before its rename; the folder makes the renames, the rotation's
    // and the removals durable.
    std::string error;
    if (!SyncFolderOf(config_.path, &error)) {
      spdlog::error("pair log: rotation not known to be on disk: {}", error);
    }
    compressing_.store(false, std::memory_order_release);
  });
}

void JsonlPairSink::WaitForCompression() {
  if (compressor_.joinable()) compressor_.join();
}

void JsonlPairSink::ApplyRetention() {
  last_retention_ = std::chrono::steady_clock::now();
  if (config_.max_total_bytes <= 0 && config_.max_age.count() <= 0) return;
  // Not while a file is being compressed (its two forms would be counted twice, or one removed
  // under the compressor): the next period, or the next rotation, which waits for it.
  if (compressing_.load(std::memory_order_acquire)) return;
  std::error_code ec;
  struct Rotated {
    std::string file;
    uint64_t bytes;
    std::filesystem::file_time_type written;
  };
  std::vector<Rotated> rotated;  // newest (path.1) first
  uint64_t total = file_size_;
  for (int i = 1; i <= config_.max_files; ++i) {
    for (const std::string& file : {config_.path + "." + std::to_string(i),
                                    config_.path + "." + std::to_string(i) + ".zst"}) {
      auto bytes = std::filesystem::file_size(file, ec);
      if (ec) continue;
      auto written = std::filesystem::last_write_time(file, ec);
      if (ec) continue;
      rotated.push_back({file, bytes, written});
      total += bytes;
    }
  }
  const auto oldest_kept =
      std::filesystem::file_time_type::clock::now() -
      std::chrono::duration_cast<std::filesystem::file_time_type::duration>(config_.max_age);
  // The oldest go first.
  while (!rotated.empty()) {
    const Rotated& last = rotated.back();
    bool too_big =
        config_.max_total_bytes > 0 && total > static_cast<uint64_t>(config_.max_total_bytes);
    bool too_old = config_.max_age.count() > 0 && last.written < oldest_kept;
    if (!too_big && !too_old) break;
    if (std::filesystem::remove(last.file, ec)) {
      spdlog::info("pair log: removed {} ({} bytes): {}", last.file, last.bytes,
                   too_big ? "max_total_bytes" : "max_age");
    }
    total -= last.bytes;
    rotated.pop_back();
  }
}

}  // namespace sg::gateway
