// The load generator's engine: replays corpus items against one HTTP/1.1 endpoint over
// keep-alive connections, in closed loop (N users, each sending its next request when the
// previous one completes) or open loop (requests due at an arrival schedule, sent on a bounded
// connection pool; latency counts from the due time, so queueing is never hidden).
//
// Runs on the calling thread (one Asio io_context); Beast stays inside load_runner.cc.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tools/load/arrival_schedule.h"
#include "tools/load/corpus.h"
#include "tools/load/http_url.h"
#include "tools/load/load_stats.h"

namespace sg::load {

struct LoadOptions {
  HttpUrl url;
  std::string method = "POST";  // default: POST (inference endpoints take a body)
  // Content-Type sent with every request; empty: each item's own (from its file name or the
  // recorded request), none when that is empty too.
  std::string content_type;
  // Extra request headers, sent as given. Default: none.
  std::vector<std::pair<std::string, std::string>> headers;
  // When non-empty, items with a known label carry it in this header. Default: off.
  std::string label_header;

  // Open loop when set (requests per second); closed loop with `users` otherwise.
  std::optional<double> rate;
  ArrivalProcess arrival = ArrivalProcess::kConstant;
  int users = 1;             // closed loop: concurrent users, one connection each
  int max_connections = 64;  // open loop: connections opened on demand up to this bound

  // Stop after this many requests and/or this long (whichever comes first). With neither, one
  // pass over the corpus.
  std::optional<uint64_t> requests;
  std::optional<std::chrono::nanoseconds> duration;
  std::chrono::milliseconds timeout{10000};  // per request, connect included
  uint64_t body_limit = 16 << 20;            // largest response body accepted

  bool shuffle = false;  // visit the corpus in a seeded random order instead of file order
  uint64_t seed = 1;     // for shuffle and Poisson arrivals

  // Called about once a second with a one-line status; empty: no progress.
  std::function<void(const std::string&)> progress;
  // Called at the start, once a second while the run lasts and once after the last request, with
  // the statistics so far, the second (Unix time) and the users running (closed loop: users; open
  // loop: connections open; 0 after the end): PREFIX_stats_history.csv's rows. Empty: not called.
  std::function<void(const LoadStats& stats, int64_t unix_s, int users)> every_second;
  // When set, RunLoad leaves SIGINT and SIGTERM to its caller and stops issuing (as at a first
  // SIGINT: in-flight requests finish, `interrupted` is set) once *stop is true, checked every
  // 50 ms. Default: RunLoad handles the signals itself.
  const std::atomic<bool>* stop = nullptr;
  // Called with the corpus index and the body of every response with a status < 400 (to compare
  // answers); empty: bodies are not kept.
  std::function<void(size_t item, const std::string& body)> on_answer;
};

struct LoadResult {
  LoadStats stats;
  double elapsed_s = 0;     // first send to last completion
  uint64_t late_sends = 0;  // open loop: requests sent more than 1 ms after their due time
  int connections_opened = 0;
  bool interrupted = false;  // stopped early by SIGINT/SIGTERM
};

// Connects once to check the endpoint. nullopt on success, else the reason
// ("cannot connect to 127.0.0.1:1: Connection refused").
std::optional<std::string> CheckReachable(const HttpUrl& url, std::chrono::milliseconds timeout);

// Runs the load until the request count or duration is reached (or SIGINT/SIGTERM arrives).
// REQUIRES: !items.empty().
LoadResult RunLoad(const LoadOptions& options, const std::vector<CorpusItem>& items);

}  // namespace sg::load
