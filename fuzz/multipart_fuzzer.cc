// libFuzzer target: a prediction request's body as sg-serve reads it: ExtractPredictionInput
// (the multipart/form-data field "data" or "body", or the raw body), then the tensor handler's
// input parser (PreprocessRequest: {"data": [...], "shape": [...]}).
//
// Input: the Content-Type value up to the first LF, then the body.
// Oracles besides "no crash": the input found is a part of the body (never bytes from elsewhere),
// the whole body when the type is not multipart/form-data, and a multipart part never holds the
// delimiter that ends it; a tensor that parses has as many values as its shape says.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/strings.h"
#include "model_server/handler.h"
#include "model_server/multipart.h"
#include "model_server/serve_config.h"

namespace {

[[noreturn]] void Fail(const char* what, std::string_view content_type, std::string_view body) {
  std::fprintf(stderr, "multipart_fuzzer: %s\ncontent type: %.*s\nbody: %.*s\n", what,
               static_cast<int>(content_type.size()), content_type.data(),
               static_cast<int>(body.size()), body.data());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view all(reinterpret_cast<const char*>(data), size);
  auto lf = all.find('\n');
  if (lf == std::string_view::npos) return 0;
  std::string_view content_type = all.substr(0, lf);
  std::string_view body = all.substr(lf + 1);

  std::string_view input;
  std::string error;
  if (!sg::serve::ExtractPredictionInput(content_type, body, &input, &error)) {
    if (error.empty()) Fail("refused without a reason", content_type, body);
    return 0;
  }
  if (input.data() < body.data() || input.data() + input.size() > body.data() + body.size()) {
    Fail("the input is not a part of the body", content_type, body);
  }
  std::string type = sg::ToLowerAscii(sg::Trim(content_type.substr(0, content_type.find(';'))));
  if (type != "multipart/form-data") {
    if (input.data() != body.data() || input.size() != body.size()) {
      Fail("a body that is not multipart was not taken whole", content_type, body);
    }
  } else if (input.find("\r\n--") != std::string_view::npos) {
    // Only a delimiter of another boundary may appear inside a part; check ours.
    auto start = content_type.find("boundary=");
    if (start != std::string_view::npos) {
      std::string_view boundary = content_type.substr(start + 9);
      if (!boundary.empty() && boundary.front() != '"' &&
          boundary.find_first_of("; \t\"") == std::string_view::npos &&
          input.find("\r\n--" + std::string(boundary)) != std::string_view::npos) {
        Fail("a part holds the delimiter that ends it", content_type, body);
      }
    }
  }

  // The tensor handler's input (what a worker does with it).
  sg::serve::ModelConfig model;
  model.handler = sg::serve::HandlerKind::kTensor;
  sg::serve::SampleTensor sample;
  if (sg::serve::PreprocessRequest(model, input, &sample, &error)) {
    std::size_t count = 1;
    for (int64_t d : sample.shape) {
      if (d < 0) Fail("a tensor with a negative dimension", content_type, body);
      count *= static_cast<std::size_t>(d);
    }
    if (count != sample.values.size()) {
      Fail("a tensor's shape does not match its values", content_type, body);
    }
  }
  return 0;
}
