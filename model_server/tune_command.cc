#include "model_server/tune_command.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>

#include "common/config.h"
#include "common/strings.h"
#include "model_server/cpu_budget.h"
#include "model_server/cpu_plan.h"
#include "model_server/tune_measure.h"
#include "model_server/tune_report.h"
#include "model_server/tune_search.h"

namespace sg::serve {
namespace {

namespace fs = std::filesystem;

// Set by the first SIGINT/SIGTERM; a second one ends the process at once (the servers die with
// it: they are started with die_with_parent).
std::atomic<bool> g_stop{false};

void OnSignal(int) {
  if (g_stop.exchange(true)) _exit(130);
}

void InstallSignalHandlers() {
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "sg-serve tune: %s\n", message.c_str());
  return 2;
}

// "5m", "90s", "300" (seconds) -> seconds; nullopt when unreadable.
std::optional<double> ParseSeconds(std::string text) {
  if (!text.empty() && text.find_first_not_of("0123456789.") == std::string::npos) text += "s";
  try {
    auto us =
        ParseConfig<std::chrono::microseconds>(nlohmann::json(text).dump(), "--budget",
                                               [](const ConfigNode& n) { return n.AsDuration(); });
    return static_cast<double>(us.count()) / 1e6;
  } catch (const ConfigError&) {
    return std::nullopt;
  }
}

// "on,off" -> {true, false}; nullopt on anything but on/off.
std::optional<std::vector<bool>> OnOffList(const std::string& text) {
  std::vector<bool> out;
  for (const auto& item : Split(text, ',')) {
    std::string v(Trim(item));
    if (v != "on" && v != "off") return std::nullopt;
    out.push_back(v == "on");
  }
  if (out.empty()) return std::nullopt;
  return out;
}

bool WriteFile(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  return static_cast<bool>(out);
}

std::optional<std::vector<load::CorpusItem>> LoadCorpus(const TuneFlags& f, std::string* error) {
  int sources = !f.corpus_dir.empty() + !f.fashion_mnist.empty() + !f.pair_log.empty();
  if (sources != 1) {
    *error = "give exactly one of --corpus DIR, --fashion-mnist PATH, --pair-log FILE";
    return std::nullopt;
  }
  std::optional<std::vector<load::CorpusItem>> items;
  if (!f.corpus_dir.empty()) {
    items = load::LoadDirectoryCorpus(f.corpus_dir, error);
  } else if (!f.fashion_mnist.empty()) {
    items = load::LoadFashionMnistCorpus(f.fashion_mnist, f.limit, error);
  } else {
    size_t skipped = 0;
    items = load::LoadPairLogCorpus(f.pair_log, "", &skipped, error);
  }
  if (items && f.limit > 0 && items->size() > f.limit) items->resize(f.limit);
  if (items && items->empty()) {
    *error = "the corpus is empty";
    return std::nullopt;
  }
  return items;
}

// The space on this machine's CPU budget, with the flags' dimensions.
std::optional<TuneSpace> BuildSpace(const TuneFlags& f, const CpuBudget& budget,
                                    const ModelConfig& model, std::string* error) {
  auto pinning = OnOffList(f.pinning);
  auto front = OnOffList(f.front);
  auto optimize = OnOffList(f.optimize);
  auto channels_last = OnOffList(f.channels_last);
  if (!pinning || !front || !optimize || !channels_last) {
    *error = "--pinning, --front, --optimize and --channels-last take a list of on/off";
    return std::nullopt;
  }
  TuneSpace space;
  CpuPlan physical = PlanWorkers(budget, PlanRequest{});
  PlanRequest logical_request;
  logical_request.use_logical_cores = true;
  CpuPlan logical = PlanWorkers(budget, logical_request);
  space.plan.workers = static_cast<int>(physical.workers.size());
  space.plan.threads = physical.workers.empty() ? 1 : physical.workers.front().threads;
  bool image = model.handler != HandlerKind::kTensor;
  space.layouts = CpuLayouts(physical.budget, logical.budget, physical.logical_cpus,
                             image && front->front(), *pinning, space.plan);
  space.naive = NaiveConfig(physical.logical_cpus);
  space.batching.clear();
  for (const auto& item : Split(f.batch_sizes, ',')) {
    int size = std::atoi(std::string(Trim(item)).c_str());
    if (size < 1) {
      *error = "--batch-sizes: a list of sizes >= 1, got \"" + f.batch_sizes + "\"";
      return std::nullopt;
    }
    int delay = size == 1 ? static_cast<int>(model.max_batch_delay.count()) : f.batch_delay_ms;
    space.batching.emplace_back(size, delay);
  }
  space.variants.clear();
  for (bool opt : *optimize) {
    for (const auto& item : Split(f.precisions, ',')) {
      std::string p(Trim(item));
      if (p != "fp32" && p != "bf16" && p != "int8") {
        *error = "--precisions: a list of fp32, bf16 and int8, got \"" + f.precisions + "\"";
        return std::nullopt;
      }
      for (bool cl : *channels_last) space.variants.push_back({opt, p, cl});
    }
  }
  // The first variant is the one every layout is measured with first: fp32 when it is there.
  std::stable_partition(space.variants.begin(), space.variants.end(),
                        [](const ModelVariant& v) { return v.precision == "fp32"; });
  return space;
}

}  // namespace

CLI::App* AddTuneCommand(CLI::App& app, TuneFlags& f) {
  auto* cmd = app.add_subcommand(
      "tune",
      "measure configurations of one model (--config or --model) over HTTP and write the fastest "
      "one meeting --slo-p99-ms as a config file (see docs/model-server.md)");
  cmd->add_option("--corpus", f.corpus_dir, "directory of request bodies, one per file");
  cmd->add_option("--fashion-mnist", f.fashion_mnist, "Fashion-MNIST test set, sent as PNG");
  cmd->add_option("--pair-log", f.pair_log, "the captured requests of a pair log (JSONL)");
  cmd->add_option("--limit", f.limit, "only the first N corpus items (0: all)");
  cmd->add_option("--path", f.path, "request target (default /predictions/<model>)");
  cmd->add_option("--slo-p99-ms", f.slo_p99_ms, "p99 latency objective, ms")
      ->required()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--budget", f.budget, "time for the whole search (90s, 5m)")
      ->capture_default_str();
  cmd->add_option("--out", f.out, "output directory")->capture_default_str();
  cmd->add_option("--users", f.users, "closed loop: concurrent users (default 4 per CPU)");
  cmd->add_option("--rate", f.rate, "open loop instead: requests per second")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--arrival", f.arrival, "open loop arrivals: constant or poisson")
      ->check(CLI::IsMember({"constant", "poisson"}));
  cmd->add_option("--warmup", f.warmup_s, "seconds of load before each run, not counted")
      ->capture_default_str();
  cmd->add_option("--min-measure", f.min_measure_s, "shortest run, seconds")->capture_default_str();
  cmd->add_option("--noise", f.noise, "relative throughput difference treated as a tie")
      ->capture_default_str();
  cmd->add_option("--repeats", f.repeats, "runs per leader when they tie")->capture_default_str();
  cmd->add_option("--eta", f.eta, "keep 1/eta per round")->check(CLI::Range(2, 10));
  cmd->add_option("--batch-sizes", f.batch_sizes, "batch sizes to try")->capture_default_str();
  cmd->add_option("--batch-delay-ms", f.batch_delay_ms, "batch delay with batch size > 1")
      ->capture_default_str();
  cmd->add_option("--pinning", f.pinning, "on, off or on,off")->capture_default_str();
  cmd->add_option("--front", f.front, "try a front CPU (image handlers): on or off")
      ->capture_default_str();
  cmd->add_option("--optimize", f.optimize, "frozen, optimised graph: on, off or on,off")
      ->capture_default_str();
  cmd->add_option("--precisions", f.precisions,
                  "fp32, bf16 (needs avx512_bf16), int8 (dynamic, Linear layers)")
      ->capture_default_str();
  cmd->add_option("--channels-last", f.channels_last,
                  "channels-last memory format: off, on or on,off")
      ->capture_default_str();
  cmd->add_option("--min-agreement", f.min_agreement,
                  "bf16, int8: top-1 agreement with fp32 needed")
      ->capture_default_str();
  cmd->add_option("--agreement-items", f.agreement_items, "corpus items compared with fp32")
      ->capture_default_str();
  cmd->add_flag("--exhaustive", f.exhaustive, "measure every combination once (benchmark)");
  cmd->add_option("--measure-seconds", f.measure_s, "with --exhaustive: each run's length")
      ->capture_default_str();
  cmd->add_option("--only", f.only,
                  "with --exhaustive: only this configuration, labelled as in the table "
                  "(repeatable; a head-to-head)");
  return cmd;
}

int RunTune(const ServeConfig& config, const std::string& cpu_root, const TuneFlags& f) {
  if (config.models.size() != 1) {
    return Fail("tune measures one model; the config has " + std::to_string(config.models.size()));
  }
  ServeConfig base = config;
  ModelConfig& model = base.models.front();
  // The winner's config file lives elsewhere: its paths must not depend on the directory.
  model.path = fs::absolute(model.path).lexically_normal().string();
  if (!model.labels_path.empty()) {
    model.labels_path = fs::absolute(model.labels_path).lexically_normal().string();
  }
  auto budget_s = ParseSeconds(f.budget);
  if (!budget_s || *budget_s <= 0) return Fail("--budget: a duration such as 90s or 5m");
  std::string error;
  auto corpus = LoadCorpus(f, &error);
  if (!corpus) return Fail(error);

  CpuBudget budget = DiscoverCpuBudget(cpu_root, CurrentAffinity());
  auto space = BuildSpace(f, budget, model, &error);
  if (!space) return Fail(error);
  if (!f.only.empty()) {
    if (!f.exhaustive) return Fail("--only needs --exhaustive");
    auto all = space->Product();
    for (const auto& label : f.only) {
      if (std::none_of(all.begin(), all.end(),
                       [&](const TuneConfig& c) { return c.Label() == label; })) {
        return Fail("--only: no configuration \"" + label + "\" in this space");
      }
    }
  }
  int logical_cpus = static_cast<int>(budget.allowed.size());
  int pod_cpus = ThreadBudget(budget);  // the CPUs the pod may use: allowed, capped by the quota

  MeasureSetup setup;
  setup.base = base;
  setup.self_exe = fs::read_symlink("/proc/self/exe").string();
  setup.log_dir = (fs::path(f.out) / "logs").string();
  std::error_code ec;
  fs::create_directories(setup.log_dir, ec);
  if (ec) return Fail("cannot create " + setup.log_dir + ": " + ec.message());
  setup.load.url.target = f.path.empty() ? "/predictions/" + model.name : f.path;
  std::string load_text;
  if (f.rate > 0) {
    setup.load.rate = f.rate;
    setup.load.arrival =
        f.arrival == "poisson" ? load::ArrivalProcess::kPoisson : load::ArrivalProcess::kConstant;
    setup.load.max_connections = 256;
    load_text = "open loop, " + FormatDouble(f.rate) + " req/s (" + f.arrival + ")";
  } else {
    setup.load.users = f.users > 0 ? f.users : 4 * std::max(1, logical_cpus);
    load_text = "closed loop, " + std::to_string(setup.load.users) + " users";
  }
  setup.warmup_s = f.warmup_s;
  setup.agreement_items = f.agreement_items;
  setup.stop = &g_stop;
  ServeMeasurer measurer(setup, *corpus);

  SearchOptions options;
  options.budget_s = *budget_s;
  options.slo_p99_ms = f.slo_p99_ms;
  options.eta = f.eta;
  options.min_measure_s = f.min_measure_s;
  options.noise = f.noise;
  options.max_repeats = f.repeats;
  options.min_agreement = f.min_agreement;
  options.overhead_s = 1.5 + f.warmup_s;
  auto start = std::chrono::steady_clock::now();
  options.clock = [start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  options.progress = [](const std::string& line) {
    std::fprintf(stderr, "tune: %s\n", line.c_str());
    std::fflush(stderr);
  };

  std::fprintf(stderr,
               "tune: model %s, %zu corpus items, %s, SLO p99 <= %s ms, %d CPUs (%d layouts x "
               "%zu batching x %zu variants), %s\n",
               model.name.c_str(), corpus->size(), load_text.c_str(),
               FormatDouble(f.slo_p99_ms).c_str(), logical_cpus,
               static_cast<int>(space->layouts.size()), space->batching.size(),
               space->variants.size(),
               f.exhaustive ? ("exhaustive, " + FormatDouble(f.measure_s) + " s each").c_str()
                            : ("budget " + FormatDouble(*budget_s) + " s").c_str());
  InstallSignalHandlers();
  SearchResult result = f.exhaustive ? Exhaustive(*space, measurer, options, f.measure_s, f.only)
                                     : SuccessiveHalving(*space, measurer, options);

  std::string table = FormatTuneTable(result, options);
  std::string summary = FormatTuneSummary(result, options);
  std::printf("\n%s\n%s", table.c_str(), summary.c_str());
  fs::path out(f.out);
  std::string mode = f.exhaustive ? "exhaustive" : "successive halving";
  bool written =
      WriteFile(out / "result.json", TuneResultJson(result, options, pod_cpus, mode, load_text)) &&
      WriteFile(out / "table.md", table + "\n" + summary) &&
      WriteFile(out / "runs.csv", TuneRunsCsv(result)) &&
      WriteFile(out / "chart.svg", TuneChartSvg(result, options));
  if (result.winner) {
    written =
        written && WriteFile(out / "serve.json", ServeConfigToJson(ServeConfigFor(
                                                     base, result.trials[*result.winner].config)));
  }
  if (!written) return Fail("cannot write the results to " + f.out);
  std::printf("wrote %s/{result.json,table.md,runs.csv,chart.svg%s}\n", f.out.c_str(),
              result.winner ? ",serve.json" : "");
  std::fflush(stdout);
  if (result.interrupted) return 130;
  return result.winner ? 0 : 1;
}

}  // namespace sg::serve
