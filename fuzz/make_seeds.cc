// Writes the seeds made by the project's own encoders into fuzz/corpus/ (run by hand when the
// formats change: build-fuzz/fuzz/sg-fuzz-seeds fuzz/corpus):
//   pair_log/  lines written by EncodePairLogLine (pair and counters records);
//   image/     small PNGs (gray, RGB, palette, 16-bit, alpha, interlaced) through libpng and
//              JPEGs (gray, RGB, 4:2:0, progressive, restart markers) through libjpeg.
// The text seeds (requests, chunked bodies, multipart bodies, configs) are plain files there.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <png.h>

#include "common/pair_record.h"
#include "tests/unit/common/sample_pair.h"

namespace {

namespace fs = std::filesystem;

void Write(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

std::vector<uint8_t> Gradient(int width, int height, int channels, int bytes_per_sample = 1) {
  std::vector<uint8_t> out(static_cast<size_t>(width) * height * channels * bytes_per_sample);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i * 37 + i / 7);
  return out;
}

void PngWrite(png_structp png, png_bytep data, png_size_t length) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<char*>(data), length);
}
void PngFlush(png_structp) {}

// A PNG through libpng's full API, so that every colour type, depth and interlacing is there.
std::string Png(int width, int height, int color_type, int depth, bool interlaced) {
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return "";
  }
  png_set_write_fn(png, &out, PngWrite, PngFlush);
  png_set_IHDR(png, info, width, height, depth, color_type,
               interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  int channels = 1;
  if (color_type == PNG_COLOR_TYPE_PALETTE) {
    png_color palette[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    png_set_PLTE(png, info, palette, 4);
    png_byte alpha[2] = {0, 128};
    png_set_tRNS(png, info, alpha, 2, nullptr);
  } else if (color_type == PNG_COLOR_TYPE_RGB) {
    channels = 3;
  } else if (color_type == PNG_COLOR_TYPE_RGB_ALPHA) {
    channels = 4;
  } else if (color_type == PNG_COLOR_TYPE_GRAY_ALPHA) {
    channels = 2;
  }
  png_set_gAMA(png, info, 0.45455);
  png_write_info(png, info);
  const size_t row_bytes = (static_cast<size_t>(width) * channels * depth + 7) / 8;
  std::vector<uint8_t> pixels = Gradient(static_cast<int>(row_bytes), height, 1);
  if (color_type == PNG_COLOR_TYPE_PALETTE) {
    for (auto& p : pixels) p &= depth == 8 ? 3 : 0x55;  // indices inside the palette
  }
  std::vector<png_bytep> rows(height);
  for (int y = 0; y < height; ++y) rows[y] = pixels.data() + y * row_bytes;
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

std::string Jpeg(int width, int height, int channels, bool progressive, bool subsample,
                 int restart_rows) {
  jpeg_compress_struct info;
  jpeg_error_mgr err;
  info.err = jpeg_std_error(&err);
  jpeg_create_compress(&info);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&info, &buffer, &size);
  info.image_width = width;
  info.image_height = height;
  info.input_components = channels;
  info.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&info);
  jpeg_set_quality(&info, 75, TRUE);
  if (progressive) jpeg_simple_progression(&info);
  if (channels == 3 && !subsample) {
    for (int c = 0; c < 3; ++c)
      info.comp_info[c].h_samp_factor = info.comp_info[c].v_samp_factor = 1;
  }
  info.restart_in_rows = restart_rows;
  jpeg_start_compress(&info, TRUE);
  std::vector<uint8_t> pixels = Gradient(width, height, channels);
  while (info.next_scanline < info.image_height) {
    JSAMPROW row = pixels.data() + static_cast<size_t>(info.next_scanline) * width * channels;
    jpeg_write_scanlines(&info, &row, 1);
  }
  jpeg_finish_compress(&info);
  std::string out(reinterpret_cast<char*>(buffer), size);
  jpeg_destroy_compress(&info);
  free(buffer);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s fuzz/corpus\n", argv[0]);
    return 2;
  }
  const fs::path corpus = argv[1];

  // Pair-log lines: the sample pair, variations of it, and a counters line.
  sg::PairRecord pair = sg::testing::SamplePair();
  Write(corpus / "pair_log/sample_pair.jsonl", sg::EncodePairLogLine(pair));
  sg::PairRecord ok = pair;
  ok.shadow = ok.primary;
  ok.shadow.send_offset_us = 12;
  ok.request.body.reset();
  ok.request.headers.clear();
  Write(corpus / "pair_log/both_ok.jsonl", sg::EncodePairLogLine(ok));
  sg::PairRecord scores = ok;
  scores.primary.body = R"({"score": 0.25})";
  scores.shadow.body = R"({"score": 0.2501})";
  scores.route = "score";
  Write(corpus / "pair_log/scores.jsonl", sg::EncodePairLogLine(scores));
  sg::PairRecord tensor = ok;
  tensor.primary.body = R"({"data": [0.5, -1, 2e-3], "shape": [3]})";
  tensor.shadow.body = R"({"data": [0.5, -1, 2.1e-3], "shape": [3]})";
  tensor.shadow.status = 503;
  tensor.shadow.outcome = "shadow_error";
  tensor.shadow.error = "upstream said 503";
  Write(corpus / "pair_log/tensor_error.jsonl", sg::EncodePairLogLine(tensor));
  sg::MirrorCounters counters;
  counters.ts_us = 1795000000123456;
  counters.instance = "gw-1";
  counters.route = "classify";
  counters.mirror = "student";
  counters.requests = 1000;
  counters.not_mirrored = {{"sampled_out", 900}, {"body_too_large", 1}, {"overload", 2}};
  counters.mirrored = {{"ok", 95}, {"shadow_error", 1}, {"shadow_timeout", 1}};
  counters.sink_dropped = 3;
  Write(corpus / "pair_log/counters.jsonl", sg::EncodePairLogLine(counters));

  // Images.
  Write(corpus / "image/gray8.png", Png(5, 4, PNG_COLOR_TYPE_GRAY, 8, false));
  Write(corpus / "image/gray1.png", Png(9, 3, PNG_COLOR_TYPE_GRAY, 1, false));
  Write(corpus / "image/rgb8.png", Png(4, 3, PNG_COLOR_TYPE_RGB, 8, false));
  Write(corpus / "image/rgb16.png", Png(3, 2, PNG_COLOR_TYPE_RGB, 16, false));
  Write(corpus / "image/rgba8_interlaced.png", Png(9, 9, PNG_COLOR_TYPE_RGB_ALPHA, 8, true));
  Write(corpus / "image/gray_alpha8.png", Png(3, 5, PNG_COLOR_TYPE_GRAY_ALPHA, 8, false));
  Write(corpus / "image/palette2.png", Png(6, 2, PNG_COLOR_TYPE_PALETTE, 2, false));
  Write(corpus / "image/palette8_interlaced.png", Png(10, 3, PNG_COLOR_TYPE_PALETTE, 8, true));
  Write(corpus / "image/wide.png", Png(64, 1, PNG_COLOR_TYPE_GRAY, 8, false));
  Write(corpus / "image/gray.jpg", Jpeg(8, 8, 1, false, false, 0));
  Write(corpus / "image/rgb444.jpg", Jpeg(9, 7, 3, false, false, 0));
  Write(corpus / "image/rgb420.jpg", Jpeg(17, 16, 3, false, true, 0));
  Write(corpus / "image/progressive.jpg", Jpeg(16, 9, 3, true, true, 0));
  Write(corpus / "image/restart.jpg", Jpeg(16, 32, 3, false, true, 1));
  Write(corpus / "image/tall.jpg", Jpeg(1, 48, 1, false, false, 0));
  return 0;
}
