// Logging set-up shared by every executable: spdlog to stderr, human text by default or one JSON
// object per line (for log shippers), level from a flag.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace sg {

enum class LogFormat { kText, kJson };

struct LogOptions {
  std::string level = "info";           // trace, debug, info, warn, error, critical, off
  LogFormat format = LogFormat::kText;  // kJson: {"ts":..., "level":..., "logger":..., "msg":...}
};

// Adds --log-level and --log-json to `app`, writing into `options`.
void AddLoggingFlags(CLI::App& app, LogOptions& options);

// Installs the default logger named `program`, writing to stderr. Returns false (and logs nothing)
// when options.level is not a known level name.
bool SetUpLogging(const LogOptions& options, const std::string& program);

}  // namespace sg
