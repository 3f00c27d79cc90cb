// sg-serve's image preprocessing against Pillow and torchvision themselves, at test time:
// pil_reference.py (Debian's python3-pil and python3-torchvision) makes images of every size
// class and mode, and writes what Image.open + convert, Resize, CenterCrop, ToTensor and
// Normalize give for each; the decoded and resized 8-bit images must be the same bytes, the
// normalised tensor the same values within 1e-6. Skipped, saying so, only without python3-pil.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>

#include <nlohmann/json.hpp>

#include "model_server/handler.h"
#include "model_server/image.h"
#include "model_server/resample.h"
#include "model_server/serve_config.h"
#include "tests/support/test_support.h"

namespace sg::serve {
namespace {

struct Reference {
  std::unique_ptr<sg::testing::TempDir> dir;
  std::vector<nlohmann::json> cases;
  std::string skip;   // why the reference is missing (python3-pil not installed)
  std::string error;  // the script failed
};

// Runs pil_reference.py once for the whole binary.
const Reference& GetReference() {
  static const Reference* reference = [] {
    auto* r = new Reference;
    r->dir = std::make_unique<sg::testing::TempDir>();
    const auto script = sg::testing::SourceDir() / "tests/unit/model_server/pil_reference.py";
    const auto log = r->dir->path() / "stderr.txt";
    const auto out = r->dir->path() / "images";
    if (access("/usr/bin/python3", X_OK) != 0) {
      r->skip = "no /usr/bin/python3, so no python3-pil (apt-get install python3-pil)";
      return r;
    }
    const std::string command = "/usr/bin/python3 '" + script.string() + "' '" + out.string() +
                                "' 2>'" + log.string() + "'";
    FILE* pipe = popen(command.c_str(), "r");
    std::string lines;
    char buffer[4096];
    while (pipe && std::fgets(buffer, sizeof buffer, pipe)) lines += buffer;
    const int status = pipe ? pclose(pipe) : -1;
    const int code = status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    const std::string stderr_text = sg::testing::ReadFile(log);
    if (code == 77) {
      r->skip = stderr_text;
    } else if (code != 0) {
      r->error = "pil_reference.py exited with " + std::to_string(code) + ":\n" + stderr_text;
    } else {
      size_t at = 0;
      while (at < lines.size()) {
        size_t end = lines.find('\n', at);
        if (end == std::string::npos) end = lines.size();
        if (end > at) r->cases.push_back(nlohmann::json::parse(lines.substr(at, end - at)));
        at = end + 1;
      }
    }
    return r;
  }();
  return *reference;
}

#define REQUIRE_REFERENCE(r)                                              \
  const Reference& r = GetReference();                                    \
  if (!r.skip.empty()) GTEST_SKIP() << "python3-pil missing: " << r.skip; \
  ASSERT_TRUE(r.error.empty()) << r.error;                                \
  ASSERT_FALSE(r.cases.empty())

// A file the script wrote: the encoded image (c["file"]) or NAME.suffix.
std::string Read(const Reference& r, const std::string& file) {
  return sg::testing::ReadFile(r.dir->path() / "images" / file);
}
std::string Read(const Reference& r, const nlohmann::json& c, const std::string& suffix) {
  return Read(r, c["name"].get<std::string>() + "." + suffix);
}

ImagePreprocess PreprocessOf(const nlohmann::json& c) {
  ImagePreprocess p;
  p.channels = c["channels"];
  p.resize = c["resize"];
  p.crop = c["crop"];
  p.mean.clear();
  p.std.clear();
  // As a config file gives them: JSON numbers (doubles) to float, as torch.as_tensor does.
  for (double v : c["mean"]) p.mean.push_back(static_cast<float>(v));
  for (double v : c["std"]) p.std.push_back(static_cast<float>(v));
  return p;
}

// The first differing byte, described; "" when equal.
std::string FirstDifference(const std::vector<uint8_t>& got, const std::string& want, int width,
                            int channels) {
  if (got.size() != want.size()) {
    return "size " + std::to_string(got.size()) + " != " + std::to_string(want.size());
  }
  size_t differ = 0, first = got.size();
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != static_cast<uint8_t>(want[i])) {
      if (differ++ == 0) first = i;
    }
  }
  if (differ == 0) return "";
  const size_t pixel = first / channels;
  return std::to_string(differ) + " bytes differ, the first at x " + std::to_string(pixel % width) +
         " y " + std::to_string(pixel / width) + " channel " + std::to_string(first % channels) +
         ": " + std::to_string(got[first]) + " instead of " +
         std::to_string(static_cast<uint8_t>(want[first]));
}

TEST(PilParityTest, DecodedPixelsAreTheBytesOfPillowsOpenAndConvert) {
  REQUIRE_REFERENCE(r);
  for (const auto& c : r.cases) {
    SCOPED_TRACE(c["name"].get<std::string>() +
                 " (TorchServe's handler: " + c["torchserve"].get<std::string>() + ")");
    const auto p = PreprocessOf(c);
    Image image;
    std::string error;
    ASSERT_TRUE(DecodeImage(Read(r, c["file"].get<std::string>()), p.channels, p.max_pixels, &image,
                            &error))
        << error;
    ASSERT_EQ(image.width, c["decoded"][0].get<int>());
    ASSERT_EQ(image.height, c["decoded"][1].get<int>());
    ASSERT_EQ(image.channels, p.channels);
    EXPECT_EQ(FirstDifference(image.pixels, Read(r, c, "decoded"), image.width, p.channels), "");
  }
}

TEST(PilParityTest, ResizedPixelsAreTheBytesOfTorchvisionsResizeOnPillow) {
  REQUIRE_REFERENCE(r);
  for (const auto& c : r.cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const auto p = PreprocessOf(c);
    const int width = c["resized"][0], height = c["resized"][1];
    Image decoded{c["decoded"][0], c["decoded"][1], p.channels, {}};
    const std::string decoded_bytes = Read(r, c, "decoded");
    decoded.pixels.assign(decoded_bytes.begin(), decoded_bytes.end());
    ASSERT_EQ(ResizedSize(decoded.width, decoded.height, p.resize), std::make_pair(width, height));
    if (width == decoded.width && height == decoded.height) continue;  // not resized
    const auto filter =
        c["filter"] == "bicubic" ? ResampleFilter::kBicubic : ResampleFilter::kBilinear;
    const Image resized = Resample(decoded, width, height, filter);
    ASSERT_EQ(resized.width, width);
    ASSERT_EQ(resized.height, height);
    EXPECT_EQ(FirstDifference(resized.pixels, Read(r, c, "resized"), width, p.channels), "");
  }
}

TEST(PilParityTest, NormalisedTensorIsTorchvisionsWithin1e6) {
  // Through the handler's entry point (decode, resize, crop, normalise) for the bilinear
  // cases, torchvision's default; the bicubic ones from their resized image.
  REQUIRE_REFERENCE(r);
  for (const auto& c : r.cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    ModelConfig model;
    model.preprocess = PreprocessOf(c);
    SampleTensor t;
    std::string error;
    if (c["filter"] == "bilinear") {
      ASSERT_TRUE(PreprocessRequest(model, Read(r, c["file"].get<std::string>()), &t, &error))
          << error;
    } else {
      Image resized{c["resized"][0], c["resized"][1], model.preprocess.channels, {}};
      const std::string bytes = Read(r, c, "resized");
      resized.pixels.assign(bytes.begin(), bytes.end());
      model.preprocess.resize = 0;
      t = PreprocessImage(resized, model.preprocess);
    }
    std::vector<int64_t> shape;
    for (int64_t d : c["tensor"]) shape.push_back(d);
    ASSERT_EQ(t.shape, shape);
    const std::string want = Read(r, c, "tensor");
    ASSERT_EQ(want.size(), t.values.size() * sizeof(float));
    double worst = 0;
    size_t worst_at = 0, exact = 0;
    for (size_t i = 0; i < t.values.size(); ++i) {
      float v;
      std::memcpy(&v, want.data() + i * sizeof(float), sizeof v);
      const double diff = std::fabs(static_cast<double>(t.values[i]) - v);
      exact += diff == 0;
      if (diff > worst) worst = diff, worst_at = i;
    }
    EXPECT_LE(worst, 1e-6) << "at value " << worst_at << " of " << t.values.size();
    RecordProperty(c["name"].get<std::string>() + "_exact", std::to_string(exact));
  }
}

TEST(PilParityTest, ResampleWindowIsTheCropOfTheWholeResize) {
  // No Python: the window PreprocessImage resizes is byte for byte the whole resize cropped,
  // down and up, one axis or both, 1 and 3 channels, both filters, windows at every edge.
  std::mt19937 random(11);
  for (int channels : {1, 3}) {
    for (auto filter : {ResampleFilter::kBilinear, ResampleFilter::kBicubic}) {
      for (auto [w, h, nw, nh] : std::vector<std::array<int, 4>>{{640, 480, 341, 256},
                                                                 {37, 23, 256, 159},
                                                                 {300, 200, 300, 131},
                                                                 {9, 40, 23, 40},
                                                                 {5, 5, 5, 5},
                                                                 {1, 9, 4, 5}}) {
        Image image{w, h, channels, std::vector<uint8_t>(static_cast<size_t>(w) * h * channels)};
        for (auto& v : image.pixels) v = static_cast<uint8_t>(random());
        const Image whole = Resample(image, nw, nh, filter);
        for (int trial = 0; trial < 8; ++trial) {
          ResampleWindow win;
          win.left = static_cast<int>(random() % nw);
          win.top = static_cast<int>(random() % nh);
          win.width = 1 + static_cast<int>(random() % (nw - win.left));
          win.height = 1 + static_cast<int>(random() % (nh - win.top));
          const Image part = Resample(image, nw, nh, filter, win);
          ASSERT_EQ(part.width, win.width);
          ASSERT_EQ(part.height, win.height);
          for (int y = 0; y < win.height; ++y) {
            const auto* from =
                &whole.pixels[((static_cast<size_t>(y) + win.top) * nw + win.left) * channels];
            ASSERT_TRUE(std::equal(from, from + static_cast<size_t>(win.width) * channels,
                                   &part.pixels[static_cast<size_t>(y) * win.width * channels]))
                << w << "x" << h << " -> " << nw << "x" << nh << " window " << win.left << ","
                << win.top << " " << win.width << "x" << win.height << " row " << y;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace sg::serve
