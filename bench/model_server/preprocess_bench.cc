// sg-bench-preprocess: how long an image handler's preprocessing takes, stage by stage, for
// the given images (the front's or the worker's work for one request before the forward):
// decode (PNG via libpng, JPEG via libjpeg-turbo, converted to RGB as Pillow converts),
// Pillow's bilinear resize of the shorter side (the whole image, as torchvision's Resize), and
// the whole PreprocessImage (the resize of only what the crop keeps, center crop, normalise
// into a float tensor).
//
//   sg-bench-preprocess [--resize 256] [--crop 224] [--iterations 300] IMAGE...
//
// Prints one Markdown row per image: medians over the iterations, in microseconds. Memory is
// configured as in the server's processes (large blocks stay in the heap), so page faults of
// fresh buffers do not count.
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/cli.h"
#include "model_server/image.h"
#include "model_server/resample.h"

namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double Micros(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::micro>(to - from).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sg-bench-preprocess: image decoding and preprocessing time per stage"};
  int resize = 256, crop = 224, iterations = 300;
  std::vector<std::string> images;
  app.add_option("--resize", resize, "shorter side after resizing (0: none)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--crop", crop, "center crop (0: none)")->check(CLI::NonNegativeNumber);
  app.add_option("--iterations", iterations, "runs per image")->check(CLI::PositiveNumber);
  app.add_option("images", images, "PNG or JPEG files")->required()->check(CLI::ExistingFile);
  if (auto exit_code = sg::ParseCommandLine(app, argc, argv)) return *exit_code;
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);

  sg::serve::ImagePreprocess p;
  p.resize = resize;
  p.crop = crop;
  std::printf("resize %d, crop %d, %d runs each; medians in microseconds\n\n", resize, crop,
              iterations);
  std::printf("| image | bytes | pixels | decode | resize | preprocess | decode + preprocess |\n");
  std::printf("| --- | ---: | --- | ---: | ---: | ---: | ---: |\n");
  for (const auto& path : images) {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::vector<double> decode, resized, preprocess;
    sg::serve::Image image;
    unsigned sink = 0;  // keeps the resized image in use
    for (int i = 0; i < iterations; ++i) {
      std::string error;
      auto t0 = Clock::now();
      if (!sg::serve::DecodeImage(bytes, 3, p.max_pixels, &image, &error)) {
        std::fprintf(stderr, "%s: %s\n", path.c_str(), error.c_str());
        return 2;
      }
      auto t1 = Clock::now();
      if (resize > 0) {
        auto [nw, nh] = sg::serve::ResizedSize(image.width, image.height, resize);
        if (nw != image.width || nh != image.height) {
          sink +=
              sg::serve::Resample(image, nw, nh, sg::serve::ResampleFilter::kBilinear).pixels[0];
        }
      }
      auto t2 = Clock::now();
      auto t3 = Clock::now();
      auto sample = sg::serve::PreprocessImage(image, p);
      auto t4 = Clock::now();
      decode.push_back(Micros(t0, t1));
      resized.push_back(Micros(t1, t2));
      preprocess.push_back(Micros(t3, t4));
      sink += sample.values.empty() ? 0 : 1;
    }
    if (sink == 0) std::fprintf(stderr, "%s: nothing preprocessed\n", path.c_str());
    std::printf("| %s | %zu | %dx%d | %.0f | %.0f | %.0f | %.0f |\n",
                path.substr(path.find_last_of('/') + 1).c_str(), bytes.size(), image.width,
                image.height, Median(decode), Median(resized), Median(preprocess),
                Median(decode) + Median(preprocess));
  }
  return 0;
}
