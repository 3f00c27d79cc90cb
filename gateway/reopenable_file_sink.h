// ReopenableFileSink: an spdlog sink appending to a file that can be reopened by name, so that
// after logrotate renamed the file a SIGHUP makes the gateway write to a new one (the access log
// with `access_log_path`). Every line is flushed, as the stdout sink does. Thread-safe.
#pragma once

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include <spdlog/sinks/base_sink.h>

namespace sg::gateway {

class ReopenableFileSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  // Opens (appends to, creates 0640) `path`. nullptr with `error` set when it cannot.
  static std::shared_ptr<ReopenableFileSink> Open(const std::string& path, std::string* error);
  ~ReopenableFileSink() override;

  // Closes the file and opens `path` again (a new file if it was renamed). False with `error`
  // set when it cannot be opened: the sink keeps writing to the file it had.
  bool Reopen(std::string* error);
  const std::string& path() const { return path_; }

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override;
  void flush_() override;

 private:
  ReopenableFileSink(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}

  const std::string path_;
  std::FILE* file_;  // guarded by base_sink's mutex_
};

}  // namespace sg::gateway
