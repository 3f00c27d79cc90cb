#include "model_server/handler.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/strings.h"

namespace sg::serve {
namespace {

// Deeper "data" is refused: Flatten recurses once per level, and a request nested 200,000 deep
// (400 KB) overflowed the stack (found while writing fuzz/multipart_fuzzer, issue 15).
constexpr size_t kMaxTensorDims = 64;

// Flattens nested arrays of numbers; records the shape implied by the nesting.
bool Flatten(const nlohmann::json& value, size_t depth, std::vector<int64_t>* shape,
             std::vector<float>* out, std::string* error) {
  if (depth > kMaxTensorDims) {
    *error = "\"data\" is nested deeper than " + std::to_string(kMaxTensorDims) + " levels";
    return false;
  }
  if (value.is_number()) {
    if (depth != shape->size()) {
      *error = "ragged \"data\": nesting depth differs between elements";
      return false;
    }
    out->push_back(value.get<float>());
    return true;
  }
  if (!value.is_array()) {
    *error = "\"data\" must hold only numbers, found " + std::string(value.type_name());
    return false;
  }
  if (depth == shape->size()) {
    if (!out->empty()) {
      *error = "ragged \"data\": nesting depth differs between elements";
      return false;
    }
    shape->push_back(static_cast<int64_t>(value.size()));
  } else if ((*shape)[depth] != static_cast<int64_t>(value.size())) {
    *error = "ragged \"data\": rows of different lengths";
    return false;
  }
  for (const auto& e : value) {
    if (!Flatten(e, depth + 1, shape, out, error)) return false;
  }
  return true;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool ParseTensorRequest(const ModelConfig& model, std::string_view body, SampleTensor* out,
                        std::string* error) {
  auto doc = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (doc.is_discarded()) {
    *error = "body is not valid JSON: expected {\"data\": [...], \"shape\": [...]}";
    return false;
  }
  if (!doc.is_object() || !doc.contains("data")) {
    *error = "expected a JSON object {\"data\": [...], \"shape\": [...]}";
    return false;
  }
  if (doc.contains("dtype")) {
    if (!doc["dtype"].is_string()) {
      *error = "\"dtype\" must be a string";
      return false;
    }
    auto dtype = ToLowerAscii(doc["dtype"].get<std::string>());
    if (dtype != "fp32" && dtype != "float32" && dtype != "float") {
      *error = "unsupported dtype \"" + doc["dtype"].get<std::string>() + "\": only FP32";
      return false;
    }
  }
  std::vector<int64_t> nested_shape;
  out->values.clear();
  if (!Flatten(doc["data"], 0, &nested_shape, &out->values, error)) return false;
  if (doc.contains("shape")) {
    const auto& s = doc["shape"];
    if (!s.is_array()) {
      *error = "\"shape\" must be an array of positive integers";
      return false;
    }
    out->shape.clear();
    for (const auto& d : s) {
      if (!d.is_number_integer() || d.get<int64_t>() <= 0) {
        *error = "\"shape\" must be an array of positive integers";
        return false;
      }
      out->shape.push_back(d.get<int64_t>());
    }
  } else {
    out->shape = nested_shape;
    // Positive dimensions only, as for "shape": [[]] made one of 0, and the size check below
    // divided by it (SIGFPE in the worker; found by fuzz/multipart_fuzzer).
    if (std::find(out->shape.begin(), out->shape.end(), 0) != out->shape.end()) {
      *error = "\"data\" has an empty dimension: shape " + ShapeText(out->shape);
      return false;
    }
  }
  int64_t numel = 1;
  for (auto d : out->shape) {
    if (d > (int64_t{1} << 31) || numel > (int64_t{1} << 40) / d) {
      *error = "\"shape\" too large";
      return false;
    }
    numel *= d;
  }
  if (numel != static_cast<int64_t>(out->values.size())) {
    *error = "\"shape\" " + ShapeText(out->shape) + " needs " + std::to_string(numel) +
             " values, \"data\" has " + std::to_string(out->values.size());
    return false;
  }
  if (!model.input_shape.empty() && out->shape != model.input_shape) {
    *error = "wrong tensor shape " + ShapeText(out->shape) + ": model \"" + model.name +
             "\" takes " + ShapeText(model.input_shape);
    return false;
  }
  return true;
}

}  // namespace

std::string Labels::Name(int64_t index) const {
  auto it = names.find(index);
  return it == names.end() ? std::to_string(index) : it->second;
}

bool ParseLabels(std::string_view json_text, Labels* out, std::string* error) {
  auto doc = nlohmann::json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    *error = "labels must be a JSON object {\"0\": \"name\", ...}";
    return false;
  }
  out->names.clear();
  for (const auto& [key, value] : doc.items()) {
    int64_t index = 0;
    try {
      size_t used = 0;
      index = std::stoll(key, &used);
      if (used != key.size()) throw std::invalid_argument(key);
    } catch (const std::exception&) {
      *error = "labels: key \"" + key + "\" is not a class index";
      return false;
    }
    if (value.is_string()) {
      out->names[index] = value.get<std::string>();
    } else if (value.is_array() && !value.empty() && value.back().is_string()) {
      out->names[index] = value.back().get<std::string>();
    } else {
      *error = "labels: value of \"" + key + "\" must be a string or [id, name]";
      return false;
    }
  }
  return true;
}

bool LoadLabels(const std::string& path, Labels* out, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "cannot read labels file " + path;
    return false;
  }
  std::stringstream text;
  text << in.rdbuf();
  if (!ParseLabels(text.str(), out, error)) {
    *error = path + ": " + *error;
    return false;
  }
  return true;
}

std::string ErrorBody(int status, std::string_view type, std::string_view message) {
  return nlohmann::json{{"code", status}, {"type", type}, {"message", message}}.dump();
}

HandlerReply ErrorReply(int status, std::string_view type, std::string_view message) {
  return {status, ErrorBody(status, type, message)};
}

bool PreprocessRequest(const ModelConfig& model, std::string_view body, SampleTensor* out,
                       std::string* error) {
  if (model.handler == HandlerKind::kTensor) return ParseTensorRequest(model, body, out, error);
  return PreprocessImageRequest(model, body, IntoTensor(out), error);
}

bool PreprocessImageRequest(const ModelConfig& model, std::string_view body,
                            const SamplePlacer& place, std::string* error) {
  Image image;
  const auto& p = model.preprocess;
  if (!DecodeImage(body, p.channels, p.max_pixels, &image, error)) return false;
  if (p.resize > 0) {
    // The image is resized whole before the crop, and max_pixels bounds that too: a 179-byte PNG
    // of 1 x 20,000 pixels would otherwise become 256 x 5,120,000 (3.9 GB, 51 s). The longer
    // side as ResizedSize computes it, in 64 bits.
    const int64_t shorter = std::min(image.width, image.height);
    const int64_t longer = std::max(image.width, image.height);
    const int64_t resized = int64_t{p.resize} * (int64_t{p.resize} * longer / shorter);
    if (resized > p.max_pixels) {
      *error = "image too large once resized: " + std::to_string(image.width) + "x" +
               std::to_string(image.height) + " pixels would become " + std::to_string(resized);
      return false;
    }
  }
  PreprocessImage(image, p, place);
  return true;
}

HandlerReply PostprocessOutput(const ModelConfig& model, const Labels& labels,
                               const SampleTensor& output) {
  switch (model.handler) {
    case HandlerKind::kImageClassifier: {
      const auto& v = output.values;
      if (v.empty()) return ErrorReply(500, "InternalServerError", "model returned no scores");
      // Softmax (TorchServe's ImageClassifier applies it to the logits).
      float max = *std::max_element(v.begin(), v.end());
      std::vector<double> p(v.size());
      double sum = 0;
      for (size_t i = 0; i < v.size(); ++i) sum += p[i] = std::exp(double(v[i]) - max);
      for (auto& x : p) x /= sum;
      std::vector<size_t> order(v.size());
      std::iota(order.begin(), order.end(), 0);
      size_t k = std::min<size_t>(model.topk, order.size());
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [&](size_t a, size_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
      nlohmann::ordered_json body = nlohmann::ordered_json::object();
      for (size_t i = 0; i < k; ++i)
        body[labels.Name(static_cast<int64_t>(order[i]))] = p[order[i]];
      return {200, body.dump()};
    }
    case HandlerKind::kImageScorer: {
      if (output.values.size() != 1) {
        return ErrorReply(500, "InternalServerError",
                          "image_scorer needs one output value per sample, the model returned " +
                              std::to_string(output.values.size()));
      }
      return {200, nlohmann::json{{"score", output.values[0]}}.dump()};
    }
    case HandlerKind::kTensor: {
      nlohmann::ordered_json body;
      body["data"] = output.values;
      body["shape"] = output.shape;
      return {200, body.dump()};
    }
  }
  return ErrorReply(500, "InternalServerError", "unknown handler");
}

}  // namespace sg::serve
