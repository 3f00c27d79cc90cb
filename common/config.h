// Config loading: JSON files into typed, immutable structs.
//
// A module writes one parse function per struct, over a ConfigNode (a JSON value that knows its
// file and JSON path) and an ObjectReader (reads keys of an object, remembers which were read, and
// rejects the rest as unknown keys). Every problem is reported as
//   configs/gateway.json: $.routes[0].mirrors[1].percent: must be in [0, 100], got 120
// Field-level problems are collected, so one run reports all of them; LoadConfigFile throws a
// ConfigError holding every problem. Exceptions are used only here, at start-up.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/strings.h"

namespace sg {

// Thrown by config parsing; what() is every problem, one per line.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

// Shared by every node of one document: the file name and the problems found so far.
struct ConfigContext {
  std::string file;
  std::vector<std::string> problems;
};

// One JSON value inside a config document. Cheap to copy; refers to the document, which must
// outlive it.
class ConfigNode {
 public:
  ConfigNode(const nlohmann::json& value, std::shared_ptr<ConfigContext> context, std::string path);

  const nlohmann::json& json() const { return *value_; }
  const std::string& path() const { return path_; }
  const std::string& file() const { return context_->file; }

  // "file: path: reason".
  std::string Describe(std::string_view reason) const;
  // Throws ConfigError with Describe(reason).
  [[noreturn]] void Fail(std::string_view reason) const;
  // Records Describe(reason) as a problem and carries on.
  void Report(std::string_view reason) const;
  // Records every problem of `error` and carries on.
  void Absorb(const ConfigError& error) const;

  // Typed conversions. Each throws (via Fail) when the value has the wrong type or range.
  std::string AsString() const;
  bool AsBool() const;
  double AsNumber() const;
  int64_t AsInt() const;
  // A duration written as a string with a unit: "250ms", "5s", "1.5s", "2m", "100us".
  std::chrono::microseconds AsDuration() const;
  std::vector<std::string> AsStringList() const;
  template <typename T>
  T As() const;

  // Array access; Fail()s when the value is not an array.
  std::vector<ConfigNode> Elements() const;

  ConfigNode Child(std::string_view key) const;
  ConfigNode Element(size_t index) const;

 private:
  const nlohmann::json* value_;
  std::shared_ptr<ConfigContext> context_;
  std::string path_;
};

// Reads the keys of one JSON object. Call Finish() when every known key was read: keys never read
// are reported as unknown (typos are errors, not silently ignored).
class ObjectReader {
 public:
  // Fail()s when node is not an object.
  explicit ObjectReader(const ConfigNode& node);

  bool Has(std::string_view key) const;
  std::optional<ConfigNode> Optional(std::string_view key);
  // Fail()s when the key is absent.
  ConfigNode Required(std::string_view key);

  // Value of `key`, or `fallback` when absent. A conversion problem is recorded and `fallback`
  // returned, so parsing continues and every problem is reported.
  template <typename T>
  T Get(std::string_view key, T fallback) {
    auto child = Optional(key);
    if (!child) return fallback;
    return Convert<T>(*child, std::move(fallback));
  }

  // Value of `key`; a missing key or a bad value is recorded and T{} returned.
  template <typename T>
  T Require(std::string_view key) {
    if (!Has(key)) {
      node_.Report("missing required key \"" + std::string(key) + "\"");
      return T{};
    }
    return Convert<T>(Required(key), T{});
  }

  // Like Get, then checks lo <= value <= hi ("must be in [lo, hi], got v").
  template <typename T>
  T GetInRange(std::string_view key, T fallback, T lo, T hi);

  // Records one problem per key that was never read.
  void Finish();

  const ConfigNode& node() const { return node_; }

 private:
  template <typename T>
  static T Convert(const ConfigNode& node, T fallback) {
    try {
      return node.As<T>();
    } catch (const ConfigError& e) {
      node.Absorb(e);
      return fallback;
    }
  }

  ConfigNode node_;
  std::vector<std::string> read_;
};

// Parses `text` as the config document named `file`, runs `parse` on its root and returns the
// result. Throws ConfigError with every problem found (syntax errors carry line and column).
template <typename T>
T ParseConfig(std::string_view text, const std::string& file,
              const std::function<T(const ConfigNode&)>& parse);

// Reads `path` and parses it as above. A missing or unreadable file is a ConfigError too.
template <typename T>
T LoadConfigFile(const std::string& path, const std::function<T(const ConfigNode&)>& parse);

// Reads a small input file named in a config (the config itself, a token file): it must be a
// regular file of at most `max_bytes`, so /dev/zero, a FIFO or a directory is an error at once
// instead of a hang or unbounded memory. On failure returns false and sets `error` to the reason,
// without the path.
bool ReadSmallFile(const std::string& path, std::size_t max_bytes, std::string* contents,
                   std::string* error);

// The largest config file LoadConfigFile reads.
inline constexpr std::size_t kMaxConfigFileBytes = 64u << 20;

// Non-template core of the two functions above.
namespace config_internal {
std::shared_ptr<const nlohmann::json> ParseDocument(std::string_view text,
                                                    const std::shared_ptr<ConfigContext>& context);
std::string ReadFile(const std::string& path);
void ThrowIfProblems(const ConfigContext& context);
}  // namespace config_internal

template <typename T>
T ObjectReader::GetInRange(std::string_view key, T fallback, T lo, T hi) {
  T value = Get<T>(key, fallback);
  if (value < lo || value > hi) {
    auto child = Optional(key);
    std::string reason = "must be in [" + FormatDouble(static_cast<double>(lo)) + ", " +
                         FormatDouble(static_cast<double>(hi)) + "], got " +
                         FormatDouble(static_cast<double>(value));
    (child ? *child : node_).Report(reason);
    return fallback;
  }
  return value;
}

template <typename T>
T ParseConfig(std::string_view text, const std::string& file,
              const std::function<T(const ConfigNode&)>& parse) {
  auto context = std::make_shared<ConfigContext>();
  context->file = file;
  auto document = config_internal::ParseDocument(text, context);
  std::optional<T> result;
  try {
    result.emplace(parse(ConfigNode(*document, context, "$")));
  } catch (const ConfigError& e) {
    for (const auto& p : e.problems()) context->problems.push_back(p);
  }
  config_internal::ThrowIfProblems(*context);
  return std::move(*result);
}

template <typename T>
T LoadConfigFile(const std::string& path, const std::function<T(const ConfigNode&)>& parse) {
  return ParseConfig<T>(config_internal::ReadFile(path), path, parse);
}

}  // namespace sg
