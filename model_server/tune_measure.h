// The real `Measurer` of `sg-serve tune`: each measurement starts a real sg-serve child process
// with the configuration to measure (free loopback ports, its log in a file), waits until /ping
// says Healthy, drives it with sg-load's engine for a warm-up (not counted) and then for the
// measured run, and stops it (SIGTERM). One configuration at a time, so runs never compete.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "model_server/serve_config.h"
#include "model_server/tune_search.h"
#include "tools/load/corpus.h"
#include "tools/load/load_runner.h"

namespace sg::serve {

// `base` (one model) with `config` applied: the CPU section, and the model's batching,
// optimisation and precision; the model's own `workers` is cleared so the CPU section decides.
ServeConfig ServeConfigFor(const ServeConfig& base, const TuneConfig& config);

// A config file sg-serve reads back to the same ServeConfig (paths as resolved, absolute when
// they were).
std::string ServeConfigToJson(const ServeConfig& config);

struct MeasureSetup {
  ServeConfig base;      // the user's config (one model)
  std::string self_exe;  // the sg-serve executable to start
  std::string log_dir;   // each server's log: <log_dir>/<n>.log
  // The load of every run: closed loop (`users`) or open loop (`rate`), with its url left to the
  // measurer; `duration` and `requests` are set per run.
  load::LoadOptions load;
  double warmup_s = 1;           // load before each measured run, not counted
  size_t agreement_items = 200;  // corpus items whose answers are compared (numerics)
  std::chrono::seconds start_timeout{120};
  const std::atomic<bool>* stop = nullptr;  // set by SIGINT
};

class ServeMeasurer : public Measurer {
 public:
  // REQUIRES: !corpus.empty(); `corpus` outlives the measurer.
  ServeMeasurer(MeasureSetup setup, const std::vector<load::CorpusItem>& corpus);

  Measurement Measure(const TuneConfig& config, double seconds, bool want_answers) override;
  bool Stopped() const override { return setup_.stop && setup_.stop->load(); }

 private:
  bool WaitReady(Subprocess& child, int port, const std::string& log_path, std::string* error);

  MeasureSetup setup_;
  const std::vector<load::CorpusItem>& corpus_;
  int started_ = 0;
};

// The summary a Measurement keeps of one load run (the Locust columns and the p99).
Measurement SummarizeRun(const load::LoadResult& result, double seconds);

}  // namespace sg::serve
