// sg-serve: a libtorch CPU model server with TorchServe's API, workers planned and pinned from
// the real CPU budget.
//   sg-serve --config configs/serve.json        serve (exit 2 on a bad config)
//   sg-serve --model NAME=PATH.pt [...]         serve one model without a config file
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
#include "model_server/cpu_budget.h"
#include "model_server/cpu_plan.h"
#include "model_server/doctor.h"
#include "model_server/model_runner.h"
#include "model_server/serve_config.h"
#include "model_server/serve_server.h"
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
};

// The config from --config or the quick form; throws sg::ConfigError.
ServeConfig BuildConfig(const QuickFlags& f) {
  ServeConfig config;
  if (!f.config.empty()) {
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
    throw sg::ConfigError({"give --config FILE or --model NAME=PATH.pt"});
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
    if (flag->empty()) continue;
    if (!ParseHostPort(*flag)) throw sg::ConfigError({"address must be host:port: " + *flag});
    *field = *flag;
  }
  // --workers on the quick form is the model's worker count.
  if (f.config.empty() && f.workers > 0) config.models[0].workers = f.workers;
  return config;
}

std::map<std::string, std::string> InterestingEnv() {
  std::map<std::string, std::string> out;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    std::string name = kv.substr(0, eq);
    if (name.rfind("OMP_", 0) == 0 || name.rfind("GOMP_", 0) == 0 || name.rfind("KMP_", 0) == 0 ||
        name.rfind("MKL_", 0) == 0 || name.rfind("OPENBLAS_", 0) == 0) {
      out[name] = eq == std::string::npos ? "" : kv.substr(eq + 1);
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

CpuPlan PlanFor(const QuickFlags& f, const CpuBudget& budget) {
  // Without a config the plan is the CPU flags alone.
  if (f.config.empty() && f.model.empty()) {
    PlanRequest request;
    request.workers = std::max(0, f.workers);
    request.threads_per_worker = std::max(0, f.threads);
    request.use_logical_cores = f.use_logical_cores;
    request.pinning = f.pinning != "off";
    request.front_cpus = std::max(0, f.front_cpus);
    return PlanWorkers(budget, request);
  }
  auto config = BuildConfig(f);
  std::vector<int> counts;
  for (const auto& m : config.models) counts.push_back(m.workers);
  return PlanModels(budget, config.cpu, counts).plan;
}

int Serve(const QuickFlags& flags, const sg::LogOptions& log) {
  ServeConfig config;
  try {
    config = BuildConfig(flags);
  } catch (const sg::ConfigError& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  auto budget = DiscoverCpuBudget(config.cpu_root, StartupAffinity(config.cpu_root));
  for (const auto& note : budget.notes) spdlog::info("cpu: {}", note);

  PoolEnvironment env;
  env.self_exe = std::filesystem::read_symlink("/proc/self/exe").string();
  env.log_level = log.level;
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
               ParseHostPort(config.inference_address)->first, server.inference_port(),
               ParseHostPort(config.management_address)->first, server.management_port(),
               ParseHostPort(config.metrics_address)->first, server.metrics_port());

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
  if (tune_cmd->parsed()) {
    try {
      return RunTune(BuildConfig(flags), flags.cpu_root, tune);
    } catch (const sg::ConfigError& e) {
      std::cerr << e.what() << "\n";
      return 2;
    }
  }

  if (plan_cmd->parsed() || doctor_cmd->parsed()) {
    CpuBudget budget = DiscoverCpuBudget(flags.cpu_root, StartupAffinity(flags.cpu_root));
    CpuPlan plan;
    try {
      plan = PlanFor(flags, budget);
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
