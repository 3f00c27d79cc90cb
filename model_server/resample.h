// PIL's resampling (Pillow's Image.resize, src/libImaging/Resample.c) for 8-bit images: the
// resize TorchServe's handlers get through torchvision's Resize on a PIL image. Separable, in
// two passes (rows, then columns) with an 8-bit image between them; each output pixel is a
// weighted sum of the input pixels under the filter, whose support is scaled by the ratio when
// shrinking (so shrinking averages, as an antialias filter); weights in fixed point (22 bits),
// computed in double exactly as Pillow does, rounded half up and clipped. Byte for byte what
// Pillow 9.4 gives (tests/unit/model_server/pil_parity_test.cc).
#pragma once

namespace sg::serve {

struct Image;

// Pillow's Resampling.BILINEAR (torchvision's default for Resize) and Resampling.BICUBIC.
enum class ResampleFilter { kBilinear, kBicubic };

// A width x height window of an image resized to out_width x out_height, starting at output
// column `left` and row `top`: the same bytes as resizing whole and cropping, for the cost of
// the window only. The window must lie inside the resized image.
struct ResampleWindow {
  int left = 0;
  int top = 0;
  int width = 0;
  int height = 0;
};

// `in` (1 or 3 channels) resized to out_width x out_height with `filter`, as Pillow's
// Image.resize(size, filter). REQUIRES: out_width, out_height >= 1.
Image Resample(const Image& in, int out_width, int out_height, ResampleFilter filter);
// Only `window` of it. REQUIRES: 0 <= left, left + width <= out_width (likewise rows), and
// width, height >= 1.
Image Resample(const Image& in, int out_width, int out_height, ResampleFilter filter,
               const ResampleWindow& window);

}  // namespace sg::serve
