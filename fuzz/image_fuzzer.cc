// libFuzzer target: an image request's body as sg-serve's image handlers read it:
// PreprocessImageRequest (DecodeImage: PNG through libpng, JPEG through libjpeg, detected by
// signature; then resize, centre crop and normalise) for the two kinds of model the project
// serves: RGB with ImageNet's normalisation and Fashion-MNIST's grayscale one
// (configs/serve.example.json: resize 28, crop 28). The sizes and max_pixels are scaled down
// (RGB: resize 40, crop 32; max_pixels 1 MiB) so that thousands of inputs run a second: the same
// code as ImageNet's 256/224 and 40,000,000, at production sizes a run managed 29 a second.
// Oracles besides "no crash": a decoded image holds width x height x channels bytes; a sample
// has the configured shape {channels, crop, crop} and every value is (v / 255 - mean) / std for
// some byte v. (libpng and libjpeg are Debian's, not instrumented: the fuzzer is guided by the
// project's code around them.)
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "model_server/handler.h"
#include "model_server/image.h"
#include "model_server/serve_config.h"

namespace {

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "image_fuzzer: %s\n", what);
  std::abort();
}

constexpr int64_t kMaxPixels = 1 << 20;

sg::serve::ModelConfig Rgb() {
  sg::serve::ModelConfig model;  // ImageNet's mean and std
  model.preprocess.resize = 40;
  model.preprocess.crop = 32;
  model.preprocess.max_pixels = kMaxPixels;
  return model;
}

sg::serve::ModelConfig Fashion() {
  sg::serve::ModelConfig model;
  model.preprocess.max_pixels = kMaxPixels;
  model.preprocess.resize = 28;
  model.preprocess.crop = 28;
  model.preprocess.channels = 1;
  model.preprocess.mean = {0.286f};
  model.preprocess.std = {0.353f};
  return model;
}

void Check(const sg::serve::ModelConfig& model, std::string_view bytes) {
  const auto& p = model.preprocess;
  sg::serve::SampleTensor sample;
  std::string error;
  if (!sg::serve::PreprocessRequest(model, bytes, &sample, &error)) {
    if (error.empty()) Fail("refused without a reason");
    return;
  }
  if (sample.shape != std::vector<int64_t>{p.channels, p.crop, p.crop}) Fail("wrong shape");
  if (sample.values.size() != static_cast<size_t>(p.channels) * p.crop * p.crop) {
    Fail("wrong number of values");
  }
  const size_t plane = static_cast<size_t>(p.crop) * p.crop;
  for (size_t i = 0; i < sample.values.size(); ++i) {
    const size_t c = i / plane;
    const float lo = (0.0f - p.mean[c]) / p.std[c], hi = (1.0f - p.mean[c]) / p.std[c];
    const float v = sample.values[i];
    if (!std::isfinite(v) || v < lo - 1e-4f || v > hi + 1e-4f) Fail("a value out of range");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const sg::serve::ModelConfig kRgb = Rgb();
  static const sg::serve::ModelConfig kFashion = Fashion();
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  sg::serve::Image image;
  std::string error;
  if (sg::serve::DecodeImage(bytes, 3, kMaxPixels, &image, &error)) {
    if (image.width <= 0 || image.height <= 0 || image.channels != 3 ||
        image.pixels.size() != static_cast<size_t>(image.width) * image.height * 3) {
      Fail("a decoded image's size does not match its pixels");
    }
  } else if (error.empty()) {
    Fail("refused without a reason");
  }
  Check(kRgb, bytes);
  Check(kFashion, bytes);
  return 0;
}
