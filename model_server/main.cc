// sg-serve: a libtorch CPU model server with TorchServe's API, workers planned and pinned from
// the real CPU budget.
//   sg-serve --config configs/serve.json        serve (exit 2 on a bad config)
//   sg-serve --model NAME=PATH.pt [...]         serve one model without a config file
//   sg-serve --model-store DIR --models NAME=FILE.mar [...] [--ts-config config.properties]
//                                               serve TorchServe archives as torchserve does
//   sg-serve plan [--workers N] [...]           print the CPU plan and its reasons
//   sg-serve doctor [...]                       what hurts CPU inference on this machine
//   sg-serve tune --slo-p99-ms MS CORPUS [...]   measure configurations, write the best one
//   sg-serve worker ...                         internal: one pinned worker process
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "common/cli.h"
#include "common/logging.h"
#include "common/strings.h"
#include "model_server/cpu_budget.h"
#include "model_server/cpu_plan.h"
#include "model_server/doctor.h"
#include "model_server/model_runner.h"
#include "model_server/serve_config.h"
#include "model_server/serve_server.h"
#include "model_server/torchserve_config.h"
#include "model_server/tune_command.h"
#include "model_server/worker_main.h"

extern char** environ;

namespace {

using namespace sg::serve;

struct QuickFlags {
  std::string config;
  std::string model;  // NAME=PATH
  std::string handler;
  std::string labels;
  int workers = -1;
  int threads = -1;
  int front_cpus = -1;
  std::string pinning;
  std::string cpu_root;
  bool use_logical_cores = false;
  std::string inference_address, management_address, metrics_address;
  TorchServeFlags torchserve;  // --ts-config, --model-store, --models, --enable-model-api
};

// The folder TorchServe archives are extracted into, made on first use and removed with
// everything in it when sg-serve ends.
class ArchiveWorkDir {
 public:
  ArchiveWorkDir() = default;
  ~ArchiveWorkDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  ArchiveWorkDir(const ArchiveWorkDir&) = delete;
  ArchiveWorkDir& operator=(const ArchiveWorkDir&) = delete;
  // Throws sg::ConfigError when it cannot be made.
  const std::string& Path() {
    if (path_.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/sg-serve-archives-XXXXXX";
      if (!mkdtemp(dir.data())) {
        throw sg::ConfigError({"cannot create a folder for archives under " +
                               dir.substr(0, dir.rfind('/')) + ": " + std::strerror(errno)});
      }
      path_ = dir;
    }
    return path_;
  }

 private:
  std::string path_;
};

std::map<std::string, std::string> Environment() {
  std::map<std::string, std::string> out;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return out;
}

// Started the TorchServe way: its flags, or neither --config nor --model with a
// config.properties to read (TS_CONFIG_FILE or ./config.properties).
bool TorchServeStyle(const QuickFlags& f) {
  if (f.torchserve.Given()) return true;
  if (!f.config.empty() || !f.model.empty()) return false;
  const char* file = std::getenv("TS_CONFIG_FILE");
  std::error_code ec;
  return (file && *file) || std::filesystem::is_regular_file("config.properties", ec);
}

// The config from --config, the quick form or TorchServe's files and flags (archives extracted
// into `archives`); throws sg::ConfigError. `startup_timeout`, when not null, receives
// config.properties' default_startup_timeout.
ServeConfig BuildConfig(const QuickFlags& f, ArchiveWorkDir& archives,
                        std::optional<std::chrono::seconds>* startup_timeout = nullptr) {
  ServeConfig config;
  if (TorchServeStyle(f)) {
    if (!f.config.empty() || !f.model.empty()) {
      throw sg::ConfigError(
          {"--config and --model do not go with TorchServe's --ts-config, "
           "--model-store, --models and --enable-model-api"});
    }
    auto start =
        LoadTorchServeStart(f.torchserve, Environment(), "config.properties", archives.Path());
    if (!start.properties_file.empty()) spdlog::info("config: {}", start.properties_file);
    for (const auto& w : start.warnings) spdlog::warn("{}", w);
    if (startup_timeout) *startup_timeout = start.startup_timeout;
    config = std::move(start.config);
  } else if (!f.config.empty()) {
    if (!f.model.empty()) throw sg::ConfigError({"--model and --config are exclusive"});
    config = LoadServeConfig(f.config);
  } else if (!f.model.empty()) {
    auto eq = f.model.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == f.model.size()) {
      throw sg::ConfigError({"--model: expected NAME=PATH.pt, got \"" + f.model + "\""});
    }
    nlohmann::json model = {{"path", f.model.substr(eq + 1)}};
    if (!f.handler.empty()) model["handler"] = f.handler;
    if (!f.labels.empty()) model["labels"] = f.labels;
    nlohmann::json doc = {{"models", {{f.model.substr(0, eq), model}}}};
    config = sg::ParseConfig<ServeConfig>(doc.dump(), "--model", ParseServeConfig);
  } else {
    throw sg::ConfigError(
        {"give --config FILE, --model NAME=PATH.pt, or TorchServe's "
         "--model-store DIR --models NAME=FILE.mar"});
  }
  if (f.workers >= 0) config.cpu.workers = f.workers;
  if (f.threads >= 0) config.cpu.threads_per_worker = f.threads;
  if (f.front_cpus >= 0) config.cpu.front_cpus = f.front_cpus;
  if (f.use_logical_cores) config.cpu.use_logical_cores = true;
  if (!f.pinning.empty()) {
    if (f.pinning != "on" && f.pinning != "off") {
      throw sg::ConfigError({"--pinning: must be on or off, got \"" + f.pinning + "\""});
    }
    config.cpu.pinning = f.pinning == "on";
  }
  if (!f.cpu_root.empty()) config.cpu_root = f.cpu_root;
  for (auto [flag, field] : {std::pair{&f.inference_address, &config.inference_address},
                             std::pair{&f.management_address, &config.management_address},
                             std::pair{&f.metrics_address, &config.metrics_address}}) {
    std::string error;
    if (!flag->empty() && !NormalizeAddress(*flag, field, &error)) {
      throw sg::ConfigError({"address: " + error});
    }
  }
  // --workers on the quick form is the model's worker count.
  if (!f.model.empty() && f.workers > 0) config.models[0].workers = f.workers;
  return config;
}

std::map<std::string, std::string> InterestingEnv() {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : Environment()) {
    if (name.rfind("OMP_", 0) == 0 || name.rfind("GOMP_", 0) == 0 || name.rfind("KMP_", 0) == 0 ||
        name.rfind("MKL_", 0) == 0 || name.rfind("OPENBLAS_", 0) == 0) {
      out[name] = value;
    }
  }
  return out;
}

// The affinity mask to plan from. libgomp (loaded with libtorch) applies OMP_PROC_BIND /
// GOMP_CPU_AFFINITY to this process before main() runs, pinning it to the first place: the mask
// it had at exec is lost. Then plan from the cgroup cpuset and online CPUs instead, and give the
// front process its whole budget back.
std::vector<int> StartupAffinity(const std::string& cpu_root) {
  bool pinned_by_openmp = false;
  for (const char* name : {"OMP_PROC_BIND", "GOMP_CPU_AFFINITY", "OMP_PLACES", "KMP_AFFINITY"}) {
    if (getenv(name)) pinned_by_openmp = true;
  }
  if (!pinned_by_openmp) return CurrentAffinity();
  std::vector<int> all;
  for (int c = 0; c < CPU_SETSIZE; ++c) all.push_back(c);
  auto budget = DiscoverCpuBudget(cpu_root, all);
  spdlog::warn(
      "OpenMP pinning variables are set: libgomp has pinned this process; planning from "
      "the cgroup cpuset and online CPUs ({}) instead of the affinity mask",
      FormatCpuList(budget.allowed));
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : budget.allowed) CPU_SET(c, &set);
  if (!budget.allowed.empty()) sched_setaffinity(0, sizeof set, &set);
  return budget.allowed;
}

CpuPlan PlanFor(const QuickFlags& f, const CpuBudget& budget, ArchiveWorkDir& archives) {
  // Without a config the plan is the CPU flags alone.
  if (f.config.empty() && f.model.empty() && !TorchServeStyle(f)) {
    PlanRequest request;
    request.workers = std::max(0, f.workers);
    request.threads_per_worker = std::max(0, f.threads);
    request.use_logical_cores = f.use_logical_cores;
    request.pinning = f.pinning != "off";
    request.front_cpus = std::max(0, f.front_cpus);
    return PlanWorkers(budget, request);
  }
  auto config = BuildConfig(f, archives);
  std::vector<int> counts;
  for (const auto& m : config.models) counts.push_back(m.workers);
  return PlanModels(budget, config.cpu, counts).plan;
}

int Serve(const QuickFlags& flags, const sg::LogOptions& log) {
  ServeConfig config;
  ArchiveWorkDir archives;
  std::optional<std::chrono::seconds> startup_timeout;
  try {
    config = BuildConfig(flags, archives, &startup_timeout);
  } catch (const sg::ConfigError& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  auto budget = DiscoverCpuBudget(config.cpu_root, StartupAffinity(config.cpu_root));
  for (const auto& note : budget.notes) spdlog::info("cpu: {}", note);

  PoolEnvironment env;
  env.self_exe = std::filesystem::read_symlink("/proc/self/exe").string();
  env.log_level = log.level;
  if (startup_timeout) env.worker_start_timeout = *startup_timeout;
  // Workers' Unix sockets live in a private directory under $TMPDIR (or /tmp).
  const char* tmp = std::getenv("TMPDIR");
  std::string dir_template = std::string(tmp && *tmp ? tmp : "/tmp") + "/sg-serve-XXXXXX";
  if (!mkdtemp(dir_template.data())) {
    spdlog::error("cannot create a socket directory under {}: {}",
                  dir_template.substr(0, dir_template.rfind('/')), std::strerror(errno));
    return 1;
  }
  env.socket_dir = dir_template;

  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  ServeServer server(config, budget, env);
  std::string error;
  if (!server.Start(io, &error)) {
    spdlog::error("cannot start: {}", error);
    server.Stop(std::chrono::milliseconds(0));
    std::filesystem::remove_all(env.socket_dir);
    return 1;
  }
  spdlog::info("cpu plan:\n{}", DescribePlan(server.plan()));
  spdlog::info("listening: inference {}:{}, management {}:{}, metrics {}:{}",
               sg::ParseHostPort(config.inference_address)->host, server.inference_port(),
               sg::ParseHostPort(config.management_address)->host, server.management_port(),
               sg::ParseHostPort(config.metrics_address)->host, server.metrics_port());

  std::promise<int> stop;
  auto stopped = stop.get_future();
  std::atomic<bool> stop_set{false};
  auto request_stop = [&](int code) {
    if (!stop_set.exchange(true)) stop.set_value(code);
  };
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (!ec) {
      spdlog::info("signal {}: stopping gracefully", signal);
      request_stop(0);
    }
  });
  // I/O threads: parsing and writing, and with front CPUs the image preprocessing (inference
  // runs in the worker processes). Two when the front may use two CPUs or more; one on a single
  // CPU, where a second only contends with the first (and with the workers) on every request.
  const auto& plan = server.plan();
  int io_thread_count = plan.front_cpus.empty()
                            ? std::clamp(std::min(plan.logical_cpus, plan.budget), 1, 2)
                            : std::clamp(static_cast<int>(plan.front_cpus.size()), 1, 2);
  std::vector<std::thread> io_threads;
  for (int i = 0; i < io_thread_count; ++i) io_threads.emplace_back([&io] { io.run(); });

  // Start-up: a model that cannot load at all is a start-up error, not a silent retry loop.
  auto start_deadline = std::chrono::steady_clock::now() + env.worker_start_timeout;
  bool announced = false;
  int code = 0;
  while (true) {
    if (stopped.wait_for(std::chrono::milliseconds(50)) == std::future_status::ready) break;
    if (announced) continue;
    if (server.Healthy()) {
      spdlog::info("all workers ready");
      announced = true;
    } else if (auto e = server.StartupError(); !e.empty()) {
      spdlog::error("cannot start: {}", e);
      code = 1;
      request_stop(1);
    } else if (std::chrono::steady_clock::now() > start_deadline) {
      announced = true;  // keep serving; /ping reports Unhealthy
      spdlog::warn("workers not ready after {} s", env.worker_start_timeout.count() / 1000);
    }
  }
  code = std::max(code, stopped.get());
  server.Stop(std::chrono::seconds(10));
  signals.cancel();
  guard.reset();
  // Connections closing after their last response end the I/O threads; then force the rest.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  io.stop();
  for (auto& t : io_threads) t.join();
  std::filesystem::remove_all(env.socket_dir);
  spdlog::info("stopped");
  spdlog::shutdown();
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sg-serve: libtorch CPU model server with TorchServe's API and pinned workers"};
  sg::AddVersionFlag(app, "sg-serve");
  app.fallthrough();
  sg::LogOptions log;
  sg::AddLoggingFlags(app, log);
  QuickFlags flags;
  app.add_option("--config", flags.config, "JSON config file (see docs/model-server.md)");
  app.add_option("--model", flags.model, "quick form: NAME=PATH.pt");
  app.add_option("--handler", flags.handler, "image_classifier | image_scorer | tensor");
  app.add_option("--labels", flags.labels, "index_to_name.json for image_classifier");
  app.add_option("--workers", flags.workers, "worker processes (default: planned)");
  app.add_option("--threads-per-worker", flags.threads, "threads per worker (default: planned)");
  app.add_option("--front-cpus", flags.front_cpus,
                 "CPUs reserved for the front (HTTP, image decoding); default 0: shared");
  app.add_option("--pinning", flags.pinning, "on | off (off: the naive unpinned setup)");
  app.add_flag("--use-logical-cores", flags.use_logical_cores, "plan hyperthread siblings too");
  app.add_option("--cpu-root", flags.cpu_root, "root prefix for /sys and /proc (tests)");
  app.add_option("--inference-address", flags.inference_address, "host:port");
  app.add_option("--management-address", flags.management_address, "host:port");
  app.add_option("--metrics-address", flags.metrics_address, "host:port");
  // TorchServe's `torchserve --start` flags (docs/model-server.md, "Coming from TorchServe").
  auto& ts = flags.torchserve;
  app.add_option("--ts-config", ts.ts_config, "TorchServe's config.properties");
  app.add_option("--model-store", ts.model_store, "TorchServe model store (folder of .mar files)");
  app.add_option("--models", ts.models, "NAME=FILE.mar ..., FILE.mar ... or all (model store)")
      ->expected(1, -1);
  app.add_flag("--enable-model-api", ts.enable_model_api,
               "register and unregister models over the management API");
  bool ts_accepted = false, ts_stop = false;
  std::string ts_log_config, ts_cpp_log_config, ts_workflow_store, ts_plugins_path;
  app.add_flag("--start,--foreground,--ncs,--no-config-snapshots,--disable-token-auth", ts_accepted,
               "TorchServe's: accepted (sg-serve runs in the foreground, writes no snapshots, "
               "has no token authorization)");
  app.add_flag("--stop", ts_stop, "TorchServe's: refused (stop sg-serve with SIGTERM)");
  app.add_option("--log-config", ts_log_config, "TorchServe's log4j2 file: ignored (--log-level)");
  app.add_option("--cpp-log-config", ts_cpp_log_config, "TorchServe's: ignored (--log-level)");
  app.add_option("--workflow-store", ts_workflow_store, "TorchServe's: refused (no workflows)");
  app.add_option("--plugins-path,--ppath", ts_plugins_path,
                 "TorchServe's: refused (its plugins are Java)");

  auto* plan_cmd = app.add_subcommand("plan", "print the CPU plan and its reasons, start nothing");
  auto* doctor_cmd = app.add_subcommand("doctor", "report what hurts CPU inference here");
  TuneFlags tune;
  auto* tune_cmd = AddTuneCommand(app, tune);
  auto* worker_cmd = app.add_subcommand("worker", "internal: run one worker (started by sg-serve)");
  WorkerArgs worker;
  worker_cmd->add_option("--socket", worker.socket_path)->required();
  worker_cmd->add_option("--spec", worker.spec)->required();
  worker_cmd->add_option("--threads", worker.threads)->required();
  worker_cmd->add_option("--interop-threads", worker.interop_threads);
  worker_cmd->add_option("--batch-memory-fd", worker.batch_memory_fd);
  if (auto exit_code = sg::ParseCommandLine(app, argc, argv)) return *exit_code;
  if (!sg::SetUpLogging(log, worker_cmd->parsed() ? "sg-serve-worker" : "sg-serve")) {
    std::cerr << "unknown log level: " << log.level << "\n";
    return 2;
  }

  if (worker_cmd->parsed()) return RunWorker(worker);
  if (ts_stop) {
    std::cerr << "--stop: sg-serve runs in the foreground; stop it with SIGTERM (kill PID), "
                 "which drains requests in flight\n";
    return 2;
  }
  if (!ts_workflow_store.empty()) {
    std::cerr << "--workflow-store: TorchServe workflows are not served by sg-serve\n";
    return 2;
  }
  if (!ts_plugins_path.empty()) {
    std::cerr << "--plugins-path: TorchServe's plugins are Java classes; sg-serve loads none\n";
    return 2;
  }
  for (const auto* flag : {&ts_log_config, &ts_cpp_log_config}) {
    if (!flag->empty()) {
      spdlog::warn("{}: ignored: sg-serve logs through spdlog (--log-level, --log-json)",
                   flag == &ts_log_config ? "--log-config" : "--cpp-log-config");
    }
  }
  if (tune_cmd->parsed()) {
    try {
      ArchiveWorkDir archives;
      return RunTune(BuildConfig(flags, archives), flags.cpu_root, tune);
    } catch (const sg::ConfigError& e) {
      std::cerr << e.what() << "\n";
      return 2;
    }
  }

  if (plan_cmd->parsed() || doctor_cmd->parsed()) {
    CpuBudget budget = DiscoverCpuBudget(flags.cpu_root, StartupAffinity(flags.cpu_root));
    CpuPlan plan;
    ArchiveWorkDir archives;
    try {
      plan = PlanFor(flags, budget, archives);
    } catch (const sg::ConfigError& e) {
      std::cerr << e.what() << "\n";
      return 2;
    }
    if (plan_cmd->parsed()) {
      std::cout << DescribePlan(plan);
      return 0;
    }
    TouchTorch();  // libtorch and the BLAS it links are now mapped
    std::ifstream maps("/proc/self/maps");
    std::stringstream text;
    text << maps.rdbuf();
    auto findings = Diagnose({budget, plan, InterestingEnv(), text.str()});
    findings.push_back(DiagnoseGpu(ProbeGpus()));
    std::cout << FormatFindings(findings) << "\nplan:\n" << DescribePlan(plan);
    bool bad = std::any_of(findings.begin(), findings.end(),
                           [](const Finding& f) { return f.level == Finding::Level::kBad; });
    return bad ? 1 : 0;
  }
  return Serve(flags, log);
}
