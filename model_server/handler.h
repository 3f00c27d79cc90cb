// The handlers' pre- and post-processing, as plain functions (the forward pass in between lives
// in model_runner.h). Errors are values: a 400 for bad input, a 500 for a model whose output
// does not fit the handler.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "model_server/image.h"
#include "model_server/serve_config.h"

namespace sg::serve {

// Class index -> label, from a TorchServe-style index_to_name.json: {"0": "T-shirt", ...} or
// ImageNet-style {"0": ["n01440764", "tench"], ...} (the last element is the label).
struct Labels {
  std::map<int64_t, std::string> names;
  std::string Name(int64_t index) const;
};
bool ParseLabels(std::string_view json_text, Labels* out, std::string* error);
bool LoadLabels(const std::string& path, Labels* out, std::string* error);

// A response for one request: HTTP status and JSON body.
struct HandlerReply {
  int status = 200;
  std::string body;
};

// The TorchServe-style error body {"code": N, "type": "...", "message": "..."}.
std::string ErrorBody(int status, std::string_view type, std::string_view message);
HandlerReply ErrorReply(int status, std::string_view type, std::string_view message);

// Request body -> one sample (no batch dimension). image_*: PNG/JPEG + preprocessing;
// tensor: {"data": [...] (flat or nested), "shape": [...], "dtype": "FP32"?}. False with a
// message (for a 400) on bad input.
bool PreprocessRequest(const ModelConfig& model, std::string_view body, SampleTensor* out,
                       std::string* error);
// The same for the image handlers, with the values written where `place` says (see
// PreprocessImage), e.g. straight into an encoded sample.
bool PreprocessImageRequest(const ModelConfig& model, std::string_view body,
                            const SamplePlacer& place, std::string* error);

// One sample's output (batch dimension removed) -> the response.
//  image_classifier: softmax, top-k {"label": prob, ...} ordered by probability (TorchServe)
//  image_scorer: {"score": x} (the output must hold exactly one value)
//  tensor: {"data": [...], "shape": [...]}
HandlerReply PostprocessOutput(const ModelConfig& model, const Labels& labels,
                               const SampleTensor& output);

}  // namespace sg::serve
