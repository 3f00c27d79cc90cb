// The only TU of sg-serve that includes libtorch headers (with the worker's thread setup).
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <malloc.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <set>

#include <spdlog/spdlog.h>

#include "model_server/doctor.h"
#include "model_server/model_runner.h"

namespace sg::serve {
namespace {

bool CpuHasBf16() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) {
      return line.find(" avx512_bf16") != std::string::npos ||
             line.find(" amx_bf16") != std::string::npos;
    }
  }
  return false;
}

// Logs each distinct libtorch warning once. Some TorchScript graphs warn on every forward
// (mobilenet_v3_small after optimize_for_inference: "An output with one or more elements was
// resized", three times per forward): glog-style lines to stderr each time cost time on the
// request path and grow the log without bound.
class OncePerMessageWarningHandler : public c10::WarningHandler {
 public:
  void process(const c10::SourceLocation& where, const std::string& message,
               const bool /*verbatim*/) override {
    {
      std::lock_guard lock(mutex_);
      if (seen_.size() >= kMaxDistinct || !seen_.insert(message).second) return;
    }
    spdlog::warn("libtorch ({}:{}): {} (logged once)", where.file, where.line, message);
  }

 private:
  static constexpr size_t kMaxDistinct = 100;
  std::mutex mutex_;
  // Guarded by mutex_.
  std::set<std::string> seen_;
};

// Dynamic int8 quantisation of a frozen module's Linear layers, as PyTorch's
// quantize_dynamic_jit with default_dynamic_qconfig does it: each aten::linear whose weight is a
// constant 2-D fp32 tensor becomes quantized::linear_dynamic over that weight quantised to int8
// (per tensor, symmetric: scale = max|w| / 127.5, zero point 0, as MinMaxObserver computes it)
// and packed once here; the activations are quantised per batch at run time (reduce_range on
// x86's fbgemm engine, whose 16-bit accumulation would otherwise saturate). Everything else stays
// fp32. Returns the number of layers quantised. On the fashion teacher its outputs equal
// quantize_dynamic_jit's to the last printed digit (max |difference| to fp32 0.0916 for both).
int QuantizeLinearDynamic(torch::jit::Module& module) {
  auto graph = module.get_method("forward").graph();
  auto prepack = c10::Dispatcher::singleton().findSchemaOrThrow("quantized::linear_prepack", "");
  bool reduce_range = at::globalContext().qEngine() != at::QEngine::QNNPACK;
  std::vector<torch::jit::Node*> linears;
  for (torch::jit::Node* node : graph->nodes()) {
    if (node->kind() == torch::jit::aten::linear) linears.push_back(node);
  }
  int quantised = 0;
  for (torch::jit::Node* node : linears) {
    auto weight = torch::jit::toIValue(node->input(1));
    auto bias = torch::jit::toIValue(node->input(2));
    if (!weight || !weight->isTensor() || !bias || !(bias->isTensor() || bias->isNone())) continue;
    const at::Tensor& w = weight->toTensor();
    if (w.dim() != 2 || w.scalar_type() != at::kFloat || !w.device().is_cpu()) continue;
    double scale = std::max(w.abs().max().item<double>() / 127.5,
                            static_cast<double>(std::numeric_limits<float>::epsilon()));
    torch::jit::Stack stack{at::quantize_per_tensor(w, scale, 0, at::kQInt8),
                            bias->isTensor() ? c10::optional<at::Tensor>(bias->toTensor())
                                             : c10::optional<at::Tensor>()};
    prepack.callBoxed(&stack);
    torch::jit::WithInsertPoint here(node);
    torch::jit::Node* dynamic = graph->create(
        c10::Symbol::fromQualString("quantized::linear_dynamic"),
        {node->input(0), graph->insertConstant(stack.at(0)), graph->insertConstant(reduce_range)});
    dynamic->insertBefore(node);
    dynamic->output()->setType(node->output()->type());
    node->output()->replaceAllUsesWith(dynamic->output());
    node->destroy();
    ++quantised;
  }
  return quantised;
}

class TorchScriptRunner : public ModelRunner {
 public:
  // `device` is where the module's parameters are: kCPU, or kCUDA (the batch is copied there
  // from pinned host memory and the outputs are copied back). bf16 only on the CPU. With
  // `channels_last`, 4-D batches are handed to the model in channels-last memory format.
  TorchScriptRunner(torch::jit::Module module, torch::Device device, bool bf16, bool channels_last)
      : module_(std::move(module)), device_(device), bf16_(bf16), channels_last_(channels_last) {}

  bool Forward(const std::vector<SampleView>& batch, std::vector<SampleTensor>* outputs,
               std::string* error) override {
    outputs->clear();
    if (batch.empty()) return true;
    try {
      c10::InferenceMode guard;
      std::vector<int64_t> shape = {static_cast<int64_t>(batch.size())};
      shape.insert(shape.end(), batch[0].shape.begin(), batch[0].shape.end());
      // For a GPU, the batch is assembled in page-locked memory (libtorch's caching host
      // allocator reuses it) so the copy to the device is one DMA that does not wait on a
      // staging copy; non_blocking queues it on the current stream, ahead of the forward.
      auto input = torch::empty(
          shape, torch::TensorOptions().dtype(torch::kFloat32).pinned_memory(device_.is_cuda()));
      size_t per = batch[0].count;
      float* dst = input.data_ptr<float>();
      for (size_t i = 0; i < batch.size(); ++i) {
        std::memcpy(dst + i * per, batch[i].data, per * sizeof(float));
      }
      if (device_.is_cuda()) input = input.to(device_, /*non_blocking=*/true);
      if (channels_last_ && input.dim() == 4) {
        input = input.contiguous(at::MemoryFormat::ChannelsLast);
      }
      if (bf16_) {
        at::autocast::set_cpu_enabled(true);
        at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      }
      torch::jit::IValue result;
      try {
        result = module_.forward({input});
      } catch (...) {
        if (bf16_) at::autocast::set_cpu_enabled(false);
        throw;
      }
      if (bf16_) {
        at::autocast::set_cpu_enabled(false);
        at::autocast::clear_cache();
      }
      at::Tensor out;
      if (result.isTensor()) {
        out = result.toTensor();
      } else if (result.isTuple() && !result.toTupleRef().elements().empty() &&
                 result.toTupleRef().elements()[0].isTensor()) {
        out = result.toTupleRef().elements()[0].toTensor();
      } else {
        *error = "model returned " + result.tagKind() + ", expected a tensor";
        return false;
      }
      // Back on the CPU (a blocking copy: it waits for the forward on the GPU's stream).
      out = out.to(torch::kCPU, torch::kFloat32).contiguous();
      if (out.dim() == 0 || out.size(0) != static_cast<int64_t>(batch.size())) {
        *error = "model output has shape " + c10::str(out.sizes()) + ", expected a batch of " +
                 std::to_string(batch.size());
        return false;
      }
      std::vector<int64_t> row_shape(out.sizes().begin() + 1, out.sizes().end());
      int64_t row = out.numel() / out.size(0);
      const float* src = out.data_ptr<float>();
      for (size_t i = 0; i < batch.size(); ++i) {
        SampleTensor t;
        t.shape = row_shape;
        t.values.assign(src + i * row, src + (i + 1) * row);
        outputs->push_back(std::move(t));
      }
      return true;
    } catch (const c10::Error& e) {
      *error = e.what_without_backtrace();
    } catch (const std::exception& e) {
      *error = e.what();
    }
    // Keep the first line: libtorch messages carry long TorchScript tracebacks.
    if (auto nl = error->find('\n'); nl != std::string::npos && nl > 0) {
      std::string rest = error->substr(nl + 1);
      // Prefer the last non-empty line (the actual RuntimeError) when there is a traceback.
      auto last = rest.find_last_not_of("\n ");
      if (last != std::string::npos) {
        auto start = rest.rfind('\n', last);
        std::string tail = rest.substr(start == std::string::npos ? 0 : start + 1,
                                       last - (start == std::string::npos ? 0 : start + 1) + 1);
        if (!tail.empty()) *error = tail;
      }
    }
    return false;
  }

 private:
  torch::jit::Module module_;
  torch::Device device_;
  bool bf16_;
  bool channels_last_;
};

}  // namespace

void ConfigureTorchThreads(int intra_op, int inter_op) {
  if (inter_op > 0) at::set_num_interop_threads(inter_op);
  if (intra_op > 0) at::set_num_threads(intra_op);
}

void ConfigureInferenceProcess() {
  // Keep freed memory in the heap: without this, glibc trims (or unmaps) the activations'
  // memory after every forward and the next forward page-faults it back in.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  static OncePerMessageWarningHandler handler;  // warnings raised on this (the calling) thread
  c10::Warning::set_warning_handler(&handler);
}

int TorchIntraOpThreads() {
  return at::get_num_threads();
}

void TouchTorch() {
  (void)at::get_num_threads();
  (void)torch::zeros({2, 2}).matmul(torch::ones({2, 2}));
}

std::vector<int64_t> ExpectedInputShape(const ModelConfig& model) {
  if (model.handler == HandlerKind::kTensor) return model.input_shape;
  int side = model.preprocess.crop > 0 ? model.preprocess.crop : model.preprocess.resize;
  if (side <= 0) return {};
  return {model.preprocess.channels, side, side};
}

std::unique_ptr<ModelRunner> LoadTorchScriptModel(const ModelConfig& model, std::string* error) {
  bool cuda = model.device == "cuda";
  if (cuda && !torch::hasCUDA()) {
    *error = "model \"" + model.name +
             "\": device cuda requested but this libtorch was built without CUDA";
    return nullptr;
  }
  if (cuda && torch::cuda::device_count() == 0) {
    *error = "model \"" + model.name +
             "\": device cuda requested but no CUDA device is visible (driver, "
             "CUDA_VISIBLE_DEVICES)";
    return nullptr;
  }
  bool bf16 = model.precision == "bf16";
  if (bf16 && cuda) {
    *error = "model \"" + model.name + "\": precision bf16 is CPU autocast; use fp32 with cuda";
    return nullptr;
  }
  if (bf16 && !CpuHasBf16()) {
    *error = "model \"" + model.name +
             "\": precision bf16 requested but this CPU has no avx512_bf16/amx_bf16";
    return nullptr;
  }
  bool int8 = model.precision == "int8";
  if (int8 && cuda) {
    *error = "model \"" + model.name +
             "\": precision int8 is CPU dynamic quantisation; use fp32 "
             "with cuda";
    return nullptr;
  }
  if (!std::filesystem::is_regular_file(model.path)) {
    *error = "model \"" + model.name + "\": no such file " + model.path;
    return nullptr;
  }
  // The first CUDA device: a worker per GPU is chosen with CUDA_VISIBLE_DEVICES.
  torch::Device device = cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  try {
    torch::jit::Module module = torch::jit::load(model.path, device);
    module.eval();
    if (model.channels_last) {
      // Before freezing, so that the folded constants keep the format.
      for (at::Tensor p : module.parameters()) {
        if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
      }
    }
    // int8 rewrites the frozen graph (its weights must be constants), before
    // optimize_for_inference turns linear layers into other ops.
    if (model.optimize || int8) module = torch::jit::freeze(module);
    if (int8 && QuantizeLinearDynamic(module) == 0) {
      *error = "model \"" + model.name +
               "\": precision int8 quantises Linear layers and this model has none in its "
               "forward (after freezing); use fp32 or bf16";
      return nullptr;
    }
    // optimize_for_inference's gains are CPU ones (oneDNN layouts, conv fusions for it); on a
    // GPU, freezing (constant folding, conv-bn folding) is what applies.
    if (model.optimize && !cuda) module = torch::jit::optimize_for_inference(module);
    auto runner =
        std::make_unique<TorchScriptRunner>(std::move(module), device, bf16, model.channels_last);
    auto shape = ExpectedInputShape(model);
    if (!shape.empty() && model.warmup_iterations > 0) {
      SampleTensor zeros;
      zeros.shape = shape;
      int64_t n = 1;
      for (auto d : shape) n *= d;
      zeros.values.assign(static_cast<size_t>(n), 0.0f);
      std::vector<SampleTensor> out;
      std::vector<SampleView> batch(static_cast<size_t>(model.batch_size), View(zeros));
      // On a GPU the first forward also creates the CUDA context, loads the kernels and
      // allocates the caching allocator's blocks: seconds, paid here and not by a request.
      for (int i = 0; i < model.warmup_iterations; ++i) {
        // Warm both the single-sample and the full-batch shapes.
        std::vector<SampleView> b = batch;
        if (i % 2 == 1) b.resize(1);
        if (!runner->Forward(b, &out, error)) {
          *error = "model \"" + model.name + "\": warm-up failed: " + *error;
          return nullptr;
        }
      }
      // Forward already waited for its outputs; this also drains anything else queued on
      // the device before the worker reports ready.
      if (cuda) torch::cuda::synchronize();
    }
    return runner;
  } catch (const c10::Error& e) {
    *error = "model \"" + model.name + "\": cannot load " + model.path + ": " +
             e.what_without_backtrace();
  } catch (const std::exception& e) {
    *error = "model \"" + model.name + "\": cannot load " + model.path + ": " + e.what();
  }
  if (auto nl = error->find('\n'); nl != std::string::npos) error->resize(nl);
  return nullptr;
}

GpuInfo ProbeGpus() {
  GpuInfo info;
  info.torch_has_cuda = torch::hasCUDA();
  info.device_count = static_cast<int>(torch::cuda::device_count());
  // Names from the driver's tool, so that no CUDA header or library is needed to build this.
  if (FILE* pipe = popen("nvidia-smi --query-gpu=index,name,memory.total,driver_version "
                         "--format=csv,noheader 2>/dev/null",
                         "r")) {
    std::string text;
    char buffer[512];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) text.append(buffer, n);
    if (pclose(pipe) == 0) info.nvidia_smi = ParseNvidiaSmiCsv(text);
  }
  return info;
}

}  // namespace sg::serve
