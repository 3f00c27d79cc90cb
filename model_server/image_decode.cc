// DecodeImage (image.h): PNG and JPEG decoded as Pillow 9.4 decodes them (Image.open), then
// converted as Pillow's Image.convert("RGB") or convert("L") converts: the pixels a TorchServe
// handler that converts its input sees, byte for byte (tests/unit/model_server/
// pil_parity_test.cc). Pillow's modes, and what sg-serve keeps of them:
//   PNG gray 1/2/4/8 bits -> L (1 bit: 0 or 255; 2 and 4 bits scaled by 85 and 17)
//   PNG gray 16 bits      -> I (the 16-bit value; convert clips it to 255, as Pillow does)
//   PNG gray + alpha      -> LA (8 bits), RGBA (16 bits: the high byte); alpha dropped
//   PNG RGB, RGBA         -> RGB, RGBA (16 bits: the high byte); alpha dropped, no compositing
//   PNG palette           -> P; convert looks the colours up (transparency ignored)
//   JPEG 1, 3, 4 channels -> L, RGB (libjpeg's YCbCr conversion), CMYK (Adobe's inverted
//                            convention, always); CMYK to RGB: r = (255 - k) - c (255 - k) / 255
//   RGB to L: (19595 r + 38470 g + 7471 b + 0x8000) >> 16 (ITU-R 601-2, Pillow's L24)
// Gamma, colour profiles and EXIF orientation are ignored, as Pillow ignores them on open.
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <jpeglib.h>
#include <png.h>

#include "model_server/image.h"

namespace sg::serve {
namespace {

// Samples per pixel as a decoder leaves them, before the conversion.
enum class Layout { kL, kLA, kRGB, kRGBA, kCMYK, kI16 };

// `data` is the caller's: the output image's own buffer, so that the usual case (an RGB image
// for an RGB model) is decoded in place, into memory the previous request already touched.
struct Decoded {
  int width = 0;
  int height = 0;
  Layout layout = Layout::kRGB;
  std::vector<uint8_t>* data = nullptr;
};

int BytesPerPixel(Layout layout) {
  switch (layout) {
    case Layout::kL:
      return 1;
    case Layout::kLA:
    case Layout::kI16:
      return 2;
    case Layout::kRGB:
      return 3;
    case Layout::kRGBA:
    case Layout::kCMYK:
      return 4;
  }
  return 0;
}

std::string TooLarge(int64_t width, int64_t height) {
  return "image too large: " + std::to_string(width) + "x" + std::to_string(height) + " pixels";
}

// --- PNG (libpng) ---

struct PngSource {
  std::string_view bytes;
  size_t at = 0;
};

struct PngError {
  std::jmp_buf jump;
  char message[200];
};

void PngRead(png_structp png, png_bytep data, size_t length) {
  auto* src = static_cast<PngSource*>(png_get_io_ptr(png));
  if (src->bytes.size() - src->at < length) png_error(png, "truncated data");
  std::memcpy(data, src->bytes.data() + src->at, length);
  src->at += length;
}

void PngFail(png_structp png, png_const_charp message) {
  auto* err = static_cast<PngError*>(png_get_error_ptr(png));
  std::snprintf(err->message, sizeof err->message, "%s", message);
  std::longjmp(err->jump, 1);
}

void PngWarn(png_structp, png_const_charp) {}

// Rows as Pillow's PNG plugin unpacks them: 8 bits per sample except a 16-bit gray image
// (mode I), palette expanded (convert does the lookup), alpha kept for the conversion to drop.
// No C++ object with a destructor is created between setjmp and longjmp here.
bool DecodePng(std::string_view bytes, int64_t max_pixels, Decoded* out, std::string* error) {
  PngSource source{bytes, 0};
  PngError err;
  err.message[0] = '\0';
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, PngFail, PngWarn);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    *error = "cannot decode PNG: out of memory";
    return false;
  }
  bool too_large = false;
  if (setjmp(err.jump)) {
    png_destroy_read_struct(&png, &info, nullptr);
    error->assign("cannot decode PNG: ");
    error->append(err.message);
    return false;
  }
  png_set_read_fn(png, &source, PngRead);
  png_read_info(png, info);
  const png_uint_32 width = png_get_image_width(png, info);
  const png_uint_32 height = png_get_image_height(png, info);
  if (static_cast<int64_t>(width) * height > max_pixels) {
    too_large = true;
  } else {
    const int depth = png_get_bit_depth(png, info);
    const int color = png_get_color_type(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    const bool gray16 = color == PNG_COLOR_TYPE_GRAY && depth == 16;
    if (depth == 16 && !gray16) png_set_strip_16(png);  // the high byte, as Pillow's ;16B
    const int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const int channels = png_get_channels(png, info);
    out->width = static_cast<int>(width);
    out->height = static_cast<int>(height);
    out->layout = gray16          ? Layout::kI16
                  : channels == 1 ? Layout::kL
                  : channels == 2 ? Layout::kLA
                  : channels == 3 ? Layout::kRGB
                                  : Layout::kRGBA;
    const size_t stride = png_get_rowbytes(png, info);
    out->data->resize(stride * height);
    // Interlaced images: each pass fills in more of every row.
    for (int pass = 0; pass < passes; ++pass) {
      for (png_uint_32 y = 0; y < height; ++y) {
        png_read_row(png, out->data->data() + y * stride, nullptr);
      }
    }
    png_read_end(png, nullptr);
  }
  png_destroy_read_struct(&png, &info, nullptr);
  if (too_large) *error = TooLarge(width, height);
  return !too_large;
}

// --- JPEG (libjpeg) ---

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

// libjpeg with Pillow's settings (its defaults: islow DCT, fancy upsampling, full scale),
// L, RGB or CMYK out by the number of components, CMYK inverted as Pillow's "CMYK;I".
// No C++ object with a destructor is created between setjmp and longjmp here.
bool DecodeJpeg(std::string_view bytes, int64_t max_pixels, Decoded* out, std::string* error) {
  jpeg_decompress_struct info;
  JpegError err;
  info.err = jpeg_std_error(&err.manager);
  err.manager.error_exit = JpegErrorExit;
  err.manager.emit_message = JpegSilence;
  err.message[0] = '\0';
  bool too_large = false, unsupported = false;
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
  const int components = info.num_components;
  if (static_cast<int64_t>(info.image_width) * info.image_height > max_pixels) {
    too_large = true;
  } else if (components != 1 && components != 3 && components != 4) {
    unsupported = true;  // Pillow: "cannot handle N-layer images"
  } else {
    info.out_color_space = components == 1 ? JCS_GRAYSCALE : components == 3 ? JCS_RGB : JCS_CMYK;
    out->layout = components == 1 ? Layout::kL : components == 3 ? Layout::kRGB : Layout::kCMYK;
    jpeg_start_decompress(&info);
    out->width = static_cast<int>(info.output_width);
    out->height = static_cast<int>(info.output_height);
    const size_t stride = static_cast<size_t>(out->width) * info.output_components;
    out->data->resize(stride * out->height);
    while (info.output_scanline < info.output_height) {
      JSAMPROW row = out->data->data() + static_cast<size_t>(info.output_scanline) * stride;
      jpeg_read_scanlines(&info, &row, 1);
    }
    jpeg_finish_decompress(&info);
  }
  const unsigned w = info.image_width, h = info.image_height;
  jpeg_destroy_decompress(&info);
  if (too_large) {
    *error = TooLarge(w, h);
    return false;
  }
  if (unsupported) {
    *error = "cannot decode JPEG: " + std::to_string(components) + " components";
    return false;
  }
  if (out->layout == Layout::kCMYK) {
    for (auto& v : *out->data) v = static_cast<uint8_t>(255 - v);
  }
  return true;
}

// --- Pillow's convert("RGB") and convert("L") ---

// Pillow's MULDIV255: a * b / 255 rounded, in integers.
inline int MulDiv255(int a, int b) {
  const int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

inline uint8_t Luma(int r, int g, int b) {
  return static_cast<uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
}

// One pixel of `layout` as RGB.
inline void ToRgb(Layout layout, const uint8_t* p, uint8_t* rgb) {
  switch (layout) {
    case Layout::kL:
    case Layout::kLA:
      rgb[0] = rgb[1] = rgb[2] = p[0];
      return;
    case Layout::kI16: {
      const int v = (p[0] << 8) | p[1];  // big-endian
      rgb[0] = rgb[1] = rgb[2] = static_cast<uint8_t>(v > 255 ? 255 : v);
      return;
    }
    case Layout::kRGB:
    case Layout::kRGBA:
      rgb[0] = p[0];
      rgb[1] = p[1];
      rgb[2] = p[2];
      return;
    case Layout::kCMYK: {
      const int nk = 255 - p[3];
      for (int c = 0; c < 3; ++c) rgb[c] = static_cast<uint8_t>(nk - MulDiv255(p[c], nk));
      return;
    }
  }
}

// `in` decoded into out->pixels; converted there to `channels`.
void Convert(const Decoded& in, int channels, Image* out) {
  out->width = in.width;
  out->height = in.height;
  out->channels = channels;
  if (in.layout == (channels == 1 ? Layout::kL : Layout::kRGB)) return;  // already
  const std::vector<uint8_t> source = std::move(out->pixels);
  const size_t count = static_cast<size_t>(in.width) * in.height;
  const int step = BytesPerPixel(in.layout);
  out->pixels.assign(count * channels, 0);
  const uint8_t* p = source.data();
  uint8_t* q = out->pixels.data();
  for (size_t i = 0; i < count; ++i, p += step, q += channels) {
    if (channels == 3) {
      ToRgb(in.layout, p, q);
    } else if (in.layout == Layout::kLA) {
      q[0] = p[0];  // la2l; I16 through ToRgb clips as i2l does
    } else {
      uint8_t rgb[3] = {0, 0, 0};
      ToRgb(in.layout, p, rgb);
      q[0] = in.layout == Layout::kI16 ? rgb[0] : Luma(rgb[0], rgb[1], rgb[2]);
    }
  }
}

}  // namespace

bool DecodeImage(std::string_view bytes, int channels, int64_t max_pixels, Image* out,
                 std::string* error) {
  static const unsigned char kPng[] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  Decoded decoded;
  decoded.data = &out->pixels;
  bool ok;
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), kPng, 8) == 0) {
    ok = DecodePng(bytes, max_pixels, &decoded, error);
  } else if (bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
             static_cast<unsigned char>(bytes[1]) == 0xD8 &&
             static_cast<unsigned char>(bytes[2]) == 0xFF) {
    ok = DecodeJpeg(bytes, max_pixels, &decoded, error);
  } else {
    *error = bytes.empty() ? "empty body: expected a PNG or JPEG image"
                           : "cannot decode image: not PNG or JPEG data";
    return false;
  }
  if (ok) Convert(decoded, channels, out);
  return ok;
}

}  // namespace sg::serve
