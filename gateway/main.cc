// shadowgate: parse flags, load the config, build the gateway, run until SIGTERM.
//
//   shadowgate --config FILE          run
//   shadowgate check --config FILE    validate only (exit 0, or 2 listing every problem): the
//                                     document, then what it needs from this machine
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "common/cli.h"
#include "common/config.h"
#include "common/logging.h"
#include "comparator/online_comparator.h"
#include "gateway/comparator_pair_sink.h"
#include "gateway/comparison_admin.h"
#include "gateway/config_environment.h"
#include "gateway/fan_out_pair_sink.h"
#include "gateway/gateway.h"
#include "gateway/gateway_config.h"
#include "gateway/jsonl_pair_sink.h"

int main(int argc, char** argv) {
  CLI::App app{"shadowgate: a reverse proxy that mirrors traffic to shadow backends"};
  std::string config_path;
  sg::LogOptions log_options;
  app.add_option("--config", config_path, "gateway config (JSON)")->required();
  sg::AddLoggingFlags(app, log_options);
  auto* check = app.add_subcommand("check", "validate the config and exit");
  std::string check_path;
  check->add_option("--config", check_path, "gateway config (JSON)")->required();
  sg::AddVersionFlag(app, "shadowgate");
  app.require_subcommand(0, 1);
  // The top-level --config is optional when the check subcommand carries its own.
  app.get_option("--config")->required(false);
  if (auto exit_code = sg::ParseCommandLine(app, argc, argv)) return *exit_code;

  if (check->parsed()) {
    sg::gateway::GatewayConfig checked;
    try {
      checked = sg::gateway::LoadGatewayConfig(check_path);
    } catch (const sg::ConfigError& e) {
      for (const auto& problem : e.problems()) std::cerr << problem << "\n";
      return 2;
    }
    auto problems = sg::gateway::CheckGatewayEnvironment(check_path, checked);
    for (const auto& problem : problems) std::cerr << problem << "\n";
    if (!problems.empty()) return 2;
    std::cout << check_path << ": ok\n";
    return 0;
  }
  if (config_path.empty()) {
    std::cerr << "--config is required\n";
    return 2;
  }
  if (!sg::SetUpLogging(log_options, "shadowgate")) {
    std::cerr << "unknown log level " << log_options.level << "\n";
    return 2;
  }
  sg::gateway::GatewayConfig config;
  try {
    config = sg::gateway::LoadGatewayConfig(config_path);
  } catch (const sg::ConfigError& e) {
    for (const auto& problem : e.problems()) std::cerr << problem << "\n";
    return 2;
  }
  // What the machine must provide (names that resolve, folders to write in), before anything
  // starts, with the same JSON paths as `check`.
  if (auto problems = sg::gateway::CheckGatewayEnvironment(config_path, config);
      !problems.empty()) {
    for (const auto& problem : problems) std::cerr << problem << "\n";
    return 2;
  }

  // Pair records go to the pair log, the in-process comparator, or both.
  std::vector<std::shared_ptr<sg::gateway::PairSink>> sinks;
  if (!config.capture.pair_log.path.empty()) {
    std::string error;
    auto jsonl = sg::gateway::JsonlPairSink::Open(config.capture.pair_log, &error);
    if (!jsonl) {
      spdlog::error("{}", error);
      return 1;
    }
    sinks.push_back(std::move(jsonl));
  }
  const auto& comparison = config.comparison;
  std::shared_ptr<sg::comparator::OnlineComparator> online;
  if (comparison.enabled()) {
    if (!comparison.report_dir.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(comparison.report_dir, ec);
      if (ec) {
        spdlog::error("comparison: cannot create report_dir {}: {}", comparison.report_dir,
                      ec.message());
        return 1;
      }
    }
    sg::comparator::OnlineOptions options;
    options.queue_capacity = static_cast<size_t>(comparison.queue_capacity);
    options.run = comparison.run;
    options.rules_file = comparison.rules_path;
    options.gates_file = comparison.gates_path;
    // Resumed here when a checkpoint of this run and rules is there (logged either way).
    options.checkpoint_path = comparison.checkpoint_file;
    options.checkpoint_interval =
        std::chrono::duration_cast<std::chrono::milliseconds>(comparison.checkpoint_interval);
    options.config_sha256 = comparison.rules_sha256;
    online = std::make_shared<sg::comparator::OnlineComparator>(comparison.rules, comparison.gates,
                                                                options);
    sinks.push_back(std::make_shared<sg::gateway::ComparatorPairSink>(online));
  }
  auto sink = sg::gateway::FanOutPairSink::Combine(std::move(sinks));
  {
    sg::gateway::Gateway gateway(config, sink, online);
    std::string error;
    if (!gateway.Start(&error)) {
      spdlog::error("cannot start: {}", error);
      if (sink) sink->Close();
      return 1;
    }
    gateway.Wait();
  }
  // After the I/O threads stopped: flush the pair log and judge every queued record.
  if (sink) sink->Close();
  if (online && comparison.final_report && !comparison.report_dir.empty()) {
    auto dir =
        std::filesystem::path(comparison.report_dir) / sg::gateway::TimestampedReportName("final");
    std::string error;
    if (online->WriteReport(dir.string(), &error)) {
      spdlog::info("comparison: final report in {}", dir.string());
    } else {
      spdlog::error("comparison: final report {}: {}", dir.string(), error);
    }
  }
  if (online && !comparison.checkpoint_file.empty()) {
    // The last checkpoint, holding every judged record (the final counters included).
    const uint64_t written_before = online->checkpoint_stats().written;
    online->Close();  // a failure is logged by the comparator
    if (const auto stats = online->checkpoint_stats(); stats.written > written_before) {
      spdlog::info("comparison: last checkpoint written to {} ({} records judged in all)",
                   stats.path, online->queue_stats().judged + stats.resumed_judged);
    }
  }
  spdlog::info("stopped");
  return 0;
}
