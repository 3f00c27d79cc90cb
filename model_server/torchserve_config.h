// sg-serve started as TorchServe is: `--ts-config config.properties`, `--model-store DIR`,
// `--models NAME=FILE.mar ... | all`, `--enable-model-api`. Builds the same ServeConfig that a
// JSON config would give, from TorchServe's files, with TorchServe's precedence: the
// environment (TS_CONFIG_FILE; TS_<KEY> when enable_envvars_config=true) over the flags over
// config.properties; per model, model-config.yaml in the archive over the `models` property over
// the server-wide defaults. Every config.properties key is honoured, ignored with a warning
// saying why, or refused (docs/model-server.md, "Coming from TorchServe", has the table).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model_server/serve_config.h"

namespace sg::serve {

struct TorchServeFlags {
  std::string ts_config;            // --ts-config FILE
  std::string model_store;          // --model-store DIR (overrides model_store)
  std::vector<std::string> models;  // --models: NAME=FILE.mar, FILE.mar, a folder, or all
  bool enable_model_api = false;    // --enable-model-api (overrides enable_model_api)
  // True when any of the above is given: sg-serve then starts the TorchServe way.
  bool Given() const;
};

struct TorchServeStart {
  ServeConfig config;
  // default_startup_timeout: how long workers may take to load and warm up.
  std::optional<std::chrono::seconds> startup_timeout;
  std::string properties_file;        // the config.properties read ("" when none)
  std::vector<std::string> warnings;  // settings read and not honoured, one line each
};

// Builds the start-up configuration. `env` is the process environment (TS_CONFIG_FILE, TS_*);
// `cwd_properties` is ./config.properties, read when no other file is named (as TorchServe
// does) and when it exists. Archives are opened into `work_dir` (model_archive.h).
// Throws sg::ConfigError: each problem names the file (and line) or flag, the key and the reason.
TorchServeStart LoadTorchServeStart(const TorchServeFlags& flags,
                                    const std::map<std::string, std::string>& env,
                                    const std::string& cwd_properties, const std::string& work_dir);

}  // namespace sg::serve
