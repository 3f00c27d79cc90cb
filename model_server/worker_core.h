// What a worker does with one batch of request bodies: preprocess each, run the valid ones
// through the model (grouped by input shape), postprocess. Plain code over the ModelRunner seam.
#pragma once

#include <string_view>
#include <vector>

#include "model_server/handler.h"
#include "model_server/model_runner.h"
#include "model_server/protocol.h"

namespace sg::serve {

// One reply per body, in order. A body that fails preprocessing gets a 400 without affecting
// the others; a failed batched forward is retried one sample at a time, so only the sample
// that makes the model throw fails (400 for the tensor handler, whose input is the client's;
// 500 for image handlers, whose input shape comes from the config). When `timings` is given,
// the time spent in each stage is added to it. `preprocessed`: the bodies are samples the front
// already preprocessed (StartEncodedSample; InputKind::kPreprocessed), only decoded here.
std::vector<HandlerReply> HandleBatch(ModelRunner& runner, const ModelConfig& model,
                                      const Labels& labels,
                                      const std::vector<std::string_view>& bodies,
                                      BatchTimings* timings = nullptr, bool preprocessed = false);

}  // namespace sg::serve
