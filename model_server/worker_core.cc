#include "model_server/worker_core.h"

#include <map>

namespace sg::serve {
namespace {

HandlerReply ForwardFailure(const ModelConfig& model, const std::string& error) {
  if (model.handler == HandlerKind::kTensor) {
    return ErrorReply(400, "BadRequest", "model rejected the input: " + error);
  }
  return ErrorReply(500, "InternalServerError", "inference failed: " + error);
}

}  // namespace

std::vector<HandlerReply> HandleBatch(ModelRunner& runner, const ModelConfig& model,
                                      const Labels& labels,
                                      const std::vector<std::string_view>& bodies) {
  std::vector<HandlerReply> replies(bodies.size());
  std::vector<SampleTensor> samples(bodies.size());
  std::map<std::vector<int64_t>, std::vector<size_t>> by_shape;
  for (size_t i = 0; i < bodies.size(); ++i) {
    std::string error;
    if (!PreprocessRequest(model, bodies[i], &samples[i], &error)) {
      replies[i] = ErrorReply(400, "BadRequest", error);
      continue;
    }
    by_shape[samples[i].shape].push_back(i);
  }
  for (const auto& [shape, indices] : by_shape) {
    std::vector<const SampleTensor*> batch;
    for (size_t i : indices) batch.push_back(&samples[i]);
    std::vector<SampleTensor> outputs;
    std::string error;
    if (runner.Forward(batch, &outputs, &error)) {
      for (size_t k = 0; k < indices.size(); ++k) {
        replies[indices[k]] = PostprocessOutput(model, labels, outputs[k]);
      }
      continue;
    }
    if (indices.size() == 1) {
      replies[indices[0]] = ForwardFailure(model, error);
      continue;
    }
    for (size_t i : indices) {  // isolate the sample that fails
      if (runner.Forward({&samples[i]}, &outputs, &error)) {
        replies[i] = PostprocessOutput(model, labels, outputs[0]);
      } else {
        replies[i] = ForwardFailure(model, error);
      }
    }
  }
  return replies;
}

}  // namespace sg::serve
