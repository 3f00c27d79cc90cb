#include "model_server/image.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>

#include <jpeglib.h>
#include <png.h>

namespace sg::serve {
namespace {

bool DecodePng(std::string_view bytes, int channels, int64_t max_pixels, Image* out,
               std::string* error) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
    *error = std::string("cannot decode PNG: ") + image.message;
    return false;
  }
  if (static_cast<int64_t>(image.width) * image.height > max_pixels) {
    png_image_free(&image);
    *error = "image too large: " + std::to_string(image.width) + "x" +
             std::to_string(image.height) + " pixels";
    return false;
  }
  image.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  out->width = static_cast<int>(image.width);
  out->height = static_cast<int>(image.height);
  out->channels = channels;
  out->pixels.assign(PNG_IMAGE_SIZE(image), 0);
  if (!png_image_finish_read(&image, nullptr, out->pixels.data(), 0, nullptr)) {
    *error = std::string("cannot decode PNG: ") + image.message;
    png_image_free(&image);
    return false;
  }
  return true;
}

struct JpegError {
  jpeg_error_mgr manager;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void JpegErrorExit(j_common_ptr info) {
  auto* err = reinterpret_cast<JpegError*>(info->err);
  (*info->err->format_message)(info, err->message);
  std::longjmp(err->jump, 1);
}

void JpegSilence(j_common_ptr, int) {}

// No C++ object with a destructor lives between setjmp and longjmp in this function.
bool DecodeJpeg(std::string_view bytes, int channels, int64_t max_pixels, Image* out,
                std::string* error) {
  jpeg_decompress_struct info;
  JpegError err;
  info.err = jpeg_std_error(&err.manager);
  err.manager.error_exit = JpegErrorExit;
  err.manager.emit_message = JpegSilence;
  err.message[0] = '\0';
  bool too_large = false;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&info);
    error->assign("cannot decode JPEG: ");
    error->append(err.message);
    return false;
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&info, TRUE);
  if (static_cast<int64_t>(info.image_width) * info.image_height > max_pixels) {
    too_large = true;
  } else {
    info.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&info);
    out->width = static_cast<int>(info.output_width);
    out->height = static_cast<int>(info.output_height);
    out->channels = channels;
    out->pixels.resize(static_cast<size_t>(out->width) * out->height * channels);
    while (info.output_scanline < info.output_height) {
      JSAMPROW row =
          out->pixels.data() + static_cast<size_t>(info.output_scanline) * out->width * channels;
      jpeg_read_scanlines(&info, &row, 1);
    }
    jpeg_finish_decompress(&info);
  }
  unsigned w = info.image_width, h = info.image_height;
  jpeg_destroy_decompress(&info);
  if (too_large) {
    *error = "image too large: " + std::to_string(w) + "x" + std::to_string(h) + " pixels";
    return false;
  }
  return true;
}

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

bool DecodeImage(std::string_view bytes, int channels, int64_t max_pixels, Image* out,
                 std::string* error) {
  static const unsigned char kPng[] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), kPng, 8) == 0) {
    return DecodePng(bytes, channels, max_pixels, out, error);
  }
  if (bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
      static_cast<unsigned char>(bytes[1]) == 0xD8 &&
      static_cast<unsigned char>(bytes[2]) == 0xFF) {
    return DecodeJpeg(bytes, channels, max_pixels, out, error);
  }
  *error = bytes.empty() ? "empty body: expected a PNG or JPEG image"
                         : "cannot decode image: not PNG or JPEG data";
  return false;
}

namespace {

// Where one output coordinate samples the input: the two neighbours (as element offsets) and the
// second one's weight. Half-pixel centres, clamped at the edges, as torch's interpolate.
struct Tap {
  size_t first;
  size_t second;
  double weight;
};

std::vector<Tap> Taps(int in_size, int out_size, size_t stride) {
  std::vector<Tap> taps(static_cast<size_t>(out_size));
  double scale = static_cast<double>(in_size) / out_size;
  for (int i = 0; i < out_size; ++i) {
    double f = std::max(0.0, (i + 0.5) * scale - 0.5);
    int i0 = std::min(static_cast<int>(f), in_size - 1);
    int i1 = std::min(i0 + 1, in_size - 1);
    taps[i] = {i0 * stride, i1 * stride, f - i0};
  }
  return taps;
}

// std::lround for v >= 0 (half away from zero), without the library call: v - trunc(v) is exact.
uint8_t RoundToByte(double v) {
  v = std::clamp(v, 0.0, 255.0);
  auto r = static_cast<int>(v);
  return static_cast<uint8_t>(r + (v - r >= 0.5));
}

}  // namespace

std::pair<int, int> ResizedSize(int width, int height, int resize) {
  // torchvision Resize(int): the shorter side becomes `resize`, aspect ratio kept.
  int nw, nh;
  if (width <= height) {
    nw = resize;
    nh = static_cast<int>(static_cast<int64_t>(resize) * height / width);
  } else {
    nh = resize;
    nw = static_cast<int>(static_cast<int64_t>(resize) * width / height);
  }
  return {std::max(1, nw), std::max(1, nh)};
}

Image ResizeBilinear(const Image& in, int width, int height) {
  Image out;
  out.width = width;
  out.height = height;
  out.channels = in.channels;
  out.pixels.resize(static_cast<size_t>(width) * height * in.channels);
  const int channels = in.channels;
  // The neighbours and weights depend on x or y alone: computed once per column and row.
  auto xs = Taps(in.width, width, static_cast<size_t>(channels));
  auto ys = Taps(in.height, height, static_cast<size_t>(in.width) * channels);
  uint8_t* dst = out.pixels.data();
  for (const Tap& y : ys) {
    const uint8_t* top = in.pixels.data() + y.first;
    const uint8_t* bottom = in.pixels.data() + y.second;
    const double wy = y.weight;
    auto blend = [&](const Tap& x, int c) {
      double wx = x.weight;
      return RoundToByte((1 - wy) * ((1 - wx) * top[x.first + c] + wx * top[x.second + c]) +
                         wy * ((1 - wx) * bottom[x.first + c] + wx * bottom[x.second + c]));
    };
    if (channels == 3) {  // the usual case, unrolled
      for (const Tap& x : xs) {
        dst[0] = blend(x, 0);
        dst[1] = blend(x, 1);
        dst[2] = blend(x, 2);
        dst += 3;
      }
    } else {
      for (const Tap& x : xs) {
        for (int c = 0; c < channels; ++c) *dst++ = blend(x, c);
      }
    }
  }
  return out;
}

void PreprocessImage(const Image& image, const ImagePreprocess& p, const SamplePlacer& place) {
  const Image* src = &image;
  Image resized;
  if (p.resize > 0) {
    auto [nw, nh] = ResizedSize(image.width, image.height, p.resize);
    if (nw != image.width || nh != image.height) {
      resized = ResizeBilinear(image, nw, nh);
      src = &resized;
    }
  }
  int crop_w = p.crop > 0 ? p.crop : src->width;
  int crop_h = p.crop > 0 ? p.crop : src->height;
  // torchvision CenterCrop; a crop larger than the image pads with zeros (negative top/left),
  // so every sample has the configured shape.
  const int top = CenterCropOffset(src->height, crop_h);
  const int left = CenterCropOffset(src->width, crop_w);
  const int channels = src->channels;
  std::byte* out = place({channels, crop_h, crop_w});
  // (v / 255 - mean) / std for each of the 256 byte values: the same float expression as per
  // pixel, computed once per channel.
  std::array<std::array<float, 256>, 3> normalized;
  for (int c = 0; c < channels; ++c) {
    float mean = p.mean[c], inv_std = 1.0f / p.std[c];
    for (int v = 0; v < 256; ++v) {
      normalized[c][v] = (static_cast<float>(v) / 255.0f - mean) * inv_std;
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
