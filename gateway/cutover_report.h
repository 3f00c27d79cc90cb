// The cutover report: Cutover::ReportJson() rendered as cutover.json, cutover.md and a
// self-contained cutover.html (inline SVG charts of share, candidate errors and disagreement,
// and p99 on each side over time; the decisions listed with their reasons), written into one
// directory. Plain functions of the report object, so the three always agree.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace sg::gateway {

std::string RenderCutoverMarkdown(const nlohmann::json& report);
std::string RenderCutoverHtml(const nlohmann::json& report);
// Writes cutover.json, cutover.md and cutover.html into `dir` (created when missing). False with
// `error` on an I/O failure.
bool WriteCutoverReport(const nlohmann::json& report, const std::filesystem::path& dir,
                        std::string* error);

}  // namespace sg::gateway
