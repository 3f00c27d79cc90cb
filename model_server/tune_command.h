// `sg-serve tune`: the subcommand's flags and its run (see docs/model-server.md, "Tuning").
// The model comes from sg-serve's own --config or quick-form flags (parsed by main.cc into a
// ServeConfig); the corpus from sg-load's sources.
#pragma once

#include <string>
#include <vector>

#include "model_server/serve_config.h"

namespace CLI {
class App;
}

namespace sg::serve {

struct TuneFlags {
  // The corpus (exactly one), as sg-load takes it.
  std::string corpus_dir, fashion_mnist, pair_log;
  size_t limit = 0;       // first N items; 0: all
  std::string path;       // request target; default /predictions/<model>
  double slo_p99_ms = 0;  // required
  std::string budget = "5m";
  std::string out = "tune-out";
  int users = 0;    // closed loop; 0: 4 per allowed CPU
  double rate = 0;  // open loop when > 0
  std::string arrival = "constant";
  double warmup_s = 1;
  double min_measure_s = 1;
  double noise = 0.05;
  int repeats = 3;
  int eta = 3;
  std::string batch_sizes = "1,4";
  int batch_delay_ms = 2;
  std::string pinning = "on,off";
  std::string front = "on";  // try front_cpus 1 (image handlers only)
  std::string optimize = "on,off";
  std::string precisions = "fp32,bf16,int8";
  std::string channels_last = "off";  // on,off: also try channels-last memory format
  double min_agreement = 0.99;
  size_t agreement_items = 200;
  bool exhaustive = false;        // measure the whole product space once each
  double measure_s = 5;           // with --exhaustive: each run's length
  std::vector<std::string> only;  // with --exhaustive: only these configurations (labels)
};

// Adds the subcommand to sg-serve's app.
CLI::App* AddTuneCommand(CLI::App& app, TuneFlags& flags);

// Runs the search and writes the outputs. Exit codes: 0 a winner, 1 nothing met the SLO,
// 2 bad flags or corpus, 130 interrupted (what was measured is still printed and written).
int RunTune(const ServeConfig& base, const std::string& cpu_root, const TuneFlags& flags);

}  // namespace sg::serve
