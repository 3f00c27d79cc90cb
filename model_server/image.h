// Image decoding (PNG via libpng, JPEG via libjpeg, as Pillow decodes and converts them:
// image_decode.cc) and preprocessing into a CHW float tensor as TorchServe's image handlers do
// (torchvision's Resize, CenterCrop, ToTensor and Normalize on a PIL image; the resize is
// resample.h's). Plain data in, plain data out; no libtorch.
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

// Decodes PNG or JPEG bytes (detected by signature) to `channels` (1: grayscale, 3: RGB): the
// pixels of Pillow's Image.open(bytes).convert("L" or "RGB"), byte for byte, whatever the
// file's mode (gray, gray + alpha, 16-bit, palette, RGBA, CMYK; see image_decode.cc).
// Returns false with a human `error` on anything else, corrupt data or more than `max_pixels`.
bool DecodeImage(std::string_view bytes, int channels, int64_t max_pixels, Image* out,
                 std::string* error);

// The size PreprocessImage resizes a width x height image to (torchvision Resize(int)): the
// shorter side becomes `resize`, the longer one int(resize * longer / shorter).
// REQUIRES: width, height, resize >= 1.
std::pair<int, int> ResizedSize(int width, int height, int resize);

// Float CHW tensor data for one sample.
struct SampleTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// A sample's float32 values kept elsewhere: in a SampleTensor, or inside the bytes of an encoded
// one (StartEncodedSample), where they need not be aligned for float, so they are only ever copied
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

// torchvision's Resize(p.resize) (Pillow's bilinear resampling, resample.h; none when the size
// stays), CenterCrop(p.crop) (zero padding when larger), ToTensor and Normalize(p.mean, p.std),
// to the float: (v / 255 - mean) / std in float32, as torch computes it. Only the part of the
// resized image the crop keeps is computed (the same bytes). 0 for resize or crop: none.
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
