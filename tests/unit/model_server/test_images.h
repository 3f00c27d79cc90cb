// Encoding PNG and JPEG images in tests (libpng, libjpeg), so inputs are real files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sg::serve::testing {

// A deterministic gradient image, `channels` 1 or 3.
std::vector<uint8_t> GradientPixels(int width, int height, int channels, int seed = 0);
std::string EncodePng(const std::vector<uint8_t>& pixels, int width, int height, int channels);
std::string EncodeJpeg(const std::vector<uint8_t>& pixels, int width, int height, int channels,
                       int quality = 95);

}  // namespace sg::serve::testing
