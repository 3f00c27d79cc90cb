#include "model_server/tune_measure.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/subprocess.h"

namespace sg::serve {
namespace {

using Clock = std::chrono::steady_clock;

// A loopback port that was free a moment ago (the kernel's choice for port 0).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string LogTail(const std::string& path, size_t bytes) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  std::string all = text.str();
  return all.size() > bytes ? all.substr(all.size() - bytes) : all;
}

}  // namespace

ServeConfig ServeConfigFor(const ServeConfig& base, const TuneConfig& config) {
  ServeConfig c = base;
  c.cpu.workers = config.workers;
  c.cpu.threads_per_worker = config.threads;
  c.cpu.pinning = config.pinning;
  c.cpu.use_logical_cores = config.logical_cores;
  c.cpu.front_cpus = config.front_cpus;
  for (auto& m : c.models) {
    m.workers = 0;
    m.batch_size = config.batch_size;
    m.max_batch_delay = std::chrono::milliseconds(config.batch_delay_ms);
    m.optimize = config.optimize;
    m.precision = config.precision;
    m.channels_last = config.channels_last;
  }
  return c;
}

std::string ServeConfigToJson(const ServeConfig& config) {
  nlohmann::ordered_json doc = {{"inference_address", config.inference_address},
                                {"management_address", config.management_address},
                                {"metrics_address", config.metrics_address},
                                {"max_request_size", config.max_request_size},
                                {"max_buffered_body_bytes", config.max_buffered_body_bytes},
                                {"cpu",
                                 {{"workers", config.cpu.workers},
                                  {"threads_per_worker", config.cpu.threads_per_worker},
                                  {"use_logical_cores", config.cpu.use_logical_cores},
                                  {"pinning", config.cpu.pinning},
                                  {"front_cpus", config.cpu.front_cpus}}}};
  if (!config.cpu_root.empty()) doc["cpu_root"] = config.cpu_root;
  nlohmann::ordered_json models = nlohmann::ordered_json::object();
  for (const auto& m : config.models) {
    // The worker's spec is the whole, resolved model; "labels": "" reads back as none.
    auto spec = nlohmann::ordered_json::parse(ModelConfigToJson(m));
    models[m.name] = spec["model"];
  }
  doc["models"] = models;
  return doc.dump(2) + "\n";
}

Measurement SummarizeRun(const load::LoadResult& result, double seconds) {
  Measurement m;
  m.seconds = seconds;
  auto total = result.stats.Aggregated();
  m.requests = total.requests;
  m.failures = total.failures;
  m.avg_ms = total.avg_ms;
  m.min_ms = total.min_ms;
  m.max_ms = total.max_ms;
  m.median_ms = total.median_ms;
  const auto& quantiles = load::LocustPercentiles();
  for (size_t i = 0; i < quantiles.size() && i < total.percentiles_ms.size(); ++i) {
    if (quantiles[i] == 0.99) m.p99_ms = total.percentiles_ms[i];
  }
  m.rps = result.elapsed_s > 0 ? static_cast<double>(total.requests) / result.elapsed_s : 0;
  if (total.requests == 0) m.error = "no request completed";
  return m;
}

ServeMeasurer::ServeMeasurer(MeasureSetup setup, const std::vector<load::CorpusItem>& corpus)
    : setup_(std::move(setup)), corpus_(corpus) {}

// Waits until the sg-serve just started answers /ping with Healthy (200). False with `error` set
// when it exits first (the log's tail says why), is not ready in time, or tune is stopped.
bool ServeMeasurer::WaitReady(Subprocess& child, int port, const std::string& log_path,
                              std::string* error) {
  load::LoadOptions ping;
  ping.url = {"127.0.0.1", std::to_string(port), "/ping"};
  ping.method = "GET";
  ping.requests = 1;
  ping.timeout = std::chrono::milliseconds(1000);
  ping.stop = setup_.stop;
  std::vector<load::CorpusItem> empty_body(1);
  auto deadline = Clock::now() + setup_.start_timeout;
  while (true) {
    if (Stopped()) {
      *error = "stopped";
      return false;
    }
    if (!child.Running()) {
      *error = "sg-serve " + DescribeWaitStatus(child.exit_status().value_or(0)) + ": " +
               LogTail(log_path, 300);
      return false;
    }
    if (load::RunLoad(ping, empty_body).stats.failures() == 0) return true;
    if (Clock::now() > deadline) {
      *error = "not ready after " + std::to_string(setup_.start_timeout.count()) + " s";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Measurement ServeMeasurer::Measure(const TuneConfig& config, double seconds, bool want_answers) {
  Measurement failed;
  failed.seconds = seconds;
  ServeConfig serve = ServeConfigFor(setup_.base, config);
  // The ports were free a moment ago, and another process may bind one before sg-serve does
  // (seen beside a busy test suite: "bind 127.0.0.1:39909: Address already in use"). Such a
  // start is tried again on fresh ports, so the candidate is not lost to the race.
  constexpr int kStartAttempts = 3;
  int ports[3] = {};
  std::optional<Subprocess> child;
  for (int attempt = 1;; ++attempt) {
    for (int& port : ports) port = FreePort();
    serve.inference_address = "127.0.0.1:" + std::to_string(ports[0]);
    serve.management_address = "127.0.0.1:" + std::to_string(ports[1]);
    serve.metrics_address = "127.0.0.1:" + std::to_string(ports[2]);
    std::string base = setup_.log_dir + "/" + std::to_string(++started_);
    std::string config_path = base + ".json", log_path = base + ".log";
    {
      std::ofstream out(config_path, std::ios::trunc);
      out << ServeConfigToJson(serve);
      if (!out) {
        failed.error = "cannot write " + config_path;
        return failed;
      }
    }
    SpawnOptions spawn;
    spawn.stdout_path = log_path;
    spawn.stderr_path = log_path;
    std::string error;
    child = Subprocess::Spawn({setup_.self_exe, "--config", config_path, "--log-level", "warn"},
                              spawn, &error);
    if (!child) {
      failed.error = "cannot start sg-serve: " + error;
      return failed;
    }
    if (WaitReady(*child, ports[0], log_path, &failed.error)) break;
    if (attempt == kStartAttempts ||
        failed.error.find("Address already in use") == std::string::npos) {
      return failed;
    }
  }

  load::LoadOptions options = setup_.load;
  options.url = {"127.0.0.1", std::to_string(ports[0]), setup_.load.url.target};
  options.stop = setup_.stop;
  if (setup_.warmup_s > 0) {
    options.duration = std::chrono::nanoseconds(static_cast<int64_t>(setup_.warmup_s * 1e9));
    load::RunLoad(options, corpus_);
  }
  options.duration = std::chrono::nanoseconds(static_cast<int64_t>(seconds * 1e9));
  auto result = load::RunLoad(options, corpus_);
  Measurement m = SummarizeRun(result, seconds);
  if (result.interrupted) m.error = "stopped";

  if (want_answers && m.error.empty()) {
    // Each item once, one at a time, in corpus order.
    load::LoadOptions one = options;
    one.rate.reset();
    one.users = 1;
    one.shuffle = false;
    one.duration.reset();
    size_t n = std::min(setup_.agreement_items, corpus_.size());
    one.requests = n;
    m.answers.assign(n, "");
    one.on_answer = [&m](size_t item, const std::string& body) {
      if (item < m.answers.size()) m.answers[item] = body;
    };
    load::RunLoad(one, corpus_);
  }
  child->Stop(std::chrono::seconds(15));
  return m;
}

}  // namespace sg::serve
