// The model runner seam: a loaded model that runs a batch of samples. The TorchScript
// implementation lives in torch_runner.cc (the only libtorch translation units of the module
// are that file and the worker's thread setup), so this header stays libtorch-free.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model_server/image.h"
#include "model_server/serve_config.h"

namespace sg::serve {

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;
  // Runs samples of one shape as one batch; fills one output per sample (batch dimension
  // removed). False with `error` when the model throws or returns something unusable.
  // Not thread-safe: one caller at a time (a worker runs one batch at a time).
  virtual bool Forward(const std::vector<SampleView>& batch, std::vector<SampleTensor>* outputs,
                       std::string* error) = 0;
};

// Sets libtorch's intra-op and inter-op thread counts. Call once, before any model is loaded
// (inter-op can only be set before first use).
void ConfigureTorchThreads(int intra_op, int inter_op);
// Process-wide settings for a process that runs forwards back to back (a worker, the benchmark's
// limit), to call on the thread that will run them: freed memory stays in the heap (no page
// faults for the activations on every forward), and each distinct libtorch warning is logged
// once instead of on every forward.
void ConfigureInferenceProcess();
// libtorch's intra-op thread count, as it reports it.
int TorchIntraOpThreads();

// Loads a TorchScript file: torch::jit::load, eval, optionally freeze + optimize_for_inference,
// then `warmup_iterations` forwards on zeros of the configured input shape. nullptr with
// `error` (missing file, not TorchScript, device or precision not available, warm-up failure).
std::unique_ptr<ModelRunner> LoadTorchScriptModel(const ModelConfig& model, std::string* error);

// The per-sample input shape the model's config implies (for warm-up), empty when unknown.
std::vector<int64_t> ExpectedInputShape(const ModelConfig& model);

// Forces libtorch's libraries (and the BLAS they link) to be loaded and initialised.
void TouchTorch();

}  // namespace sg::serve
