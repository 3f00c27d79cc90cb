#include "gateway/reopenable_file_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sg::gateway {

namespace {

std::FILE* OpenAppend(const std::string& path, std::string* error) {
  // Access lines hold client addresses and targets: not world-readable.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  std::FILE* file = fd < 0 ? nullptr : ::fdopen(fd, "ab");
  if (!file) {
    *error = "cannot open " + path + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
  }
  return file;
}

}  // namespace

std::shared_ptr<ReopenableFileSink> ReopenableFileSink::Open(const std::string& path,
                                                             std::string* error) {
  std::FILE* file = OpenAppend(path, error);
  if (!file) return nullptr;
  return std::shared_ptr<ReopenableFileSink>(new ReopenableFileSink(path, file));
}

ReopenableFileSink::~ReopenableFileSink() {
  if (file_) std::fclose(file_);
}

bool ReopenableFileSink::Reopen(std::string* error) {
  // Opened before the old one is closed: a failure leaves the sink as it was.
  std::FILE* file = OpenAppend(path_, error);
  if (!file) return false;
  std::lock_guard lock(mutex_);
  std::fclose(file_);
  file_ = file;
  return true;
}

void ReopenableFileSink::sink_it_(const spdlog::details::log_msg& message) {
  spdlog::memory_buf_t line;
  formatter_->format(message, line);
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

void ReopenableFileSink::flush_() {
  std::fflush(file_);
}

}  // namespace sg::gateway
