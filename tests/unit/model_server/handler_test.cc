#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "model_server/handler.h"
#include "model_server/image.h"
#include "model_server/multipart.h"
#include "model_server/protocol.h"
#include "model_server/serve_config.h"
#include "model_server/server_timing.h"
#include "tests/support/test_support.h"
#include "tests/unit/model_server/test_images.h"

namespace sg::serve {
namespace {

using serve::testing::EncodeJpeg;
using serve::testing::EncodePng;
using serve::testing::GradientPixels;

TEST(ImageTest, DecodesPngExactlyInBothChannelCounts) {
  auto rgb = GradientPixels(5, 4, 3);
  Image image;
  std::string error;
  ASSERT_TRUE(DecodeImage(EncodePng(rgb, 5, 4, 3), 3, 1000, &image, &error)) << error;
  EXPECT_EQ(image.width, 5);
  EXPECT_EQ(image.height, 4);
  EXPECT_EQ(image.pixels, rgb);
  auto gray = GradientPixels(3, 3, 1);
  ASSERT_TRUE(DecodeImage(EncodePng(gray, 3, 3, 1), 1, 1000, &image, &error)) << error;
  EXPECT_EQ(image.pixels, gray);
  // RGB to grayscale conversion happens in the decoder.
  ASSERT_TRUE(DecodeImage(EncodePng(rgb, 5, 4, 3), 1, 1000, &image, &error)) << error;
  EXPECT_EQ(image.channels, 1);
  EXPECT_EQ(image.pixels.size(), 20u);
}

TEST(ImageTest, DecodesJpegApproximately) {
  std::vector<uint8_t> flat(16 * 16 * 3, 0);
  for (size_t i = 0; i < flat.size(); i += 3) {
    flat[i] = 200;
    flat[i + 1] = 100;
    flat[i + 2] = 50;
  }
  Image image;
  std::string error;
  ASSERT_TRUE(DecodeImage(EncodeJpeg(flat, 16, 16, 3), 3, 1000, &image, &error)) << error;
  ASSERT_EQ(image.pixels.size(), flat.size());
  for (size_t i = 0; i < flat.size(); ++i) EXPECT_NEAR(image.pixels[i], flat[i], 4) << i;
}

TEST(ImageTest, BadInputIsAClearError) {
  Image image;
  std::string error;
  EXPECT_FALSE(DecodeImage("hello", 3, 1000, &image, &error));
  EXPECT_EQ(error, "cannot decode image: not PNG or JPEG data");
  auto png = EncodePng(GradientPixels(8, 8, 3), 8, 8, 3);
  EXPECT_FALSE(DecodeImage(png.substr(0, png.size() / 2), 3, 1000, &image, &error));
  EXPECT_NE(error.find("cannot decode PNG"), std::string::npos) << error;
  auto jpeg = EncodeJpeg(GradientPixels(8, 8, 3), 8, 8, 3);
  EXPECT_FALSE(DecodeImage(jpeg.substr(0, 40), 3, 1000, &image, &error));
  EXPECT_NE(error.find("cannot decode JPEG"), std::string::npos) << error;
  EXPECT_FALSE(DecodeImage(png, 3, 63, &image, &error));
  EXPECT_EQ(error, "image too large: 8x8 pixels");
}

TEST(ImageTest, ResizeCropNormaliseLikeTorchvision) {
  // 4x2 image: shorter side 2 -> resize 4 makes it 8x4; crop 4 keeps the center 4x4.
  Image image{4, 2, 1, {0, 255, 0, 255, 255, 0, 255, 0}};
  ImagePreprocess p;
  p.resize = 4;
  p.crop = 4;
  p.channels = 1;
  p.mean = {0.5f};
  p.std = {0.5f};
  auto t = PreprocessImage(image, p);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{1, 4, 4}));
  ASSERT_EQ(t.values.size(), 16u);
  for (float v : t.values) {
    EXPECT_GE(v, -1.0f);
    EXPECT_LE(v, 1.0f);
  }
  // Identity when sizes already match: value (x/255 - mean)/std.
  Image one{2, 2, 3, std::vector<uint8_t>(12, 255)};
  ImagePreprocess q;
  q.resize = 2;
  q.crop = 2;
  auto u = PreprocessImage(one, q);
  EXPECT_EQ(u.shape, (std::vector<int64_t>{3, 2, 2}));
  EXPECT_NEAR(u.values[0], (1.0f - 0.485f) / 0.229f, 1e-5);
  EXPECT_NEAR(u.values[4], (1.0f - 0.456f) / 0.224f, 1e-5);
  EXPECT_NEAR(u.values[11], (1.0f - 0.406f) / 0.225f, 1e-5);
}

// Bilinear resize as its definition reads, value by value: half-pixel centres, neighbours
// clamped at the edges, rounded half away from zero.
Image ResizeByDefinition(const Image& in, int width, int height) {
  Image out{width, height, in.channels, {}};
  out.pixels.resize(static_cast<size_t>(width) * height * in.channels);
  double sx = static_cast<double>(in.width) / width;
  double sy = static_cast<double>(in.height) / height;
  auto at = [&](int y, int x, int c) {
    return static_cast<double>(
        in.pixels[(static_cast<size_t>(y) * in.width + x) * in.channels + c]);
  };
  for (int y = 0; y < height; ++y) {
    double fy = std::max(0.0, (y + 0.5) * sy - 0.5);
    int y0 = std::min(static_cast<int>(fy), in.height - 1);
    int y1 = std::min(y0 + 1, in.height - 1);
    double wy = fy - y0;
    for (int x = 0; x < width; ++x) {
      double fx = std::max(0.0, (x + 0.5) * sx - 0.5);
      int x0 = std::min(static_cast<int>(fx), in.width - 1);
      int x1 = std::min(x0 + 1, in.width - 1);
      double wx = fx - x0;
      for (int c = 0; c < in.channels; ++c) {
        double v = (1 - wy) * ((1 - wx) * at(y0, x0, c) + wx * at(y0, x1, c)) +
                   wy * ((1 - wx) * at(y1, x0, c) + wx * at(y1, x1, c));
        out.pixels[(static_cast<size_t>(y) * width + x) * in.channels + c] =
            static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
      }
    }
  }
  return out;
}

TEST(ImageTest, ResizeBilinearIsItsDefinitionByteForByte) {
  // Down and up, odd ratios, one row or column, 1 and 3 channels, noise (every rounding case).
  std::mt19937 random(7);
  for (int channels : {1, 3}) {
    for (auto [w, h, nw, nh] : std::vector<std::array<int, 4>>{{640, 480, 341, 256},
                                                               {37, 23, 256, 159},
                                                               {300, 200, 299, 201},
                                                               {1, 9, 4, 5},
                                                               {9, 1, 3, 2},
                                                               {5, 5, 1, 1}}) {
      Image image{w, h, channels, std::vector<uint8_t>(static_cast<size_t>(w) * h * channels)};
      for (auto& v : image.pixels) v = static_cast<uint8_t>(random());
      auto got = ResizeBilinear(image, nw, nh);
      auto want = ResizeByDefinition(image, nw, nh);
      ASSERT_EQ(got.width, nw);
      ASSERT_EQ(got.height, nh);
      ASSERT_EQ(got.channels, channels);
      ASSERT_EQ(got.pixels, want.pixels) << w << "x" << h << " -> " << nw << "x" << nh;
    }
  }
}

TEST(ImageTest, CenterCropPicksAndPadsEachPixelLikeTheDefinition) {
  // Crops smaller, equal and larger than the image (odd and even margins: top/left =
  // round((size - crop) / 2), negative when padding), 1 and 3 channels, against the definition
  // computed value by value: value(c, y, x) = normalise(pixel(y + top, x + left, c)), 0 outside.
  for (int channels : {1, 3}) {
    for (auto [w, h, crop] : std::vector<std::array<int, 3>>{
             {6, 5, 3}, {5, 5, 5}, {3, 4, 6}, {2, 7, 5}, {7, 2, 4}, {1, 1, 3}}) {
      Image image{w, h, channels, GradientPixels(w, h, channels)};
      ImagePreprocess p;
      p.resize = 0;
      p.crop = crop;
      p.channels = channels;
      p.mean = {0.485f, 0.456f, 0.406f};
      p.std = {0.229f, 0.224f, 0.225f};
      auto t = PreprocessImage(image, p);
      ASSERT_EQ(t.shape, (std::vector<int64_t>{channels, crop, crop}));
      int top = static_cast<int>(std::lround((h - crop) / 2.0));
      int left = static_cast<int>(std::lround((w - crop) / 2.0));
      for (int c = 0; c < channels; ++c) {
        for (int y = 0; y < crop; ++y) {
          for (int x = 0; x < crop; ++x) {
            int sy = y + top, sx = x + left;
            int v = sy >= 0 && sy < h && sx >= 0 && sx < w
                        ? image.pixels[(static_cast<size_t>(sy) * w + sx) * channels + c]
                        : 0;
            float want = (static_cast<float>(v) / 255.0f - p.mean[c]) * (1.0f / p.std[c]);
            ASSERT_EQ(t.values[(static_cast<size_t>(c) * crop + y) * crop + x], want)
                << w << "x" << h << " crop " << crop << " c" << c << " y" << y << " x" << x;
          }
        }
      }
    }
  }
}

TEST(ImageTest, PreprocessedStraightIntoAnEncodedSampleIsTheEncodedSample) {
  // The front writes the values into the encoded sample it sends (no copy): byte for byte what
  // encoding the preprocessed tensor gives, resize included.
  Image image{9, 6, 3, GradientPixels(9, 6, 3)};
  ImagePreprocess p;
  p.resize = 5;
  p.crop = 4;
  std::string body = "stale bytes are replaced";
  PreprocessImage(image, p, [&body](const std::vector<int64_t>& shape) {
    return StartEncodedSample(shape, &body);
  });
  EXPECT_EQ(body, EncodeSample(PreprocessImage(image, p)));
  SampleView view;
  std::string error;
  ASSERT_TRUE(DecodeSampleView(body, &view, &error)) << error;
  EXPECT_EQ(view.shape, (std::vector<int64_t>{3, 4, 4}));
}

ModelConfig Classifier() {
  ModelConfig m;
  m.name = "fashion";
  m.topk = 3;
  return m;
}

TEST(HandlerTest, ClassifierTopKOrderedWithLabels) {
  Labels labels;
  std::string error;
  ASSERT_TRUE(ParseLabels(R"({"0": "cat", "1": ["n123", "dog"], "2": "bird"})", &labels, &error));
  auto reply = PostprocessOutput(Classifier(), labels, {{4}, {1.0f, 3.0f, 2.0f, 0.0f}});
  EXPECT_EQ(reply.status, 200);
  // Ordered by probability, not by key; index 3 has no label and is left out by top-3.
  EXPECT_EQ(reply.body.substr(0, 16), "{\"dog\":0.6439142");
  auto json = nlohmann::json::parse(reply.body);
  EXPECT_EQ(json.size(), 3u);
  EXPECT_NEAR(json["dog"].get<double>() + json["bird"].get<double>() + json["cat"].get<double>(),
              1.0 - 0.0320586, 1e-5);
  EXPECT_LT(reply.body.find("dog"), reply.body.find("bird"));
  EXPECT_LT(reply.body.find("bird"), reply.body.find("cat"));
  EXPECT_FALSE(ParseLabels("[1]", &labels, &error));
  EXPECT_FALSE(ParseLabels(R"({"x": "a"})", &labels, &error));
}

TEST(HandlerTest, ScorerAndTensor) {
  ModelConfig scorer;
  scorer.handler = HandlerKind::kImageScorer;
  EXPECT_EQ(PostprocessOutput(scorer, {}, {{1}, {0.25f}}).body, R"({"score":0.25})");
  EXPECT_EQ(PostprocessOutput(scorer, {}, {{2}, {0.25f, 1}}).status, 500);

  ModelConfig tensor;
  tensor.name = "t";
  tensor.handler = HandlerKind::kTensor;
  tensor.input_shape = {2, 2};
  SampleTensor in;
  std::string error;
  ASSERT_TRUE(PreprocessRequest(tensor, R"({"data": [[1, 2], [3, 4]]})", &in, &error)) << error;
  EXPECT_EQ(in.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(in.values, (std::vector<float>{1, 2, 3, 4}));
  ASSERT_TRUE(PreprocessRequest(tensor, R"({"data": [1, 2, 3, 4], "shape": [2, 2]})", &in, &error));
  EXPECT_FALSE(PreprocessRequest(tensor, R"({"data": [1, 2, 3], "shape": [3]})", &in, &error));
  EXPECT_EQ(error, "wrong tensor shape [3]: model \"t\" takes [2, 2]");
  EXPECT_FALSE(PreprocessRequest(tensor, R"({"data": [1, 2, 3], "shape": [2, 2]})", &in, &error));
  EXPECT_EQ(error, "\"shape\" [2, 2] needs 4 values, \"data\" has 3");
  EXPECT_FALSE(PreprocessRequest(tensor, R"({"data": [[1, 2], [3]]})", &in, &error));
  EXPECT_FALSE(PreprocessRequest(tensor, R"({"data": ["a"]})", &in, &error));
  EXPECT_FALSE(
      PreprocessRequest(tensor, R"({"data": [1, 2, 3, 4], "dtype": "INT64"})", &in, &error));
  EXPECT_EQ(error, "unsupported dtype \"INT64\": only FP32");
  EXPECT_FALSE(PreprocessRequest(tensor, "{not json", &in, &error));
  EXPECT_EQ(PostprocessOutput(tensor, {}, {{2}, {0.5f, -1}}).body,
            R"({"data":[0.5,-1.0],"shape":[2]})");
}

TEST(MultipartTest, ExtractsDataFieldOrRawBody) {
  std::string_view input;
  std::string error;
  ASSERT_TRUE(ExtractPredictionInput("image/png", "RAW", &input, &error));
  EXPECT_EQ(input, "RAW");
  std::string body =
      "--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nnope\r\n"
      "--XyZ\r\nContent-Disposition: form-data; name=\"data\"; filename=\"a.png\"\r\n"
      "Content-Type: image/png\r\n\r\nPNG\r\nBYTES\r\n--XyZ--\r\n";
  ASSERT_TRUE(ExtractPredictionInput("multipart/form-data; boundary=XyZ", body, &input, &error))
      << error;
  EXPECT_EQ(input, "PNG\r\nBYTES");
  EXPECT_FALSE(ExtractPredictionInput("multipart/form-data; boundary=XyZ",
                                      "--XyZ\r\nContent-Disposition: form-data; "
                                      "name=\"x\"\r\n\r\n1\r\n--XyZ--\r\n",
                                      &input, &error));
  EXPECT_EQ(error, "multipart/form-data body has no field named \"data\"");
  EXPECT_FALSE(ExtractPredictionInput("multipart/form-data", body, &input, &error));
}

TEST(ProtocolTest, RoundTripsAndRejectsTruncation) {
  Message m;
  m.type = MessageType::kResults;
  m.items = {{7, 200, "{\"a\":1}"}, {9, 400, std::string("\0x", 2)}};
  auto wire = EncodeMessage(m);
  Message back;
  std::string error;
  ASSERT_TRUE(DecodeMessage(wire, &back, &error)) << error;
  ASSERT_EQ(back.items.size(), 2u);
  EXPECT_EQ(back.items[1].id, 9u);
  EXPECT_EQ(back.items[1].status, 400);
  EXPECT_EQ(back.items[1].body, std::string("\0x", 2));
  EXPECT_FALSE(DecodeMessage(wire.substr(0, wire.size() - 1), &back, &error));
  EXPECT_FALSE(DecodeMessage("", &back, &error));
}

TEST(ProtocolTest, ResultsCarryTheWorkersStageTimes) {
  Message m;
  m.type = MessageType::kResults;
  m.items = {{3, 200, "{}"}};
  m.timings = {540, 9710, (uint64_t{1} << 40) + 20};
  auto wire = EncodeMessage(m);
  Message back;
  std::string error;
  ASSERT_TRUE(DecodeMessage(wire, &back, &error)) << error;
  EXPECT_EQ(back.timings.preprocess_us, 540u);
  EXPECT_EQ(back.timings.forward_us, 9710u);
  EXPECT_EQ(back.timings.postprocess_us, (uint64_t{1} << 40) + 20);
  ASSERT_EQ(back.items.size(), 1u);
  EXPECT_EQ(back.items[0].body, "{}");
  // The trailer is fixed: 24 bytes, none missing, none extra.
  EXPECT_FALSE(DecodeMessage(wire.substr(0, wire.size() - 8), &back, &error));
  EXPECT_EQ(error, "truncated message");
  EXPECT_FALSE(DecodeMessage(wire + "x", &back, &error));
  EXPECT_EQ(error, "trailing bytes in message");
  // A batch has no trailer.
  Message batch;
  batch.type = MessageType::kBatch;
  batch.items = {{3, 0, "png"}};
  ASSERT_TRUE(DecodeMessage(EncodeMessage(batch), &back, &error)) << error;
  EXPECT_EQ(back.timings.forward_us, 0u);
}

TEST(ProtocolTest, EncodeBatchIsEncodeMessageWithoutTheCopies) {
  std::string big(70000, 'x');
  Message m;
  m.type = MessageType::kBatch;
  m.items = {{1, 0, "png"}, {2, 2, big}, {(uint64_t{1} << 40) + 3, 1, ""}};
  std::vector<BatchItemView> views;
  for (const auto& item : m.items) views.push_back({item.id, item.status, item.body});
  EXPECT_EQ(EncodeBatch(views), EncodeMessage(m));
}

TEST(ProtocolTest, SharedRefsRoundTripAndAreExactly16Bytes) {
  uint64_t offset = 0, size = 0;
  auto ref = EncodeSharedRef((uint64_t{1} << 33) + 5, 602137);
  ASSERT_TRUE(DecodeSharedRef(ref, &offset, &size));
  EXPECT_EQ(offset, (uint64_t{1} << 33) + 5);
  EXPECT_EQ(size, 602137u);
  EXPECT_FALSE(DecodeSharedRef(ref.substr(1), &offset, &size));
  EXPECT_FALSE(DecodeSharedRef(ref + "x", &offset, &size));
}

TEST(ProtocolTest, PreprocessedSamplesRoundTripExactlyAndBadOnesAreRefused) {
  SampleTensor sample;
  sample.shape = {3, 2, 2};
  sample.values = {0.f, -1.5f, 1e-30f, 3.25f, -0.f, 7.f, 1e30f, 2.f, 0.1f, 0.2f, 0.3f, -8.f};
  auto body = EncodeSample(sample);
  EXPECT_EQ(body.size(), 1 + 3 * 8 + 12 * 4u);
  EXPECT_EQ(EncodedSampleBytes(3, 12), body.size());
  SampleView back;
  std::string error;
  ASSERT_TRUE(DecodeSampleView(body, &back, &error)) << error;
  EXPECT_EQ(back.shape, sample.shape);
  ASSERT_EQ(back.count, sample.values.size());
  // A view into the body, past the rank and the dims.
  EXPECT_EQ(reinterpret_cast<const char*>(back.data), body.data() + 1 + 3 * 8);
  EXPECT_EQ(std::memcmp(back.data, sample.values.data(), 12 * sizeof(float)), 0);
  EXPECT_FALSE(DecodeSampleView(body.substr(0, body.size() - 1), &back, &error));
  EXPECT_NE(error.find("bytes of values for 12 floats"), std::string::npos) << error;
  EXPECT_FALSE(DecodeSampleView(body + "1234", &back, &error));
  EXPECT_FALSE(DecodeSampleView("", &back, &error));
  EXPECT_FALSE(DecodeSampleView(std::string(1, '\0'), &back, &error));  // rank 0
  std::string zero_dim = body;
  zero_dim[1] = 0;  // the first dim's low byte: 3 -> 0
  EXPECT_FALSE(DecodeSampleView(zero_dim, &back, &error));
  EXPECT_EQ(error, "preprocessed sample: bad shape");
}

TEST(ServerTimingTest, MillisecondsWithMicrosecondResolution) {
  using std::chrono::microseconds;
  RequestTimings t;
  t.queue = microseconds(12);
  t.total = microseconds(10410);
  EXPECT_EQ(FormatServerTiming(t), "queue;dur=0.012, total;dur=10.410");
  t.has_worker = true;
  t.preprocess = microseconds(540);
  t.forward = microseconds(9710);
  t.postprocess = microseconds(20);
  EXPECT_EQ(FormatServerTiming(t),
            "queue;dur=0.012, preprocess;dur=0.540, forward;dur=9.710, postprocess;dur=0.020, "
            "total;dur=10.410");
}

ServeConfig Parse(const std::string& text) {
  return ParseConfig<ServeConfig>(text, "configs/serve.json", ParseServeConfig);
}

TEST(ServeConfigTest, ParsesModelsAndResolvesPaths) {
  auto c = Parse(R"({"inference_address": "0.0.0.0:9080", "cpu": {"workers": 2, "pinning": "off"},
    "models": {"fashion": {"path": "m.pt", "labels": "l.json", "batch_size": 4,
      "max_batch_delay_ms": 10, "response_timeout": 2,
      "preprocess": {"resize": 28, "crop": 28, "channels": 1, "mean": [0.286], "std": [0.353]}}}})");
  EXPECT_EQ(c.inference_address, "0.0.0.0:9080");
  EXPECT_EQ(c.cpu.workers, 2);
  EXPECT_FALSE(c.cpu.pinning);
  ASSERT_EQ(c.models.size(), 1u);
  const auto& m = c.models[0];
  EXPECT_EQ(m.name, "fashion");
  EXPECT_EQ(m.path, "configs/m.pt");
  EXPECT_EQ(m.labels_path, "configs/l.json");
  EXPECT_EQ(m.batch_size, 4);
  EXPECT_EQ(m.max_batch_delay.count(), 10);
  EXPECT_EQ(m.response_timeout.count(), 2000);
  EXPECT_EQ(m.preprocess.channels, 1);
  EXPECT_FLOAT_EQ(m.preprocess.mean[0], 0.286f);
  auto back = ModelConfigFromJson(ModelConfigToJson(m));
  EXPECT_EQ(back.path, m.path);
  EXPECT_EQ(back.response_timeout, m.response_timeout);
  EXPECT_EQ(back.preprocess.std, m.preprocess.std);
  EXPECT_EQ(back.batch_size, 4);
}

TEST(ServeConfigTest, FrontCpusAndDispatchAheadDefaults) {
  auto c = Parse(R"({"cpu": {"front_cpus": 2}, "models": {
    "img": {"path": "a.pt"}, "vec": {"path": "b.pt", "handler": "tensor"},
    "img_off": {"path": "c.pt", "dispatch_ahead": false},
    "vec_on": {"path": "d.pt", "handler": "tensor", "dispatch_ahead": true}}})");
  EXPECT_EQ(c.cpu.front_cpus, 2);
  std::map<std::string, bool> ahead;
  for (const auto& m : c.models) ahead[m.name] = m.dispatch_ahead;
  EXPECT_EQ(ahead, (std::map<std::string, bool>{
                       {"img", true}, {"img_off", false}, {"vec", false}, {"vec_on", true}}));
  // The worker gets the resolved value.
  for (const auto& m : c.models) {
    EXPECT_EQ(ModelConfigFromJson(ModelConfigToJson(m)).dispatch_ahead, m.dispatch_ahead);
  }
  EXPECT_EQ(Parse(R"({"models": {"m": {"path": "a.pt"}}})").cpu.front_cpus, 0);
  try {
    Parse(R"({"cpu": {"front_cpus": -1}, "models": {"m": {"path": "a.pt", "dispatch_ahead": 1}}})");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    std::string text = e.what();
    EXPECT_NE(text.find("$.cpu.front_cpus"), std::string::npos) << text;
    EXPECT_NE(text.find("$.models.m.dispatch_ahead"), std::string::npos) << text;
  }
}

TEST(ServeConfigTest, EveryProblemHasFileAndPath) {
  try {
    Parse(R"({"models": {"m": {"path": "a.pt", "handler": "nope", "batchsize": 2,
      "preprocess": {"channels": 1, "mean": [0.1, 0.2]}}}, "metrics_address": "x"})");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("configs/serve.json: $.models.m.handler: must be image_classifier"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("$.models.m.batchsize"), std::string::npos) << what;
    EXPECT_NE(what.find("$.models.m.preprocess.mean: needs 1 values"), std::string::npos) << what;
    EXPECT_NE(what.find("$.metrics_address: must be host:port"), std::string::npos) << what;
  }
  EXPECT_THROW(Parse(R"({"models": {}})"), ConfigError);
}

}  // namespace
}  // namespace sg::serve
