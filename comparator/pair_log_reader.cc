#include "comparator/pair_log_reader.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <variant>
#include <vector>

#include "common/pair_record.h"
#include "comparator/comparison.h"

namespace sg::comparator {
namespace {

constexpr size_t kReadBufferBytes = 1 << 20;

}  // namespace

ReadStats ReadPairLog(std::istream& in, Comparison& comparison, const ReadOptions& options) {
  auto selected = [&options](const std::string& mirror) {
    return options.mirrors.empty() || options.mirrors.count(mirror) > 0;
  };
  ReadStats stats;
  std::string line;
  while (std::getline(in, line)) {
    const bool complete = !in.eof();  // getline stopped at a newline, not at end of input
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    ++stats.lines;
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
      ++stats.pairs;
      comparison.Add(*pair);
    } else {
      auto& counters = std::get<MirrorCounters>(*entry);
      if (!selected(counters.mirror)) {
        ++stats.skipped;
        continue;
      }
      ++stats.counters;
      comparison.AddCounters(counters);
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
  // Read in large blocks: with the default 8 KiB buffer the read(2) calls took ~10% of the time.
  std::vector<char> buffer(kReadBufferBytes);
  std::ifstream in;
  in.rdbuf()->pubsetbuf(buffer.data(), static_cast<std::streamsize>(buffer.size()));
  in.open(path, std::ios::binary);
  if (!in) {
    *error = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  *stats = ReadPairLog(in, comparison, options);
  if (in.bad()) {
    *error = path + ": read error";
    return false;
  }
  return true;
}

}  // namespace sg::comparator
