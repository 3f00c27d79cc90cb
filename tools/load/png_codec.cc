#include "tools/load/png_codec.h"

#include <png.h>

#include <cstring>

namespace sg::load {

std::optional<std::string> EncodeGrayPng(const GrayImage& image, std::string* error) {
  if (image.pixels.size() != size_t{image.width} * image.height) {
    *error = "pixel count does not match width x height";
    return std::nullopt;
  }
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  png.width = image.width;
  png.height = image.height;
  png.format = PNG_FORMAT_GRAY;
  png_alloc_size_t size = 0;
  // First call measures, second writes.
  if (!png_image_write_to_memory(&png, nullptr, &size, 0, image.pixels.data(), 0, nullptr)) {
    *error = std::string("libpng: ") + png.message;
    return std::nullopt;
  }
  std::string out(size, '\0');
  if (!png_image_write_to_memory(&png, out.data(), &size, 0, image.pixels.data(), 0, nullptr)) {
    *error = std::string("libpng: ") + png.message;
    return std::nullopt;
  }
  out.resize(size);
  return out;
}

std::optional<GrayImage> DecodePngToGrayForTest(std::string_view bytes, std::string* error) {
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&png, bytes.data(), bytes.size())) {
    *error = std::string("libpng: ") + png.message;
    return std::nullopt;
  }
  png.format = PNG_FORMAT_GRAY;
  GrayImage image;
  image.width = png.width;
  image.height = png.height;
  image.pixels.resize(PNG_IMAGE_SIZE(png));
  if (!png_image_finish_read(&png, nullptr, image.pixels.data(), 0, nullptr)) {
    *error = std::string("libpng: ") + png.message;
    png_image_free(&png);
    return std::nullopt;
  }
  return image;
}

}  // namespace sg::load
