// sg-compare: judge pair logs, issue a cutover verdict and write reports.
//
//   sg-compare report --pairs FILE|FOLDER... [--rules FILE] [--gates FILE] --out DIR [--run NAME]
//       exit 0 PASS, 1 FAIL, 3 MARGINAL, 4 INSUFFICIENT_DATA, 2 bad input
//       without --rules / --gates: the built-in configs/compare-default.json and configs/gates.json
//   sg-compare check [--rules FILE] [--gates FILE]     validate configs (exit 0, or 2)
//   sg-compare capacity --fleet FILE (--tune FILE | --pod-rps X --pod-cpus N)
//                       (--pairs FILE... | --peak-rps X) [--json]    pods and yearly cost
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/cli.h"
#include "common/config.h"
#include "common/logging.h"
#include "comparator/capacity.h"
#include "comparator/capacity_command.h"
#include "comparator/compare_config.h"
#include "comparator/comparison.h"
#include "comparator/gates.h"
#include "comparator/pair_log_reader.h"
#include "comparator/report_writer.h"

namespace {

constexpr int kBadInput = 2;

template <typename T, typename F>
bool Load(const std::string& path, F load, T* out) {
  try {
    *out = load(path);
    return true;
  } catch (const sg::ConfigError& e) {
    for (const auto& problem : e.problems()) std::cerr << problem << "\n";
    return false;
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sg::comparator;
  CLI::App app{"sg-compare: judge shadow traffic pairs, issue a cutover verdict, write reports"};
  sg::AddVersionFlag(app, "sg-compare");
  sg::LogOptions log_options;
  sg::AddLoggingFlags(app, log_options);
  app.require_subcommand(1, 1);

  auto* report = app.add_subcommand("report", "judge pair logs and write reports/<run>/");
  std::vector<std::string> pair_files;
  std::string rules_path, gates_path, out_dir, run;
  report
      ->add_option("--pairs", pair_files,
                   "pair logs: files (JSONL, plain or zstd), folders (their *.jsonl, "
                   "*.jsonl.N, *.jsonl.N.zst files), \"-\" = stdin; judged as one log in "
                   "time order")
      ->required()
      ->expected(1, -1);
  double reorder_window_s = 60;
  report
      ->add_option("--reorder-window", reorder_window_s,
                   "seconds a log's lines may be out of time order (a pair is written when both "
                   "answers are in); later ones are judged where read and counted late")
      ->check(CLI::NonNegativeNumber);
  report->add_option("--rules", rules_path,
                     "comparison rules (configs/compare*.json; default: the built-in "
                     "configs/compare-default.json, which reads each answer by its shape)");
  report->add_option("--gates", gates_path,
                     "gates (configs/gates*.json; default: the built-in configs/gates.json)");
  report->add_option("--out", out_dir, "report directory, e.g. reports/<run>")->required();
  report->add_option("--run", run, "run name (default: the --out directory's name)");
  std::vector<std::string> mirrors;
  report->add_option("--mirror", mirrors,
                     "judge only this mirror's records (repeatable; default: every mirror; the "
                     "noise-floor mirror is always kept)");
  CapacityFlags report_capacity;  // with --fleet: a capacity section in the report
  AddCapacityFlags(*report, report_capacity);

  auto* check = app.add_subcommand("check", "validate configs and exit");
  std::string check_rules, check_gates;
  check->add_option("--rules", check_rules, "comparison rules");
  check->add_option("--gates", check_gates, "gates");
  bool check_defaults = false;
  check->add_flag("--defaults", check_defaults, "also check the built-in rules and gates");

  auto* capacity =
      app.add_subcommand("capacity", "CPU pods for the production peak, and the yearly saving");
  CapacityFlags capacity_flags;
  std::vector<std::string> capacity_pairs;
  bool capacity_json = false;
  capacity
      ->add_option("--pairs", capacity_pairs,
                   "pair logs to measure the peak from (files or folders, as report's)")
      ->expected(1, -1);
  AddCapacityFlags(*capacity, capacity_flags);
  capacity->get_option("--fleet")->required();
  capacity->add_flag("--json", capacity_json, "print JSON instead of tables and formulas");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : kBadInput;
  }
  if (!sg::SetUpLogging(log_options, "sg-compare")) {
    std::cerr << "unknown log level " << log_options.level << "\n";
    return kBadInput;
  }

  if (check->parsed()) {
    bool ok = true;
    CompareConfig rules;
    GateConfig gates;
    if (!check_rules.empty()) ok &= Load(check_rules, LoadCompareConfig, &rules);
    if (!check_gates.empty()) ok &= Load(check_gates, LoadGateConfig, &gates);
    if (check_defaults) {
      ok &= Load(
          std::string(), [](const std::string&) { return DefaultCompareConfig(); }, &rules);
      ok &= Load(
          std::string(), [](const std::string&) { return DefaultGateConfig(); }, &gates);
    }
    if (check_rules.empty() && check_gates.empty() && !check_defaults) {
      std::cerr << "check: give --rules, --gates and/or --defaults\n";
      return kBadInput;
    }
    if (!ok) return kBadInput;
    std::cout << "ok\n";
    return 0;
  }

  // Folders become their pair-log files (ExpandPairLogInputs); a missing one is bad input.
  std::string error;
  std::vector<std::string> capacity_files, report_files;
  if (!ExpandPairLogInputs(capacity_pairs, &capacity_files, &error) ||
      !ExpandPairLogInputs(pair_files, &report_files, &error)) {
    std::cerr << error << "\n";
    return kBadInput;
  }

  if (capacity->parsed()) {
    nlohmann::json out;
    if (!BuildCapacity(capacity_flags, capacity_files, false, &out, &error)) {
      std::cerr << error << "\n";
      return kBadInput;
    }
    std::cout << (capacity_json ? out.dump(2) + "\n" : RenderCapacityText(out));
    return 0;
  }
  if (report_capacity.fleet.empty() && AnyCapacityFlag(*report)) {
    std::cerr << "report: the capacity flags need --fleet FILE\n";
    return kBadInput;
  }
  // Before judging, so a bad fleet or tune file fails fast; "-" is left to the judging.
  nlohmann::json capacity_section;
  if (!report_capacity.fleet.empty() &&
      !BuildCapacity(report_capacity, report_files, true, &capacity_section, &error)) {
    std::cerr << error << "\n";
    return kBadInput;
  }

  auto rules = std::make_shared<CompareConfig>();
  GateConfig gates;
  bool ok =
      rules_path.empty()
          ? Load(
                rules_path, [](const std::string&) { return DefaultCompareConfig(); }, rules.get())
          : Load(rules_path, LoadCompareConfig, rules.get());
  ok &= gates_path.empty()
            ? Load(
                  gates_path, [](const std::string&) { return DefaultGateConfig(); }, &gates)
            : Load(gates_path, LoadGateConfig, &gates);
  if (!ok) return kBadInput;

  ReadOptions read_options;
  read_options.mirrors.insert(mirrors.begin(), mirrors.end());
  if (!mirrors.empty() && !rules->noise_floor.mirror.empty()) {
    read_options.mirrors.insert(rules->noise_floor.mirror);
  }
  read_options.reorder_window =
      std::chrono::microseconds(static_cast<int64_t>(reorder_window_s * 1e6));
  Comparison comparison(rules);
  std::vector<ReadStats> read_stats;
  size_t most_open = 0;
  if (!ReadPairLogs(report_files, comparison, &read_stats, &error, read_options, &most_open)) {
    std::cerr << error << "\n";
    return kBadInput;
  }
  spdlog::info("{} pair-log files merged by time, at most {} open at once", report_files.size(),
               most_open);
  uint64_t late = 0;
  for (size_t i = 0; i < read_stats.size(); ++i) {
    const ReadStats& stats = read_stats[i];
    spdlog::info(
        "{}: {} lines, {} pairs, {} counters, {} malformed, {} of other mirrors skipped, {} late",
        report_files[i], stats.lines, stats.pairs, stats.counters, stats.malformed, stats.skipped,
        stats.late);
    late += stats.late;
  }
  if (late > 0) {
    spdlog::warn(
        "{} records were more than --reorder-window ({} s) out of time order in their log: "
        "judged where read",
        late, reorder_window_s);
  }
  ReportInputs inputs;
  inputs.run = run.empty() ? std::filesystem::path(out_dir).filename().string() : run;
  if (inputs.run.empty()) inputs.run = std::filesystem::path(out_dir).parent_path().filename();
  inputs.pair_files = pair_files;
  inputs.mirrors = mirrors;
  inputs.rules_file = rules_path.empty() ? "(built-in configs/compare-default.json)" : rules_path;
  inputs.gates_file = gates_path.empty() ? "(built-in configs/gates.json)" : gates_path;
  nlohmann::json result = BuildReport(comparison, gates, inputs);
  if (!capacity_section.is_null()) result["capacity"] = std::move(capacity_section);
  std::vector<sg::CutoverDecision> decisions;
  for (auto& stats : read_stats) {
    for (auto& decision : stats.cutover_decisions) decisions.push_back(std::move(decision));
  }
  if (!decisions.empty()) result["cutover_decisions"] = CutoverDecisionsJson(std::move(decisions));

  // The candidates judged: the "model" slices are per mirror (the noise floor's pairs are not
  // among them).
  const auto& by_mirror = result["comparison"]["slices"]["model"];
  for (const auto& wanted : mirrors) {
    const bool found = std::any_of(by_mirror.begin(), by_mirror.end(),
                                   [&](const auto& slice) { return slice["name"] == wanted; });
    if (!found) spdlog::warn("--mirror {}: no pairs in the logs", wanted);
  }
  if (by_mirror.size() > 1) {
    std::string names;
    for (const auto& slice : by_mirror) {
      names += (names.empty() ? "" : ", ") + slice["name"].get<std::string>() + " (" +
               std::to_string(slice["pairs"].get<uint64_t>()) + " pairs)";
    }
    spdlog::warn(
        "the verdict judges several candidates together: {}; use --mirror NAME to "
        "judge one",
        names);
  }
  if (!WriteReports(result, out_dir, &error)) {
    std::cerr << error << "\n";
    return kBadInput;
  }

  const auto& verdict = result["verdict"];
  std::cout << "verdict: " << verdict["verdict"].get<std::string>() << " (" << comparison.pairs()
            << " pairs, " << comparison.malformed() << " malformed)\n";
  for (const auto& note : verdict["notes"])
    std::cout << "  note: " << note.get<std::string>() << "\n";
  for (const auto& g : verdict["gates"]) {
    std::cout << "  " << g["status"].get<std::string>() << "  " << g["name"].get<std::string>()
              << ": " << g["reason"].get<std::string>() << "\n";
  }
  std::cout << "reports: " << (std::filesystem::path(out_dir) / "report.{json,md,html}").string()
            << "\n";
  return verdict["exit_code"].get<int>();
}
