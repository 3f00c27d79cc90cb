#include "comparator/pair_log_reader.h"

#include <algorithm>
#include <iostream>
#include <limits>
#include <string_view>
#include <variant>
#include <vector>

#include "common/pair_record.h"
#include "common/zstd_file.h"
#include "comparator/comparison.h"

namespace sg::comparator {
namespace {

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

}  // namespace

ReadStats ReadPairLog(std::istream& in, Comparison& comparison, const ReadOptions& options) {
  auto selected = [&options](const std::string& mirror) {
    return options.mirrors.empty() || options.mirrors.count(mirror) > 0;
  };
  ReadStats stats;
  // One buffer for every line: istream::getline stops at max_line_bytes, the rest of a longer
  // line is skipped without being stored.
  std::vector<char> buffer(std::max<size_t>(options.max_line_bytes, 1) + 1);
  const std::string too_long =
      "line longer than " + std::to_string(options.max_line_bytes) + " bytes";
  for (;;) {
    in.getline(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const std::streamsize got = in.gcount();
    if (got == 0 && in.fail()) break;  // end of input
    size_t length = 0;
    bool complete = false;  // a newline ended the line
    bool overlong = false;
    if (in.fail() && !in.eof()) {
      overlong = true;
      in.clear();
      in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
      complete = !in.eof();
    } else {
      complete = !in.eof();
      length = static_cast<size_t>(got) - (complete ? 1 : 0);
    }
    std::string_view line(buffer.data(), length);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!overlong && line.find_first_not_of(" \t") == std::string_view::npos) continue;
    ++stats.lines;
    if (overlong) {
      ++stats.malformed;
      comparison.AddMalformed(too_long);
      continue;
    }
    std::string error;
    auto entry = DecodePairLogLine(line, &error);
    if (!entry) {
      ++stats.malformed;
      comparison.AddMalformed(complete ? error : "truncated last line (" + error + ")");
      continue;
    }
    if (auto* pair = std::get_if<PairRecord>(&*entry)) {
      if (!selected(pair->mirror)) {
        ++stats.skipped;
        continue;
      }
      if (const char* why = Implausible(*pair)) {
        ++stats.malformed;
        comparison.AddMalformed(why);
        continue;
      }
      ++stats.pairs;
      comparison.Add(*pair);
    } else if (auto* counters = std::get_if<MirrorCounters>(&*entry)) {
      if (!selected(counters->mirror)) {
        ++stats.skipped;
        continue;
      }
      ++stats.counters;
      comparison.AddCounters(*counters);
    } else if (auto* decision = std::get_if<CutoverDecision>(&*entry)) {
      if (!selected(decision->mirror)) {
        ++stats.skipped;
        continue;
      }
      stats.cutover_decisions.push_back(std::move(*decision));
    }
  }
  return stats;
}

bool ReadPairLogFile(const std::string& path, Comparison& comparison, ReadStats* stats,
                     std::string* error, const ReadOptions& options) {
  if (path == "-") {
    *stats = ReadPairLog(std::cin, comparison, options);
    return true;
  }
  // Plain or zstd (the gateway compresses rotated files), read in large blocks.
  auto in = OpenMaybeCompressed(path, error);
  if (!in) return false;
  *stats = ReadPairLog(*in, comparison, options);
  if (std::string bad = CompressedStreamError(*in); !bad.empty()) {
    // What was read before the damage was judged; the file's problem is the run's error.
    *error = path + ": " + bad;
    return false;
  }
  if (in->bad()) {
    *error = path + ": read error";
    return false;
  }
  return true;
}

}  // namespace sg::comparator
