// sg-bench-forward: the throughput limit for a sg-serve config, without HTTP. Plans the workers
// exactly as sg-serve does, starts one pinned process per worker (same affinity, environment and
// thread settings), and has each run back-to-back forwards of one preprocessed sample for the
// given time. Prints total forwards/s and the mean forward time; with --image, also the mean
// time of the handler's preprocessing of that request body (decode, resize, normalise), which
// the server does per request and the forward-only limit does not.
//   sg-bench-forward --config tuned.json [--seconds 10] [--image input.png]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/cli.h"
#include "common/logging.h"
#include "common/subprocess.h"
#include "model_server/cpu_budget.h"
#include "model_server/handler.h"
#include "model_server/model_runner.h"
#include "model_server/serve_config.h"
#include "model_server/serve_server.h"

using namespace sg::serve;

namespace {

// Mean milliseconds of PreprocessRequest on `body` (at least 50 runs, about 1 s); -1 on error.
double PreprocessMs(const ModelConfig& model, const std::string& body) {
  SampleTensor sample;
  std::string error;
  int runs = 0;
  const auto start = std::chrono::steady_clock::now();
  while (runs < 50 || std::chrono::steady_clock::now() - start < std::chrono::seconds(1)) {
    if (!PreprocessRequest(model, body, &sample, &error)) {
      std::cerr << "preprocess: " << error << "\n";
      return -1;
    }
    ++runs;
  }
  return 1000.0 * std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
         runs;
}

int RunChild(const std::string& spec, int threads, double seconds, const std::string& image) {
  ConfigureTorchThreads(threads, 1);
  ConfigureInferenceProcess();  // as a worker does
  auto model = ModelConfigFromJson(spec);
  std::string error;
  auto runner = LoadTorchScriptModel(model, &error);
  if (!runner) {
    std::cerr << error << "\n";
    return 3;
  }
  SampleTensor sample;
  sample.shape = ExpectedInputShape(model);
  int64_t n = 1;
  for (auto d : sample.shape) n *= d;
  sample.values.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) sample.values[i] = static_cast<float>((i * 7919) % 255) / 255.0f;
  std::vector<SampleTensor> out;
  auto start = std::chrono::steady_clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  int64_t count = 0;
  while (std::chrono::steady_clock::now() < end) {
    if (!runner->Forward({View(sample)}, &out, &error)) {
      std::cerr << error << "\n";
      return 3;
    }
    ++count;
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double preprocess_ms = 0;
  if (!image.empty()) {
    std::ifstream in(image, std::ios::binary);
    std::stringstream body;
    body << in.rdbuf();
    preprocess_ms = PreprocessMs(model, body.str());
    if (preprocess_ms < 0) return 3;
  }
  std::cout << count << " " << elapsed << " " << preprocess_ms << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sg-bench-forward: in-process forward throughput for a sg-serve config"};
  std::string config_path, spec, image;
  double seconds = 10;
  int child_threads = 0;
  app.add_option("--config", config_path);
  app.add_option("--seconds", seconds);
  app.add_option("--image", image, "a request body to time the handler's preprocessing on");
  app.add_option("--child-spec", spec);  // internal
  app.add_option("--child-threads", child_threads);
  if (auto exit_code = sg::ParseCommandLine(app, argc, argv)) return *exit_code;
  // Logs (libtorch's warnings among them) to stderr: stdout carries the results.
  sg::SetUpLogging(sg::LogOptions{}, "sg-bench-forward");
  if (!spec.empty()) return RunChild(spec, child_threads, seconds, image);

  ServeConfig config;
  try {
    config = LoadServeConfig(config_path);
  } catch (const sg::ConfigError& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  auto budget = DiscoverCpuBudget(config.cpu_root, CurrentAffinity());
  std::vector<int> counts;
  for (const auto& m : config.models) counts.push_back(m.workers);
  auto planned = PlanModels(budget, config.cpu, counts);
  const auto& model = config.models.at(0);
  const auto& workers = planned.workers.at(0);
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  char dir_template[] = "/tmp/sg-bench-XXXXXX";
  if (!mkdtemp(dir_template)) return 1;
  std::vector<sg::Subprocess> children;
  std::vector<std::string> outputs;
  for (size_t i = 0; i < workers.size(); ++i) {
    sg::SpawnOptions options;
    options.cpu_affinity = workers[i].cpus;
    options.unset_env = {"OMP_PROC_BIND", "GOMP_CPU_AFFINITY", "OMP_PLACES", "KMP_AFFINITY"};
    std::string threads = std::to_string(workers[i].threads);
    options.set_env = {{"OMP_NUM_THREADS", threads}, {"MKL_NUM_THREADS", threads}};
    outputs.push_back(std::string(dir_template) + "/w" + std::to_string(i));
    options.stdout_path = outputs.back();
    std::string error;
    auto child =
        sg::Subprocess::Spawn({self, "--child-spec", ModelConfigToJson(model), "--child-threads",
                               threads, "--seconds", std::to_string(seconds), "--image", image},
                              options, &error);
    if (!child) {
      std::cerr << error << "\n";
      return 1;
    }
    children.push_back(std::move(*child));
  }
  double total_rate = 0, forward_ms = 0, preprocess_ms = 0;
  for (size_t i = 0; i < children.size(); ++i) {
    auto waited =
        children[i].WaitFor(std::chrono::seconds(static_cast<int64_t>(seconds) * 10 + 300));
    int status = waited ? *waited : children[i].Stop();
    std::ifstream in(outputs[i]);
    double count = 0, elapsed = 0, child_preprocess_ms = 0;
    if (!(in >> count >> elapsed >> child_preprocess_ms) || elapsed <= 0) {
      std::cerr << "worker " << i << " failed: " << sg::DescribeWaitStatus(status) << "\n";
      return 1;
    }
    total_rate += count / elapsed;
    forward_ms += 1000.0 * elapsed / count / static_cast<double>(children.size());
    preprocess_ms += child_preprocess_ms / static_cast<double>(children.size());
  }
  std::filesystem::remove_all(dir_template);
  // One line: workers threads forwards_per_second mean_forward_ms mean_preprocess_ms
  std::cout << workers.size() << " " << (workers.empty() ? 0 : workers[0].threads) << " "
            << total_rate << " " << forward_ms << " " << preprocess_ms << "\n";
  return 0;
}
