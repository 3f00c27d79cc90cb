// sg-serve configuration: listeners, the CPU plan request and one ModelConfig per model.
// Parsed once at start-up into immutable structs (see docs/model-server.md for the format).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "model_server/cpu_plan.h"

namespace sg::serve {

enum class HandlerKind { kImageClassifier, kImageScorer, kTensor };
const char* HandlerName(HandlerKind kind);
std::optional<HandlerKind> ParseHandlerName(const std::string& name);

// Image preprocessing, applied in this order: decode (PNG/JPEG) to `channels`, resize the
// shorter side to `resize` (bilinear; 0 = keep), center-crop to `crop` x `crop` (0 = keep),
// scale to [0, 1], then (x - mean[c]) / std[c]. Defaults: torchvision's ImageNet recipe.
struct ImagePreprocess {
  int resize = 256;
  int crop = 224;
  int channels = 3;                                    // 1: grayscale, 3: RGB
  std::vector<float> mean = {0.485f, 0.456f, 0.406f};  // one per channel
  std::vector<float> std = {0.229f, 0.224f, 0.225f};
  int64_t max_pixels = 40'000'000;  // larger images, decoded or resized, are refused (400)
};

struct ModelConfig {
  std::string name;
  std::string version = "1.0";  // TorchServe's default model version
  std::string path;             // TorchScript file; relative paths are resolved at parse time
  // TorchServe's modelUrl when the model came from an archive (model_archive.h): the archive's
  // file or folder name as registered ("resnet-18.mar"); "" otherwise.
  std::string url;
  HandlerKind handler = HandlerKind::kImageClassifier;
  std::string labels_path;  // index_to_name.json; empty: labels are class indices
  ImagePreprocess preprocess;
  int topk = 5;                      // TorchServe's ImageClassifier default
  std::vector<int64_t> input_shape;  // tensor handler: required per-sample shape; empty: any
  int workers = 0;                   // 0: from the CPU plan
  int batch_size = 1;                // 1: no batching
  std::chrono::milliseconds max_batch_delay{5};  // wait this long to fill a batch
  int job_queue_size = 100;                      // TorchServe's default; beyond it: 503
  // Send a worker its next batch while it still runs the current one, so its CPUs never wait
  // for the front in between. Default: on for the image handlers (requests cost the same),
  // off for tensor (a cheap request must not wait behind an expensive one on a busy worker
  // while another worker is about to be free).
  bool dispatch_ahead = true;
  std::chrono::milliseconds response_timeout{120000};  // TorchServe's default 120 s; then 504
  bool optimize = true;       // torch::jit::freeze + optimize_for_inference
  int warmup_iterations = 2;  // forwards before a worker reports ready
  // fp32 | bf16 (autocast, when the CPU has it) | int8 (dynamic quantisation of the Linear
  // layers: int8 weights, activations quantised per batch; the rest stays fp32)
  std::string precision = "fp32";
  bool channels_last = false;  // 4-D weights and inputs in channels-last (NHWC) memory format
  std::string device = "cpu";  // cpu | cuda (a start-up error without CUDA)
};

// TorchServe's defaults for a model it loads from an archive, where they differ from
// ModelConfig's: max_batch_delay 100 ms (TorchServe's maxBatchDelay).
ModelConfig TorchServeModelDefaults();

struct ServeConfig {
  std::string inference_address = "127.0.0.1:8080";
  std::string management_address = "127.0.0.1:8081";
  std::string metrics_address = "127.0.0.1:8082";
  uint64_t max_request_size = 6553500;  // TorchServe's default (bytes); larger bodies: 413
  PlanRequest cpu;                      // workers: total over all models (0 = planned)
  std::string cpu_root;                 // root prefix for /sys and /proc (tests); "" = real
  // Request body bytes being received at once over all connections, per listener; over it: 503.
  // 64 MiB: 10 uploads of max_request_size at once, hundreds of typical images (60 stalled
  // 6.5 MB uploads took the front from 154 to 499 MiB without a cap, to 212 MiB with this one).
  uint64_t max_buffered_body_bytes = uint64_t{64} << 20;
  // TorchServe's model store: the folder that `POST /models?url=NAME.mar` registers archives
  // from (model_archive.h). Empty: none, registering from it is refused.
  std::string model_store;
  // Registering and unregistering models over the management API. Off by default, as in
  // TorchServe's model API control (config.properties `enable_model_api`, `--enable-model-api`).
  bool enable_model_api = false;
  // What a model registered over the management API starts from, before its archive's
  // model-config.yaml and the request's parameters: TorchServe's defaults, with
  // config.properties' job_queue_size and default_response_timeout when sg-serve was started
  // the TorchServe way (torchserve_config.h). Its name and path are not used.
  ModelConfig registration_defaults = TorchServeModelDefaults();
  std::vector<ModelConfig> models;
};

// Parses the whole document (unknown keys are errors). Relative model and label paths are
// resolved against the config file's directory.
ServeConfig ParseServeConfig(const ConfigNode& root);
ServeConfig LoadServeConfig(const std::string& path);

// The model's JSON as the worker receives it (a complete, resolved ModelConfig).
std::string ModelConfigToJson(const ModelConfig& model);
// Inverse of ModelConfigToJson. Throws ConfigError on a bad document.
ModelConfig ModelConfigFromJson(const std::string& json);

// A listener address as sg-serve's config and flags take it, or as TorchServe writes it:
// "host:port", "http://host:port" or "http://host" (port 80), with a trailing '/' allowed.
// Sets `host_port` ("host:port") and returns true; false with the reason in `error` for https
// (sg-serve speaks plain HTTP) and anything malformed.
bool NormalizeAddress(const std::string& text, std::string* host_port, std::string* error);

// Checks a model's settings that the parser cannot see alone (sizes of mean/std vs channels).
// Problems are reported on `node`.
void ValidateModel(const ModelConfig& model, const ConfigNode& node);

}  // namespace sg::serve
