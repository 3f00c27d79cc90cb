#include "model_server/worker_core.h"

#include <chrono>
#include <map>

namespace sg::serve {
namespace {

// Adds the time from construction to Stop() (or destruction) to a microsecond total.
class StageTimer {
 public:
  explicit StageTimer(uint64_t* total_us)
      : total_us_(total_us), start_(std::chrono::steady_clock::now()) {}
  ~StageTimer() { Stop(); }
  void Stop() {
    if (!total_us_) return;
    *total_us_ += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                            std::chrono::steady_clock::now() - start_)
                                            .count());
    total_us_ = nullptr;
  }

 private:
  uint64_t* total_us_;
  std::chrono::steady_clock::time_point start_;
};

HandlerReply ForwardFailure(const ModelConfig& model, const std::string& error) {
  if (model.handler == HandlerKind::kTensor) {
    return ErrorReply(400, "BadRequest", "model rejected the input: " + error);
  }
  return ErrorReply(500, "InternalServerError", "inference failed: " + error);
}

}  // namespace

std::vector<HandlerReply> HandleBatch(ModelRunner& runner, const ModelConfig& model,
                                      const Labels& labels,
                                      const std::vector<std::string_view>& bodies,
                                      BatchTimings* timings, bool preprocessed) {
  BatchTimings unused;
  BatchTimings& t = timings ? *timings : unused;
  std::vector<HandlerReply> replies(bodies.size());
  // Preprocessed samples are read where they lie (in the body); the others are made here.
  std::vector<SampleTensor> samples(preprocessed ? 0 : bodies.size());
  std::vector<SampleView> views(bodies.size());
  std::map<std::vector<int64_t>, std::vector<size_t>> by_shape;
  StageTimer preprocess(&t.preprocess_us);
  for (size_t i = 0; i < bodies.size(); ++i) {
    std::string error;
    if (preprocessed) {
      if (!DecodeSampleView(bodies[i], &views[i], &error)) {  // the front's bug, not the client's
        replies[i] = ErrorReply(500, "InternalServerError", error);
        continue;
      }
    } else if (PreprocessRequest(model, bodies[i], &samples[i], &error)) {
      views[i] = View(samples[i]);
    } else {
      replies[i] = ErrorReply(400, "BadRequest", error);
      continue;
    }
    by_shape[views[i].shape].push_back(i);
  }
  preprocess.Stop();
  // Runs the model, adding the time to the forward total.
  auto forward = [&](const std::vector<SampleView>& batch, std::vector<SampleTensor>* outputs,
                     std::string* error) {
    StageTimer timer(&t.forward_us);
    return runner.Forward(batch, outputs, error);
  };
  for (const auto& [shape, indices] : by_shape) {
    std::vector<SampleView> batch;
    for (size_t i : indices) batch.push_back(views[i]);
    std::vector<SampleTensor> outputs;
    std::string error;
    if (forward(batch, &outputs, &error)) {
      StageTimer postprocess(&t.postprocess_us);
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
      if (forward({views[i]}, &outputs, &error)) {
        StageTimer postprocess(&t.postprocess_us);
        replies[i] = PostprocessOutput(model, labels, outputs[0]);
      } else {
        replies[i] = ForwardFailure(model, error);
      }
    }
  }
  return replies;
}

}  // namespace sg::serve
