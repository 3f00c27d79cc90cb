#include "common/config.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace sg {
namespace {

std::string TypeName(const nlohmann::json& value) {
  if (value.is_number_integer()) return "an integer";
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_boolean()) return "a boolean";
  if (value.is_array()) return "an array";
  if (value.is_object()) return "an object";
  return "null";
}

std::string JoinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) {
    if (!out.empty()) out += '\n';
    out += line;
  }
  return out;
}

// Keys that are plain identifiers print as .key, anything else as ["key"].
std::string ChildPath(const std::string& parent, std::string_view key) {
  bool plain = !key.empty();
  for (char c : key) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) plain = false;
  }
  if (plain) return parent + "." + std::string(key);
  return parent + "[" + nlohmann::json(std::string(key)).dump() + "]";
}

// Reports every key that appears twice in one object: nlohmann keeps the last value without a
// word, and a config that says "percent" twice is a mistake its author should see. Fed the
// parser's events (a parse callback), it tracks the path of the container being read, written
// as ConfigNode writes paths.
class DuplicateKeyFinder {
 public:
  explicit DuplicateKeyFinder(std::shared_ptr<ConfigContext> context)
      : context_(std::move(context)) {}

  bool operator()(int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    switch (event) {
      case Event::object_start:
      case Event::array_start:
        frames_.push_back({event == Event::array_start, 0, NextPath(), {}, {}});
        break;
      case Event::key: {
        auto& object = frames_.back();
        object.key = parsed.get<std::string>();
        if (!object.keys.insert(object.key).second) {
          context_->problems.push_back(context_->file + ": " + ChildPath(object.path, object.key) +
                                       ": duplicate key");
        }
        break;
      }
      case Event::object_end:
      case Event::array_end:
        frames_.pop_back();
        ValueDone();
        break;
      case Event::value:
        ValueDone();
        break;
    }
    return true;
  }

 private:
  struct Frame {
    bool array = false;
    size_t index = 0;  // an array's next element
    std::string path;  // the container's own path
    std::string key;   // an object's last key
    std::set<std::string> keys;
  };

  // The path of the value that starts now.
  std::string NextPath() const {
    if (frames_.empty()) return "$";
    const auto& parent = frames_.back();
    if (parent.array) return parent.path + "[" + std::to_string(parent.index) + "]";
    return ChildPath(parent.path, parent.key);
  }
  void ValueDone() {
    if (!frames_.empty() && frames_.back().array) ++frames_.back().index;
  }

  std::shared_ptr<ConfigContext> context_;
  std::vector<Frame> frames_;
};

}  // namespace

ConfigError::ConfigError(std::vector<std::string> problems)
    : std::runtime_error(JoinLines(problems)), problems_(std::move(problems)) {}

ConfigNode::ConfigNode(const nlohmann::json& value, std::shared_ptr<ConfigContext> context,
                       std::string path)
    : value_(&value), context_(std::move(context)), path_(std::move(path)) {}

std::string ConfigNode::Describe(std::string_view reason) const {
  return context_->file + ": " + path_ + ": " + std::string(reason);
}

void ConfigNode::Fail(std::string_view reason) const {
  throw ConfigError({Describe(reason)});
}

void ConfigNode::Report(std::string_view reason) const {
  context_->problems.push_back(Describe(reason));
}

void ConfigNode::Absorb(const ConfigError& error) const {
  for (const auto& p : error.problems()) context_->problems.push_back(p);
}

std::string ConfigNode::AsString() const {
  if (!value_->is_string()) Fail("must be a string, got " + TypeName(*value_));
  return value_->get<std::string>();
}

bool ConfigNode::AsBool() const {
  if (!value_->is_boolean()) Fail("must be a boolean, got " + TypeName(*value_));
  return value_->get<bool>();
}

double ConfigNode::AsNumber() const {
  if (!value_->is_number()) Fail("must be a number, got " + TypeName(*value_));
  return value_->get<double>();
}

int64_t ConfigNode::AsInt() const {
  if (value_->is_number_integer()) return value_->get<int64_t>();
  if (value_->is_number_float()) {
    double d = value_->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) {
      return static_cast<int64_t>(d);
    }
    Fail("must be an integer, got " + FormatDouble(d));
  }
  Fail("must be an integer, got " + TypeName(*value_));
}

std::chrono::microseconds ConfigNode::AsDuration() const {
  static constexpr std::string_view kHint = " (write a number with a unit: us, ms, s, m, h, d)";
  if (!value_->is_string())
    Fail("must be a duration string, got " + TypeName(*value_) + std::string(kHint));
  const std::string text = value_->get<std::string>();
  double number = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, number);
  if (ec != std::errc() || ptr == begin)
    Fail("invalid duration \"" + text + "\"" + std::string(kHint));
  std::string_view unit(ptr, static_cast<size_t>(end - ptr));
  double us_per_unit = 0;
  if (unit == "us")
    us_per_unit = 1;
  else if (unit == "ms")
    us_per_unit = 1e3;
  else if (unit == "s")
    us_per_unit = 1e6;
  else if (unit == "m")
    us_per_unit = 60e6;
  else if (unit == "h")
    us_per_unit = 3600e6;
  else if (unit == "d")
    us_per_unit = 86400e6;
  else
    Fail("invalid duration \"" + text + "\"" + std::string(kHint));
  double us = number * us_per_unit;
  if (!(us >= 0) || us > 1e15) Fail("duration \"" + text + "\" out of range");
  return std::chrono::microseconds(static_cast<int64_t>(std::llround(us)));
}

std::vector<std::string> ConfigNode::AsStringList() const {
  std::vector<std::string> out;
  for (const auto& element : Elements()) out.push_back(element.AsString());
  return out;
}

template <>
std::string ConfigNode::As<std::string>() const {
  return AsString();
}
template <>
bool ConfigNode::As<bool>() const {
  return AsBool();
}
template <>
double ConfigNode::As<double>() const {
  return AsNumber();
}
template <>
int64_t ConfigNode::As<int64_t>() const {
  return AsInt();
}
template <>
int ConfigNode::As<int>() const {
  int64_t v = AsInt();
  if (v < INT32_MIN || v > INT32_MAX) Fail("integer out of range, got " + std::to_string(v));
  return static_cast<int>(v);
}
template <>
std::chrono::microseconds ConfigNode::As<std::chrono::microseconds>() const {
  return AsDuration();
}
template <>
std::chrono::milliseconds ConfigNode::As<std::chrono::milliseconds>() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(AsDuration());
}
template <>
std::vector<std::string> ConfigNode::As<std::vector<std::string>>() const {
  return AsStringList();
}

std::vector<ConfigNode> ConfigNode::Elements() const {
  if (!value_->is_array()) Fail("must be an array, got " + TypeName(*value_));
  std::vector<ConfigNode> out;
  out.reserve(value_->size());
  for (size_t i = 0; i < value_->size(); ++i) out.push_back(Element(i));
  return out;
}

ConfigNode ConfigNode::Child(std::string_view key) const {
  auto it = value_->find(key);
  if (it == value_->end()) Fail("missing required key \"" + std::string(key) + "\"");
  return ConfigNode(*it, context_, ChildPath(path_, key));
}

ConfigNode ConfigNode::Element(size_t index) const {
  return ConfigNode((*value_)[index], context_, path_ + "[" + std::to_string(index) + "]");
}

ObjectReader::ObjectReader(const ConfigNode& node) : node_(node) {
  if (!node.json().is_object()) node.Fail("must be an object, got " + TypeName(node.json()));
}

bool ObjectReader::Has(std::string_view key) const {
  return node_.json().contains(key);
}

std::optional<ConfigNode> ObjectReader::Optional(std::string_view key) {
  if (!Has(key)) return std::nullopt;
  read_.emplace_back(key);
  return node_.Child(key);
}

ConfigNode ObjectReader::Required(std::string_view key) {
  read_.emplace_back(key);
  return node_.Child(key);
}

void ObjectReader::Finish() {
  for (const auto& item : node_.json().items()) {
    const std::string& key = item.key();
    if (std::find(read_.begin(), read_.end(), key) != read_.end()) continue;
    node_.Child(key).Report("unknown key");
  }
}

namespace config_internal {

std::shared_ptr<const nlohmann::json> ParseDocument(std::string_view text,
                                                    const std::shared_ptr<ConfigContext>& context) {
  try {
    // Duplicate keys are reported with the other problems (ThrowIfProblems, after parsing).
    return std::make_shared<const nlohmann::json>(
        nlohmann::json::parse(text, DuplicateKeyFinder(context)));
  } catch (const nlohmann::json::parse_error& e) {
    // Turn nlohmann's byte offset into a line and column a person can jump to.
    size_t offset = std::min<size_t>(e.byte, text.size());
    size_t line = 1, column = 1;
    for (size_t i = 0; i + 1 < offset; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    // nlohmann's text repeats the position ("[json.exception.parse_error.101] parse error at
    // line 3, column 14: syntax error ..."): keep only the reason after it.
    std::string what = e.what();
    auto pos = what.find(": syntax error");
    what = pos != std::string::npos ? what.substr(pos + 2) : what.substr(what.find(']') + 2);
    throw ConfigError({context->file + ": line " + std::to_string(line) + ", column " +
                       std::to_string(column) + ": invalid JSON: " + what});
  } catch (const nlohmann::json::out_of_range& e) {
    // A number beyond a double ("1e999") is not a parse_error: it escaped and aborted the
    // executables (found by fuzz/config_fuzzer). nlohmann names the number, not its place.
    std::string what = e.what();
    throw ConfigError({context->file + ": invalid JSON: " + what.substr(what.find(']') + 2)});
  }
}

std::string ReadFile(const std::string& path) {
  std::string text, error;
  if (!ReadSmallFile(path, kMaxConfigFileBytes, &text, &error)) {
    throw ConfigError({path + ": " + error});
  }
  return text;
}

void ThrowIfProblems(const ConfigContext& context) {
  if (!context.problems.empty()) throw ConfigError(context.problems);
}

}  // namespace config_internal

bool ReadSmallFile(const std::string& path, std::size_t max_bytes, std::string* contents,
                   std::string* error) {
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (ec) {
    *error = "cannot open: " + ec.message();
    return false;
  }
  // Opening a FIFO blocks until a writer comes, and a device can be endless: refuse both first.
  if (!std::filesystem::is_regular_file(status)) {
    *error = "is not a regular file";
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = std::string("cannot open: ") + std::strerror(errno);
    return false;
  }
  // Read in pieces up to one byte past the cap, so memory follows the file's size (not the cap)
  // and a file that grew after the check is caught too.
  contents->clear();
  char piece[64 << 10];
  while (contents->size() <= max_bytes && in) {
    std::size_t want = std::min(sizeof piece, max_bytes + 1 - contents->size());
    in.read(piece, static_cast<std::streamsize>(want));
    contents->append(piece, static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) {
    *error = "read error";
    return false;
  }
  if (contents->size() > max_bytes) {
    *error = "larger than " + std::to_string(max_bytes) + " bytes";
    return false;
  }
  return true;
}

}  // namespace sg
