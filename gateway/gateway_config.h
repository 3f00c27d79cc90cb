// The gateway's configuration: immutable typed structs parsed from JSON (docs/gateway.md).
// Every default is written next to its field with the reason for it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/strings.h"

namespace sg::comparator {
struct CompareConfig;
struct GateConfig;
}  // namespace sg::comparator

namespace sg::gateway {

using Micros = std::chrono::microseconds;

// "host:port"; host is an IPv4/IPv6 literal or a name resolved once at start-up.
using Endpoint = HostPort;

struct UpstreamConfig {
  std::string name;
  std::vector<Endpoint> endpoints;  // round-robin; at least one
  int max_connections = 512;        // per pool: bounds sockets and memory per upstream
  // Primary requests that find the pool at max_connections wait for a connection (FIFO), at
  // most max_pending of them and for at most pending_timeout each; past either: 503. 0: no wait.
  // (Mirror copies never wait: over the limit they are dropped and counted.)
  int max_pending = 1024;
  Micros pending_timeout = std::chrono::seconds(1);
  Micros idle_timeout = std::chrono::seconds(30);    // below nginx's 75 s keepalive_timeout
  Micros connect_timeout = std::chrono::seconds(1);  // local network: 1 s is already very slow
  Micros header_timeout = std::chrono::seconds(30);  // time to first response header (inference)
  Micros total_timeout = std::chrono::seconds(60);   // whole exchange
  int64_t max_response_bytes = 64 << 20;             // shadow responses are buffered: bound memory
  int eject_after_failures = 5;  // consecutive failures before an endpoint is ejected
  Micros eject_duration = std::chrono::seconds(10);  // how long an ejected endpoint is skipped
};

enum class Sampling { kCounter, kHash };

struct MirrorConfig {
  std::string name;                        // default: the mirror's index as a string
  std::string upstream;                    // name of an upstream
  double percent = 100;                    // 0-100, fractional; changeable at runtime
  Sampling sampling = Sampling::kCounter;  // counter: exact fraction; hash: same keys every time
  std::string hash_header;                 // required for hash sampling
  bool mirror_body = true;                 // false: the copy is sent without a body
  int64_t max_body_bytes = 1 << 20;  // larger bodies are not mirrored (counted body_too_large)
  Micros timeout = std::chrono::seconds(10);  // whole shadow exchange
  int max_in_flight = 64;                     // over it, the copy is dropped (counted overload)
  // This mirror's share of pairs whose request body is captured (0-1); unset: capture.body_sample.
  std::optional<double> capture_body_sample;
};

// A route's progressive cutover (docs/gateway.md, "Progressive cutover"): the candidate, one of
// the route's mirrors, serves a sticky share of the route's keys, step by step.
enum class StickyKey { kClientAddress, kHeader, kCookie };

struct CutoverStep {
  double share = 0;         // percent of the keys the candidate serves, (0, 100]
  Micros hold{0};           // the least time at the step
  uint64_t min_judged = 0;  // the least pairs judged at the step before it may advance
};

struct CutoverConfig {
  std::string
      candidate;  // the candidate mirror's name (one without a name: its index); empty: none
  // The TCP peer's address by default: every client has one. A header or cookie (a user id)
  // keeps a user on one side across connections and NATs.
  StickyKey sticky = StickyKey::kClientAddress;
  std::string sticky_name;         // the header (lower-case) or cookie name
  std::vector<CutoverStep> steps;  // shares strictly increasing, the last 100
  // Often enough that a failing candidate is taken out within seconds of the evidence; each
  // evaluation runs the gates (the rank tests: milliseconds).
  Micros evaluation_interval = std::chrono::seconds(10);
  std::string state_file;  // the state across restarts; empty: every start is IDLE at share 0

  bool enabled() const { return !candidate.empty(); }
};

struct RouteConfig {
  std::string name;
  std::vector<std::string> hosts;  // lower-case, without port; empty: any host
  std::string path_prefix = "/";
  std::vector<std::string> methods;  // upper-case; empty: any method
  std::string upstream;
  std::vector<MirrorConfig> mirrors;
  CutoverConfig cutover;
};

enum class AccessLogFormat { kOff, kText, kJson };

struct PairLogConfig {
  std::string path;                    // empty: no pair log
  int64_t max_file_bytes = 256 << 20;  // rotate when the file would grow past this
  int max_files = 5;                   // rotated files kept (path.1 .. path.N)
  // Rotated files are compressed (path.1.zst ...) by a background thread; "none": kept as text.
  std::string compression = "zstd";
  int compression_level = 3;  // zstd's levels, 1-19
  // Retention beyond max_files: the oldest rotated files are removed while the log's files
  // (current and rotated, as on disk) hold more than max_total_bytes (0: no size cap), and once
  // they are older than max_age (by modification time; 0: none).
  int64_t max_total_bytes = 0;
  Micros max_age{0};
  int queue_capacity = 10000;  // records waiting for the writer; full: drop + count
  Micros counters_interval = std::chrono::seconds(10);  // how often counters records are written
};

struct CaptureConfig {
  std::vector<std::string> request_headers;  // lower-case names captured into pair records
  // Captured names that are also in GatewayConfig::redact_headers: their value is written as
  // "[redacted]" (the record still says the header was there). Set by the parser.
  std::vector<std::string> redacted;
  std::vector<std::string> response_headers;  // default: content-type
  int64_t max_body_bytes = 64 << 10;          // request/response bodies captured up to this
  // Share of pairs (0-1) whose request body is captured, chosen by a hash of the request id; the
  // others keep the body's size and sha256 only (counted body_sampled_out). 1: every body, as
  // before; a month of an image service at 0.01 keeps a sample to replay at a fraction of the
  // disk. Responses are always captured: they are what is judged.
  double body_sample = 1;
  PairLogConfig pair_log;
};

// The online comparator (comparator/online_comparator.h) hosted by the gateway. Inputs (rules,
// gates) written as relative paths are relative to the config file's directory (stored resolved);
// outputs (report_dir, like capture.pair_log.path) are relative to the working directory.
struct ComparisonConfig {
  std::string rules_path;  // compare rules (docs/comparator.md); required in the section
  std::string gates_path;  // gates; empty: no gates, so no verdict
  // Both loaded once, at config time, with the comparator's own loaders.
  std::shared_ptr<const comparator::CompareConfig> rules;  // null: no comparison configured
  std::shared_ptr<const comparator::GateConfig> gates;     // null without gates_path
  int queue_capacity = 4096;   // records waiting to be judged; more are dropped and counted
  std::string run = "online";  // run name shown in reports
  std::string report_dir;      // on-demand and final reports go to <report_dir>/<name>; empty: none
  bool final_report = true;    // with report_dir: <report_dir>/final-<UTC time> at graceful stop
  // The comparison's state, written every checkpoint_interval while pairs arrive and at a graceful
  // stop, resumed at start for the same run and rules (docs/gateway.md, "Checkpoints"); an output,
  // relative to the working directory. Empty: none, a restart starts from zero.
  std::string checkpoint_file;
  Micros checkpoint_interval = std::chrono::seconds(60);
  std::string rules_sha256;  // comparator::CompareConfigHash of the rules file's text

  bool enabled() const { return rules != nullptr; }
};

// Who may use the admin listener (gateway/admin_guard.h, docs/gateway.md "Security model").
struct AdminConfig {
  // Host names the admin listener answers for (lower-case, without port; "*": any). A request
  // naming another host is refused (421): loopback names only, so a web page whose name was
  // re-bound to 127.0.0.1 (DNS rebinding) cannot reach it.
  std::vector<std::string> allowed_hosts = {"localhost", "127.0.0.1", "[::1]"};
  // A file holding the bearer token (relative: to the config file's directory); empty: no token.
  // Required when admin_listen is beyond loopback.
  std::string token_file;
  std::string token;  // read from token_file at config time; never shown (GatewayConfigToJson)
};

struct GatewayConfig {
  std::string listen_host = "0.0.0.0";
  uint16_t listen_port = 8080;
  std::string admin_host = "127.0.0.1";  // admin is never exposed by default
  uint16_t admin_port = 9901;
  AdminConfig admin;
  int io_threads = 0;  // 0: the CPUs available to the process
  // Threads that run the mirrors' exchanges, so that shadow work never queues in a primary's
  // event loop; 0: none, the I/O threads run them (see docs/gateway.md for the trade-off).
  int shadow_threads = 0;
  int shadow_nice = 0;  // the shadow threads' nice value (0-19): higher yields the CPU sooner
  int max_connections = 10000;                // client connections; over it, new ones are closed
  int64_t max_header_bytes = 16 << 10;        // request line + headers; over it: 431
  int64_t max_request_body_bytes = 16 << 20;  // buffered (mirrored) request bodies; over it: 413
  // Request body bytes held in memory at once, over all connections (bodies buffered for
  // mirroring, chunked bodies being collected). A body that would pass it is streamed to the
  // primary instead and not mirrored (counted memory_budget). 256 MiB: 256 buffered 1 MiB bodies,
  // a small share of a host's memory, where 10,000 connections x 1 MiB would be 10 GiB.
  int64_t max_buffered_body_bytes = int64_t{256} << 20;
  // Streamed (not mirrored) request bodies; over it: 413. 0: unlimited. Memory stays bounded.
  int64_t max_streamed_body_bytes = int64_t{1} << 30;
  Micros client_header_timeout = std::chrono::seconds(10);  // request headers; over it: 408
  Micros client_body_timeout = std::chrono::seconds(30);    // request body; over it: 408
  Micros keep_alive_timeout = std::chrono::seconds(60);     // idle client connection
  Micros write_timeout = std::chrono::seconds(30);          // client too slow to read
  Micros shutdown_grace = std::chrono::seconds(10);         // in-flight work on SIGTERM
  std::string shadow_header = "X-Shadow-Request";           // set to "1" on every mirror copy
  std::vector<std::string> redact_headers = {"authorization", "cookie", "proxy-authorization"};
  AccessLogFormat access_log = AccessLogFormat::kOff;
  // Where access lines go: a file (appended to; SIGHUP reopens it, for logrotate); "": stdout.
  std::string access_log_path;
  std::vector<UpstreamConfig> upstreams;
  std::vector<RouteConfig> routes;
  CaptureConfig capture;
  ComparisonConfig comparison;

  const UpstreamConfig* FindUpstream(const std::string& name) const;
};

// Parses a whole gateway config; problems are collected (ConfigError lists every one).
GatewayConfig ParseGatewayConfig(const ConfigNode& root);
// Reads and parses `path`. Throws ConfigError.
GatewayConfig LoadGatewayConfig(const std::string& path);

// True when `host` is an IPv4 loopback address (127.0.0.0/8) or ::1.
bool IsLoopbackAddress(const std::string& host);

// The effective config as JSON, for /admin/config. Holds no secrets: the admin token is shown by
// its file's name only, and header values are never part of the config.
nlohmann::json GatewayConfigToJson(const GatewayConfig& config);
// A route's cutover as the config writes it (also the schedule a state file is checked against).
nlohmann::json CutoverToJson(const CutoverConfig& cutover);

}  // namespace sg::gateway
