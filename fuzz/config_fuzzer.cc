// libFuzzer target: one config document through the config reader (common/config.h ParseConfig)
// with each parse function the executables use: the gateway's (ParseGatewayConfig), the
// comparator's rules and gates (ParseCompareConfig, ParseGateConfig) and sg-serve's
// (ParseServeConfig). Every problem must come out as a ConfigError (any other exception
// escapes and is reported as a crash). Oracles besides "no crash":
//  - a gateway config that parses prints (GatewayConfigToJson, /admin/config) a document that
//    parses back to the same config;
//  - each model of a serve config that parses survives ModelConfigToJson and
//    ModelConfigFromJson (the front sends it so to its workers).
//
// The gateway's parser reads the files its comparison section (rules, gates) and admin section
// (token_file) name: inputs naming a file outside configs/ (e.g. /dev/zero, which would never
// end) are skipped, so the fuzzer reads only the shipped configs.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <nlohmann/json.hpp>

#include "common/config.h"
#include "comparator/compare_config.h"
#include "comparator/gates.h"
#include "gateway/gateway_config.h"
#include "model_server/serve_config.h"

namespace {

namespace fs = std::filesystem;

// The config's name: relative paths in it resolve against the repository's configs/.
const std::string kConfigDir = SG_SOURCE_DIR "/configs";
const std::string kFile = kConfigDir + "/fuzz.json";

[[noreturn]] void Fail(const char* what, std::string_view text, std::string_view detail = {}) {
  std::fprintf(stderr, "config_fuzzer: %s\ndocument: %.*s\n%.*s\n", what,
               static_cast<int>(text.size()), text.data(), static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

// True when every file the gateway's parser reads (comparison.rules, comparison.gates,
// admin.token_file: any string under those keys, at any depth) is empty or a regular file in
// configs/.
bool NamesOnlyShippedFiles(const nlohmann::json& value) {
  if (value.is_array()) {
    for (const auto& element : value) {
      if (!NamesOnlyShippedFiles(element)) return false;
    }
    return true;
  }
  if (!value.is_object()) return true;
  for (const auto& [key, child] : value.items()) {
    if (child.is_string() && (key == "rules" || key == "gates" || key == "token_file")) {
      fs::path path = child.get<std::string>();
      if (path.empty()) continue;
      if (path.is_relative()) path = fs::path(kConfigDir) / path;
      path = path.lexically_normal();
      std::error_code ec;
      if (path.parent_path() != fs::path(kConfigDir) || fs::is_symlink(path, ec) ||
          !fs::is_regular_file(path, ec)) {
        return false;
      }
    } else if (!NamesOnlyShippedFiles(child)) {
      return false;
    }
  }
  return true;
}

bool NamesOnlyShippedFiles(std::string_view text) {
  return NamesOnlyShippedFiles(nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false));
}

template <typename T, typename Parse>
std::optional<T> TryParse(std::string_view text, Parse parse) {
  try {
    return sg::ParseConfig<T>(text, kFile, parse);
  } catch (const sg::ConfigError& e) {
    if (e.problems().empty()) Fail("a ConfigError without a problem", text);
    return std::nullopt;
  }
}

void Gateway(std::string_view text) {
  if (!NamesOnlyShippedFiles(text)) return;
  auto config = TryParse<sg::gateway::GatewayConfig>(text, sg::gateway::ParseGatewayConfig);
  if (!config) return;
  const nlohmann::json printed = sg::gateway::GatewayConfigToJson(*config);
  const std::string again_text = printed.dump();
  std::optional<sg::gateway::GatewayConfig> again;
  try {
    again = sg::ParseConfig<sg::gateway::GatewayConfig>(again_text, kFile,
                                                        sg::gateway::ParseGatewayConfig);
  } catch (const sg::ConfigError& e) {
    Fail("the effective gateway config does not parse back", text, again_text + "\n" + e.what());
  }
  const std::string reprinted = sg::gateway::GatewayConfigToJson(*again).dump();
  if (reprinted != again_text) {
    Fail("the effective gateway config parses back to another", text,
         again_text + "\n" + reprinted);
  }
}

void Serve(std::string_view text) {
  auto config = TryParse<sg::serve::ServeConfig>(text, sg::serve::ParseServeConfig);
  if (!config) return;
  for (const auto& model : config->models) {
    const std::string json = sg::serve::ModelConfigToJson(model);
    std::string again;
    try {
      again = sg::serve::ModelConfigToJson(sg::serve::ModelConfigFromJson(json));
    } catch (const sg::ConfigError& e) {
      Fail("a model config does not survive the trip to a worker", text, json + "\n" + e.what());
    }
    if (again != json) {
      Fail("a model config changes on the trip to a worker", text, json + "\n" + again);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Gateway(text);
  TryParse<sg::comparator::CompareConfig>(text, sg::comparator::ParseCompareConfig);
  TryParse<sg::comparator::GateConfig>(text, sg::comparator::ParseGateConfig);
  Serve(text);
  return 0;
}
