#include "model_server/image.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "model_server/resample.h"

namespace sg::serve {
namespace {

// Where torchvision's CenterCrop starts a crop of `crop` in a side of `size`: a crop larger than
// the side pads (crop - size) // 2 zeros before it (a negative offset), and otherwise starts at
// int(round((size - crop) / 2.0)) with Python's round, half to even (a 341-wide image cropped
// to 224 starts at 58, not 59).
int CenterCropOffset(int size, int crop) {
  const int excess = size - crop;
  if (excess < 0) return -(-excess / 2);
  const int half = excess / 2;
  return half + (excess % 2 == 1 && half % 2 == 1);
}

}  // namespace

std::pair<int, int> ResizedSize(int width, int height, int resize) {
  // torchvision's _compute_resized_output_size: int(requested_new_short * long / short), the
  // product exact and the quotient in double, truncated.
  const int shorter = std::min(width, height), longer = std::max(width, height);
  const int other = static_cast<int>(static_cast<double>(int64_t{resize} * longer) / shorter);
  return width <= height ? std::make_pair(resize, other) : std::make_pair(other, resize);
}

void PreprocessImage(const Image& image, const ImagePreprocess& p, const SamplePlacer& place) {
  auto [width, height] = p.resize > 0 ? ResizedSize(image.width, image.height, p.resize)
                                      : std::make_pair(image.width, image.height);
  const int crop_w = p.crop > 0 ? p.crop : width;
  const int crop_h = p.crop > 0 ? p.crop : height;
  // torchvision CenterCrop; a crop larger than the image pads with zeros (negative top/left),
  // so every sample has the configured shape.
  int top = CenterCropOffset(height, crop_h);
  int left = CenterCropOffset(width, crop_w);
  const Image* src = &image;
  Image window;
  if (width != image.width || height != image.height) {
    // Resize only what the crop keeps: the crop's intersection with the resized image.
    // torchvision's Resize defaults to bilinear; Pillow resamples RGB and L the same way.
    ResampleWindow w;
    w.left = std::max(left, 0);
    w.top = std::max(top, 0);
    w.width = std::min(width, left + crop_w) - w.left;
    w.height = std::min(height, top + crop_h) - w.top;
    window = Resample(image, width, height, ResampleFilter::kBilinear, w);
    src = &window;
    left -= w.left;  // now relative to the window
    top -= w.top;
  }
  const int channels = src->channels;
  std::byte* out = place({channels, crop_h, crop_w});
  // (v / 255 - mean) / std for each of the 256 byte values, in float32 as torch computes
  // ToTensor's div(255) and Normalize's sub_(mean).div_(std): once per channel, not per pixel.
  std::array<std::array<float, 256>, 3> normalized;
  for (int c = 0; c < channels; ++c) {
    const float mean = p.mean[c], deviation = p.std[c];
    for (int v = 0; v < 256; ++v) {
      normalized[c][v] = (static_cast<float>(v) / 255.0f - mean) / deviation;
    }
  }
  // The columns inside the image; the ones outside (a crop wider than the image) are padding.
  int x_begin = std::clamp(-left, 0, crop_w);
  int x_end = std::clamp(src->width - left, x_begin, crop_w);
  const size_t plane = static_cast<size_t>(crop_h) * crop_w;
  auto put = [out](size_t index, float value) {
    std::memcpy(out + index * sizeof(float), &value, sizeof(float));  // any alignment
  };
  for (int y = 0; y < crop_h; ++y) {
    int sy = y + top;
    bool inside = sy >= 0 && sy < src->height;
    for (int c = 0; c < channels; ++c) {  // padding: the row, or the columns left and right
      size_t row = c * plane + static_cast<size_t>(y) * crop_w;
      for (int x = 0; x < (inside ? x_begin : crop_w); ++x) put(row + x, normalized[c][0]);
      for (int x = inside ? x_end : crop_w; x < crop_w; ++x) put(row + x, normalized[c][0]);
    }
    if (!inside) continue;
    // One pass over the row's pixels, each channel to its plane.
    const uint8_t* pixel =
        src->pixels.data() + (static_cast<size_t>(sy) * src->width + x_begin + left) * channels;
    size_t at = static_cast<size_t>(y) * crop_w;
    if (channels == 3) {
      for (int x = x_begin; x < x_end; ++x, pixel += 3) {
        put(at + x, normalized[0][pixel[0]]);
        put(plane + at + x, normalized[1][pixel[1]]);
        put(2 * plane + at + x, normalized[2][pixel[2]]);
      }
    } else {
      for (int x = x_begin; x < x_end; ++x, pixel += channels) {
        for (int c = 0; c < channels; ++c) put(c * plane + at + x, normalized[c][pixel[c]]);
      }
    }
  }
}

SamplePlacer IntoTensor(SampleTensor* t) {
  return [t](const std::vector<int64_t>& shape) {
    size_t count = 1;
    for (int64_t d : shape) count *= static_cast<size_t>(d);
    t->shape = shape;
    t->values.resize(count);
    return reinterpret_cast<std::byte*>(t->values.data());
  };
}

SampleTensor PreprocessImage(const Image& image, const ImagePreprocess& p) {
  SampleTensor t;
  PreprocessImage(image, p, IntoTensor(&t));
  return t;
}

}  // namespace sg::serve
