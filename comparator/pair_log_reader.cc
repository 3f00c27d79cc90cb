#include "comparator/pair_log_reader.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <regex>
#include <string_view>
#include <system_error>
#include <tuple>
#include <variant>

#include "common/pair_record.h"
#include "common/zstd_file.h"
#include "comparator/comparison.h"

namespace sg::comparator {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kNoTime = std::numeric_limits<int64_t>::min();

// What a gateway cannot have written: judged, it would count as a match or skew the latency.
const char* Implausible(const PairRecord& pair) {
  for (const CapturedResponse* side : {&pair.primary, &pair.shadow}) {
    if (side->latency_us < 0) return "negative latency";
    if (side->status != 0 && (side->status < 100 || side->status > 599)) {
      return "status outside 100-599";
    }
  }
  return nullptr;
}

// a - b for b >= 0, kNoTime where that would be below it (times come from the input, any int64).
int64_t EarlierBy(int64_t a, int64_t b) {
  return a < kNoTime + b ? kNoTime : a - b;
}

int64_t TimeOf(const PairLogEntry& entry) {
  return std::visit([](const auto& e) { return e.ts_us; }, entry);
}

// One line read by ReadBoundedLine: `end` at the end of the input; otherwise the line (without
// its newline) is in the caller's string, `complete` when a newline ended it, and `overlong`
// (the string left empty, the rest of the line skipped) past the bound.
struct LineRead {
  bool end = false;
  bool complete = false;
  bool overlong = false;
};

// Reads the next line into `line`, grown as needed up to `max_bytes`: a longer line is skipped
// without being stored, so memory stays bounded whatever the input.
LineRead ReadBoundedLine(std::istream& in, size_t max_bytes, std::string& line) {
  line.clear();
  char chunk[8192];
  for (;;) {
    in.getline(chunk, sizeof chunk);
    const auto got = static_cast<size_t>(in.gcount());
    if (in.fail() && !in.eof() && got == sizeof chunk - 1) {  // the chunk filled, no newline yet
      in.clear();
      if (line.size() + got > max_bytes) {
        line.clear();
        in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
        return {false, !in.eof(), true};
      }
      line.append(chunk, got);
      continue;
    }
    if (got == 0 && in.fail()) {  // the end, possibly right after a line's full chunks
      return line.empty() ? LineRead{true, false, false} : LineRead{false, false, false};
    }
    const bool complete = !in.eof();
    const size_t stored = got - (complete ? 1 : 0);
    if (line.size() + stored > max_bytes) {
      line.clear();
      return {false, complete, true};
    }
    line.append(chunk, stored);
    return {false, complete, false};
  }
}

// A record held for reordering.
struct Held {
  int64_t ts_us;
  uint64_t seq;  // read order within its input: equal times keep it
  size_t bytes;
  PairLogEntry entry;
};
struct LaterFirst {  // for a min-heap by (time, read order)
  bool operator()(const Held& a, const Held& b) const {
    return std::tie(a.ts_us, a.seq) > std::tie(b.ts_us, b.seq);
  }
};

// One input of the merge: a file or a stream, read line by line into a small reorder heap.
class Input {
 public:
  Input(std::string name, size_t index, std::istream* stream)
      : name_(std::move(name)), index_(index), in_(stream) {}

  const std::string& name() const { return name_; }
  size_t index() const { return index_; }
  int64_t first_ts = kNoTime;  // the first record's time (kNoTime: none found, or a stream)
  ReadStats stats;

  // Opens the file (a stream given at construction is open already).
  bool Open(std::string* error) {
    if (in_ != nullptr) return true;
    owned_ = OpenMaybeCompressed(name_, error);
    in_ = owned_.get();
    return in_ != nullptr;
  }

  // Reads lines until the earliest held record may be judged: the input has read one at least
  // reorder_window later, holds more than max_held_bytes, or ended. Malformed lines and other
  // mirrors' records are counted as they are read. False with `error` for a read error or a
  // corrupt compressed file, found at the end.
  bool Fill(const ReadOptions& options, Comparison& comparison, std::string* error) {
    while (!ended_ && !Ready(options)) {
      ReadLine(options, comparison);
    }
    if (ended_ && in_ != nullptr) {
      std::string bad = CompressedStreamError(*in_);
      if (bad.empty() && in_->bad()) bad = "read error";
      owned_.reset();  // closed as soon as it is read
      in_ = nullptr;
      if (!bad.empty()) {
        *error = name_ + ": " + bad;
        return false;
      }
    }
    return true;
  }

  bool exhausted() const { return ended_ && held_.empty(); }
  // REQUIRES: !exhausted(), after Fill.
  const Held& head() const { return held_.front(); }
  Held Pop() {
    std::pop_heap(held_.begin(), held_.end(), LaterFirst());
    Held h = std::move(held_.back());
    held_.pop_back();
    held_bytes_ -= h.bytes;
    return h;
  }

 private:
  bool Ready(const ReadOptions& options) const {
    if (held_.empty()) return false;
    return held_.front().ts_us <= EarlierBy(newest_ts_, options.reorder_window.count()) ||
           held_bytes_ > options.max_held_bytes;
  }

  void ReadLine(const ReadOptions& options, Comparison& comparison) {
    const LineRead read = ReadBoundedLine(*in_, options.max_line_bytes, line_);
    if (read.end) {
      ended_ = true;
      return;
    }
    std::string_view line(line_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!read.overlong && line.find_first_not_of(" \t") == std::string_view::npos) return;
    ++stats.lines;
    if (read.overlong) {
      ++stats.malformed;
      comparison.AddMalformed("line longer than " + std::to_string(options.max_line_bytes) +
                              " bytes");
      return;
    }
    std::string why;
    auto entry = DecodePairLogLine(line, &why);
    if (!entry) {
      ++stats.malformed;
      comparison.AddMalformed(read.complete ? why : "truncated last line (" + why + ")");
      return;
    }
    const std::string& mirror =
        std::visit([](const auto& e) -> const std::string& { return e.mirror; }, *entry);
    if (!options.mirrors.empty() && options.mirrors.count(mirror) == 0) {
      ++stats.skipped;
      return;
    }
    if (auto* decision = std::get_if<CutoverDecision>(&*entry)) {
      stats.cutover_decisions.push_back(std::move(*decision));
      return;
    }
    if (const auto* pair = std::get_if<PairRecord>(&*entry)) {
      if (const char* implausible = Implausible(*pair)) {
        ++stats.malformed;
        comparison.AddMalformed(implausible);
        return;
      }
      ++stats.pairs;
    } else if (std::holds_alternative<MirrorCounters>(*entry)) {
      ++stats.counters;
    } else {
      return;  // records of other types are not judged
    }
    const int64_t ts = TimeOf(*entry);
    newest_ts_ = std::max(newest_ts_, ts);
    held_bytes_ += line.size();
    held_.push_back({ts, seq_++, line.size(), std::move(*entry)});
    std::push_heap(held_.begin(), held_.end(), LaterFirst());
  }

  std::string name_;
  size_t index_;
  std::unique_ptr<std::istream> owned_;
  std::istream* in_;  // null before Open and once read
  std::string line_;
  std::vector<Held> held_;  // a min-heap by LaterFirst
  size_t held_bytes_ = 0;
  int64_t newest_ts_ = kNoTime;
  uint64_t seq_ = 0;
  bool ended_ = false;
};

// The time of a file's first record, read and closed: the file joins the merge near that time
// (Merge), so that the files of a month are not all open at once. kNoTime when it has none (it then
// joins at once, and its problems are found there).
bool PeekFirstTime(Input& input, const ReadOptions& options, std::string* error) {
  auto in = OpenMaybeCompressed(input.name(), error);
  if (!in) return false;
  std::string line;
  for (;;) {
    const LineRead read = ReadBoundedLine(*in, options.max_line_bytes, line);
    if (read.end) break;
    if (read.overlong) continue;
    std::string why;
    if (auto entry = DecodePairLogLine(line, &why)) {
      input.first_ts = TimeOf(*entry);
      break;
    }
  }
  return true;
}

// The k-way merge: judges the held record with the earliest (time, input, read order) of the
// open inputs, after opening every input whose first record is not later than it.
bool Merge(std::vector<std::unique_ptr<Input>>& inputs, Comparison& comparison,
           const ReadOptions& options, std::string* error, size_t* most_open) {
  // A file joins one window before its first record: its next lines may be that much earlier
  // without being late.
  auto joins_at = [&options](const Input* input) {
    return EarlierBy(input->first_ts, options.reorder_window.count());
  };
  std::vector<Input*> pending;
  for (auto& input : inputs) pending.push_back(input.get());
  std::stable_sort(pending.begin(), pending.end(), [&joins_at](const Input* a, const Input* b) {
    return joins_at(a) < joins_at(b);
  });
  struct Head {
    int64_t ts_us;
    size_t index;
    uint64_t seq;
    Input* input;
    bool operator>(const Head& o) const {
      return std::tie(ts_us, index, seq) > std::tie(o.ts_us, o.index, o.seq);
    }
  };
  std::priority_queue<Head, std::vector<Head>, std::greater<>> open;
  auto push = [&open](Input* input) {
    if (input->exhausted()) return;
    const Held& h = input->head();
    open.push({h.ts_us, input->index(), h.seq, input});
  };
  size_t next = 0;
  int64_t judged_until = kNoTime;
  *most_open = 0;
  for (;;) {
    while (next < pending.size() && (open.empty() || joins_at(pending[next]) <= open.top().ts_us)) {
      Input* input = pending[next++];
      if (!input->Open(error) || !input->Fill(options, comparison, error)) return false;
      push(input);
      *most_open = std::max(*most_open, open.size());
    }
    if (open.empty()) return true;
    Input* input = open.top().input;
    open.pop();
    Held held = input->Pop();
    if (held.ts_us < judged_until) {
      ++input->stats.late;
    } else {
      judged_until = held.ts_us;
    }
    if (auto* pair = std::get_if<PairRecord>(&held.entry)) {
      comparison.Add(*pair);
    } else if (auto* counters = std::get_if<MirrorCounters>(&held.entry)) {
      comparison.AddCounters(*counters);
    }
    if (!input->Fill(options, comparison, error)) return false;
    push(input);
  }
}

// Pair-log names as the gateway rotates them (ExpandPairLogInputs).
const std::regex kPairLogName(R"(([^.].*\.jsonl)(\.[0-9]+)?(\.zst)?)");

bool ExpandFolder(const fs::path& folder, std::vector<std::string>* files, std::string* error) {
  std::map<std::string, fs::path> found;  // by name: a stable order
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!std::regex_match(name, kPairLogName)) continue;
    std::error_code type_ec;
    if (!fs::is_regular_file(it->path(), type_ec)) continue;
    found.emplace(name, it->path());
  }
  if (ec) {
    *error = folder.string() + ": " + ec.message();
    return false;
  }
  size_t taken = 0;
  for (const auto& [name, path] : found) {
    if (found.count(name + ".zst") > 0) continue;  // its compressed copy is whole: read that
    files->push_back(path.string());
    ++taken;
  }
  if (taken == 0) {
    *error = folder.string() +
             ": no pair-log files in the folder (*.jsonl, *.jsonl.N, *.jsonl.zst, *.jsonl.N.zst)";
    return false;
  }
  return true;
}

}  // namespace

ReadStats ReadPairLog(std::istream& in, Comparison& comparison, const ReadOptions& options) {
  std::vector<std::unique_ptr<Input>> inputs;
  inputs.push_back(std::make_unique<Input>("(stream)", 0, &in));
  std::string error;
  size_t most_open = 0;
  Merge(inputs, comparison, options, &error, &most_open);  // a read error ends it, as its end
  return inputs[0]->stats;
}

bool ExpandPairLogInputs(const std::vector<std::string>& inputs, std::vector<std::string>* files,
                         std::string* error) {
  for (const auto& input : inputs) {
    std::error_code ec;
    if (input != "-" && fs::is_directory(input, ec)) {
      if (!ExpandFolder(input, files, error)) return false;
    } else {
      files->push_back(input);  // a file that is not there is named when it is opened
    }
  }
  // The same file twice (named, and in a folder named too) would be judged twice.
  std::map<std::string, std::string> seen;
  for (const auto& file : *files) {
    std::error_code ec;
    const std::string key = file == "-" ? file : fs::weakly_canonical(file, ec).string();
    if (auto [it, added] = seen.emplace(key, file); !added) {
      *error =
          file + ": listed twice" + (it->second == file ? "" : " (also as " + it->second + ")");
      return false;
    }
  }
  return true;
}

bool ReadPairLogs(const std::vector<std::string>& files, Comparison& comparison,
                  std::vector<ReadStats>* stats, std::string* error, const ReadOptions& options,
                  size_t* most_open) {
  std::vector<std::unique_ptr<Input>> inputs;
  for (size_t i = 0; i < files.size(); ++i) {
    const bool standard_input = files[i] == "-";
    inputs.push_back(std::make_unique<Input>(files[i], i, standard_input ? &std::cin : nullptr));
    // Standard input cannot be read twice: it joins at once.
    if (!standard_input && !PeekFirstTime(*inputs.back(), options, error)) return false;
  }
  size_t open = 0;
  const bool ok = Merge(inputs, comparison, options, error, most_open ? most_open : &open);
  stats->clear();
  for (const auto& input : inputs) stats->push_back(input->stats);
  return ok;
}

bool ReadPairLogFile(const std::string& path, Comparison& comparison, ReadStats* stats,
                     std::string* error, const ReadOptions& options) {
  std::vector<ReadStats> all;
  const bool ok = ReadPairLogs({path}, comparison, &all, error, options);
  if (!all.empty()) *stats = all[0];
  return ok;
}

}  // namespace sg::comparator
