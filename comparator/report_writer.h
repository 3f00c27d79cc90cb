// Reports: report.json (the schema in docs/comparator.md), report.md and report.html, all
// rendered from the one report object, so the three always agree.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/pair_record.h"

namespace sg::comparator {

class Comparison;
struct GateConfig;

struct ReportInputs {
  std::string run;                      // run name (the report directory's name by default)
  std::vector<std::string> pair_files;  // where the pairs came from
  std::string rules_file;
  std::string gates_file;
  std::vector<std::string> mirrors;  // sg-compare --mirror: only these mirrors (empty: all)
};

inline constexpr const char* kReportSchema = "shadowgate.comparison.v1";

// {"schema", "run", "generated_at", "inputs", "verdict", "comparison"}.
nlohmann::json BuildReport(const Comparison& comparison, const GateConfig& gates,
                           const ReportInputs& inputs);

// The progressive cutovers' decisions found in the logs ("cutover" lines), in time order: the
// report's "cutover_decisions" (each line's fields, plus "at", its time in UTC).
nlohmann::json CutoverDecisionsJson(std::vector<CutoverDecision> decisions);

std::string RenderMarkdown(const nlohmann::json& report);
std::string RenderHtml(const nlohmann::json& report);

// Writes report.json, report.md and report.html into `dir` (created when missing). False with
// `error` on an I/O failure.
bool WriteReports(const nlohmann::json& report, const std::filesystem::path& dir,
                  std::string* error);

}  // namespace sg::comparator
