// PNG encoding and decoding with libpng (8-bit greyscale, which is what the corpora need).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sg::load {

struct GrayImage {
  uint32_t width = 0;
  uint32_t height = 0;
  std::vector<uint8_t> pixels;  // row-major, width * height bytes
};

// Encodes an 8-bit greyscale PNG. REQUIRES: pixels.size() == width * height.
std::optional<std::string> EncodeGrayPng(const GrayImage& image, std::string* error);

// Decodes any PNG libpng reads, converted to 8-bit greyscale: for the tests that read back the
// images sg-load sends.
std::optional<GrayImage> DecodePngToGrayForTest(std::string_view png, std::string* error);

}  // namespace sg::load
