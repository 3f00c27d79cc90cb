#include "model_server/resample.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "model_server/image.h"

namespace sg::serve {
namespace {

// Fixed-point weights: 32 bits less 8 for the pixel and 2 for the filters' overshoot.
constexpr int kPrecisionBits = 32 - 8 - 2;

// The filters exactly as Pillow writes them (the same double operations in the same order, so
// the same weights to the last bit; this file is compiled without FMA contraction).
double BilinearFilter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

double BicubicFilter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// For each output position along one axis: the first input position it reads, how many, and
// their weights (ksize per output, the unused ones zero), as Pillow's precompute_coeffs and
// normalize_coeffs_8bpc compute them. Only outputs [from, to) are computed.
struct Coefficients {
  int ksize = 0;
  std::vector<int> first;
  std::vector<int> count;
  std::vector<int32_t> weights;
};

Coefficients Precompute(int in_size, int out_size, ResampleFilter filter, int from, int to) {
  double (*kernel)(double) = filter == ResampleFilter::kBicubic ? BicubicFilter : BilinearFilter;
  const double filter_support = filter == ResampleFilter::kBicubic ? 2.0 : 1.0;
  // Pillow's box is (0, 0, width, height) in float: in1 - in0 is the size, exactly.
  const double scale = static_cast<double>(static_cast<float>(in_size)) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = filter_support * filterscale;
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  const int n = to - from;
  c.first.resize(n);
  c.count.resize(n);
  c.weights.assign(static_cast<size_t>(n) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = from; xx < to; ++xx) {
    const double center = 0.0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    double ww = 0.0;
    int xmin = static_cast<int>(center - support + 0.5);  // truncation, as Pillow's cast
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    for (int x = 0; x < xmax; ++x) {
      const double w = kernel((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    int32_t* out = &c.weights[static_cast<size_t>(xx - from) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? k[x] / ww : k[x];
      out[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                     : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    c.first[xx - from] = xmin;
    c.count[xx - from] = xmax;
  }
  return c;
}

inline uint8_t Clip8(int32_t v) {
  v >>= kPrecisionBits;  // arithmetic shift: floor
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);

// Rows of 8-bit interleaved pixels: row r starts at data + r * stride.
struct Rows {
  const uint8_t* data;
  size_t stride;
  const uint8_t* row(int r) const { return data + static_cast<size_t>(r) * stride; }
};

// The same sums with every output reading exactly ksize inputs, so that the horizontal pass
// runs loops of one fixed length: a window that would run past the end starts earlier, with
// zero weights in front (0 * pixel adds nothing). REQUIRES: in_size >= c->ksize.
void FixTaps(Coefficients* c, int in_size) {
  for (size_t x = 0; x < c->first.size(); ++x) {
    int32_t* k = &c->weights[x * c->ksize];
    const int shift = c->first[x] + c->ksize - in_size;  // <= ksize - count
    if (shift > 0) {
      for (int j = c->count[x] - 1; j >= 0; --j) k[j + shift] = k[j];
      for (int j = 0; j < shift; ++j) k[j] = 0;
      c->first[x] -= shift;
    }
    c->count[x] = c->ksize;
  }
}

// Horizontal pass: rows [0, rows) of `src` into `dst` (c.first.size() pixels per row).
// kTaps: every output reads that many inputs (FixTaps), or 0: c.count[x].
template <int kChannels, int kTaps>
void Horizontal(const Rows& src, int rows, const Coefficients& c, uint8_t* dst) {
  const int width = static_cast<int>(c.first.size());
  for (int y = 0; y < rows; ++y) {
    const uint8_t* row = src.row(y);
    for (int x = 0; x < width; ++x) {
      const uint8_t* p = row + static_cast<size_t>(c.first[x]) * kChannels;
      const int32_t* k = &c.weights[static_cast<size_t>(x) * c.ksize];
      int32_t s[kChannels];
      for (int ch = 0; ch < kChannels; ++ch) s[ch] = kHalf;
      const int n = kTaps > 0 ? kTaps : c.count[x];
      for (int t = 0; t < n; ++t, p += kChannels) {
        for (int ch = 0; ch < kChannels; ++ch) s[ch] += p[ch] * k[t];
      }
      for (int ch = 0; ch < kChannels; ++ch) *dst++ = Clip8(s[ch]);
    }
  }
}

// The horizontal pass with the loop length known at compile time for the usual filter sizes
// (bilinear: 3 when enlarging, 5, 7, 9 when shrinking up to 2x, 3x, 4x; bicubic: 5 to 13).
template <int kChannels>
void HorizontalPass(const Rows& src, int rows, int in_width, Coefficients* c, uint8_t* dst) {
  if (in_width < c->ksize) return Horizontal<kChannels, 0>(src, rows, *c, dst);
  FixTaps(c, in_width);
  switch (c->ksize) {
    case 3:
      return Horizontal<kChannels, 3>(src, rows, *c, dst);
    case 5:
      return Horizontal<kChannels, 5>(src, rows, *c, dst);
    case 7:
      return Horizontal<kChannels, 7>(src, rows, *c, dst);
    case 9:
      return Horizontal<kChannels, 9>(src, rows, *c, dst);
    case 11:
      return Horizontal<kChannels, 11>(src, rows, *c, dst);
    case 13:
      return Horizontal<kChannels, 13>(src, rows, *c, dst);
    default:
      return Horizontal<kChannels, 0>(src, rows, *c, dst);
  }
}

// Vertical pass: each output row from c.count[y] rows of `src` starting at c.first[y] - shift,
// `values` bytes each (columns are independent, so whole rows at once).
void Vertical(const Rows& src, int shift, size_t values, const Coefficients& c, uint8_t* dst) {
  std::vector<int32_t> acc(values);
  const int height = static_cast<int>(c.first.size());
  for (int y = 0; y < height; ++y) {
    const int32_t* k = &c.weights[static_cast<size_t>(y) * c.ksize];
    std::fill(acc.begin(), acc.end(), kHalf);
    for (int t = 0, n = c.count[y]; t < n; ++t) {
      const uint8_t* row = src.row(c.first[y] - shift + t);
      const int32_t w = k[t];
      for (size_t i = 0; i < values; ++i) acc[i] += row[i] * w;
    }
    for (size_t i = 0; i < values; ++i) *dst++ = Clip8(acc[i]);
  }
}

}  // namespace

Image Resample(const Image& in, int out_width, int out_height, ResampleFilter filter) {
  return Resample(in, out_width, out_height, filter, {0, 0, out_width, out_height});
}

Image Resample(const Image& in, int out_width, int out_height, ResampleFilter filter,
               const ResampleWindow& window) {
  const int channels = in.channels;
  Image out{window.width, window.height, channels, {}};
  out.pixels.resize(static_cast<size_t>(window.width) * window.height * channels);
  const size_t in_stride = static_cast<size_t>(in.width) * channels;
  const bool horizontal = out_width != in.width;
  const bool vertical = out_height != in.height;
  // The input rows the window's output rows read (all of them when the height stays).
  Coefficients rows;
  int first_row = window.top, last_row = window.top + window.height;
  if (vertical) {
    rows = Precompute(in.height, out_height, filter, window.top, window.top + window.height);
    first_row = rows.first.front();
    last_row = rows.first.back() + rows.count.back();
  }
  // Pass 1: the window's columns of those rows, resampled (or as they are).
  std::vector<uint8_t> temp;
  Rows mid{in.pixels.data() + static_cast<size_t>(first_row) * in_stride +
               static_cast<size_t>(window.left) * channels,
           in_stride};
  const size_t out_stride = static_cast<size_t>(window.width) * channels;
  if (horizontal) {
    Coefficients cols =
        Precompute(in.width, out_width, filter, window.left, window.left + window.width);
    Rows src{in.pixels.data() + static_cast<size_t>(first_row) * in_stride, in_stride};
    uint8_t* dst = vertical ? nullptr : out.pixels.data();
    if (vertical) {
      temp.resize(static_cast<size_t>(last_row - first_row) * out_stride);
      dst = temp.data();
    }
    if (channels == 3) {
      HorizontalPass<3>(src, last_row - first_row, in.width, &cols, dst);
    } else {
      HorizontalPass<1>(src, last_row - first_row, in.width, &cols, dst);
    }
    mid = {temp.data(), out_stride};
  }
  // Pass 2: the rows.
  if (vertical) {
    Vertical(mid, first_row, out_stride, rows, out.pixels.data());
  } else if (!horizontal) {
    for (int y = 0; y < window.height; ++y) {
      const uint8_t* row = mid.row(y);
      std::copy(row, row + out_stride, out.pixels.data() + static_cast<size_t>(y) * out_stride);
    }
  }
  return out;
}

}  // namespace sg::serve
