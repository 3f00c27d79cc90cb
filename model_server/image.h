// Image decoding (PNG via libpng, JPEG via libjpeg) and torchvision-style preprocessing into a
// CHW float tensor. Plain data in, plain data out; no libtorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model_server/serve_config.h"

namespace sg::serve {

// Interleaved 8-bit pixels, row-major, `channels` per pixel (1 or 3).
struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;
};

// Decodes PNG or JPEG bytes (detected by signature) to `channels` (1: grayscale, 3: RGB).
// Returns false with a human `error` on anything else, corrupt data or more than `max_pixels`.
bool DecodeImage(std::string_view bytes, int channels, int64_t max_pixels, Image* out,
                 std::string* error);

// The size PreprocessImage resizes a width x height image to (torchvision Resize(int)): the
// shorter side becomes `resize`, the aspect ratio is kept; at least 1x1.
std::pair<int, int> ResizedSize(int width, int height, int resize);

// Bilinear resize (half-pixel centres, like torch's interpolate with align_corners=false).
Image ResizeBilinear(const Image& in, int width, int height);

// Float CHW tensor data for one sample.
struct SampleTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// A sample's float32 values kept elsewhere: in a SampleTensor, or inside the bytes of an encoded
// one (EncodeSample), where they need not be aligned for float, so they are only ever copied
// out as bytes. The viewed storage must outlive the view.
struct SampleView {
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;  // `count` floats, native byte order
  size_t count = 0;
};
inline SampleView View(const SampleTensor& sample) {
  return {sample.shape, reinterpret_cast<const std::byte*>(sample.values.data()),
          sample.values.size()};
}

// Resize the shorter side to p.resize, center-crop to p.crop, scale to [0,1], normalise.
// REQUIRES: image.channels == p.channels.
SampleTensor PreprocessImage(const Image& image, const ImagePreprocess& p);
// The same, with the values written where the caller wants them: `place` gets the sample's
// shape ({channels, height, width}) and returns room for that many float32 values, native byte
// order, at any alignment (e.g. inside an encoded sample, StartEncodedSample).
using SamplePlacer = std::function<std::byte*(const std::vector<int64_t>& shape)>;
void PreprocessImage(const Image& image, const ImagePreprocess& p, const SamplePlacer& place);
// The placer for a SampleTensor: `t` gets the shape and the room.
SamplePlacer IntoTensor(SampleTensor* t);

}  // namespace sg::serve
