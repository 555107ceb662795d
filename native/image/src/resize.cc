// Port of src/datasets/xray/resize.ts, whose comments explain the steps.
#include "resize.h"

#include <algorithm>
#include <cmath>

namespace more_image {
namespace {

// Fraction bits of Pillow's fixed-point filter weights for 8-bit images (32 - 8 - 2).
constexpr int kPrecisionBits = 22;

struct FilterCoefficients {
  int kernel_size;
  // For output sample i: first source index at bounds[2i], tap count at bounds[2i + 1].
  std::vector<int32_t> bounds;
  std::vector<double> weights;
};

double Triangle(double x) {
  const double distance = std::fabs(x);
  return distance < 1 ? 1 - distance : 0;
}

FilterCoefficients ComputeCoefficients(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = 1 * filter_scale;
  FilterCoefficients result;
  result.kernel_size = static_cast<int>(std::ceil(support)) * 2 + 1;
  result.bounds.assign(static_cast<size_t>(out_size) * 2, 0);
  result.weights.assign(static_cast<size_t>(out_size) * result.kernel_size, 0.0);
  const double inverse_filter_scale = 1 / filter_scale;
  for (int out = 0; out < out_size; out++) {
    const double center = (out + 0.5) * scale;
    const int first = std::max(static_cast<int>(std::trunc(center - support + 0.5)), 0);
    const int last = std::min(static_cast<int>(std::trunc(center + support + 0.5)), in_size);
    const int taps = last - first;
    double total = 0;
    double* weights = result.weights.data() + static_cast<size_t>(out) * result.kernel_size;
    for (int k = 0; k < taps; k++) {
      const double w = Triangle((k + first - center + 0.5) * inverse_filter_scale);
      weights[k] = w;
      total += w;
    }
    if (total != 0) {
      for (int k = 0; k < taps; k++) weights[k] /= total;
    }
    result.bounds[out * 2] = first;
    result.bounds[out * 2 + 1] = taps;
  }
  return result;
}

std::vector<int32_t> ToFixedPoint(const std::vector<double>& weights) {
  std::vector<int32_t> fixed(weights.size());
  const double one = static_cast<double>(1 << kPrecisionBits);
  for (size_t i = 0; i < weights.size(); i++) {
    const double w = weights[i];
    fixed[i] = static_cast<int32_t>(w < 0 ? std::trunc(-0.5 + w * one) : std::trunc(0.5 + w * one));
  }
  return fixed;
}

inline uint8_t Clip8(int32_t sum) {
  if (sum >= (1 << (kPrecisionBits + 8))) return 255;
  if (sum <= 0) return 0;
  return static_cast<uint8_t>(sum >> kPrecisionBits);
}

// Filters rows [first_row, first_row + row_count) of `src` along x. The weights
// are non-negative and sum to about 2^22, so the int32 sums stay below 2^31.
std::vector<uint8_t> FilterRows8(const uint8_t* src, int width, int first_row, int row_count, int out_width,
                                 const FilterCoefficients& coefficients) {
  const std::vector<int32_t> fixed = ToFixedPoint(coefficients.weights);
  std::vector<uint8_t> out(static_cast<size_t>(out_width) * row_count);
  const int32_t half = 1 << (kPrecisionBits - 1);
  int y = 0;
  // Four rows at a time, so each weight is loaded once per four products.
  for (; y + 4 <= row_count; y += 4) {
    const uint8_t* r0 = src + static_cast<size_t>(y + first_row) * width;
    const uint8_t* r1 = r0 + width;
    const uint8_t* r2 = r1 + width;
    const uint8_t* r3 = r2 + width;
    uint8_t* o0 = out.data() + static_cast<size_t>(y) * out_width;
    for (int x = 0; x < out_width; x++) {
      const int start = coefficients.bounds[x * 2];
      const int taps = coefficients.bounds[x * 2 + 1];
      const int32_t* weights = fixed.data() + static_cast<size_t>(x) * coefficients.kernel_size;
      int32_t s0 = half, s1 = half, s2 = half, s3 = half;
      for (int t = 0; t < taps; t++) {
        const int32_t w = weights[t];
        s0 += r0[start + t] * w;
        s1 += r1[start + t] * w;
        s2 += r2[start + t] * w;
        s3 += r3[start + t] * w;
      }
      o0[x] = Clip8(s0);
      o0[out_width + x] = Clip8(s1);
      o0[2 * out_width + x] = Clip8(s2);
      o0[3 * out_width + x] = Clip8(s3);
    }
  }
  for (; y < row_count; y++) {
    const uint8_t* row = src + static_cast<size_t>(y + first_row) * width;
    uint8_t* out_row = out.data() + static_cast<size_t>(y) * out_width;
    for (int x = 0; x < out_width; x++) {
      const uint8_t* start = row + coefficients.bounds[x * 2];
      const int taps = coefficients.bounds[x * 2 + 1];
      const int32_t* weights = fixed.data() + static_cast<size_t>(x) * coefficients.kernel_size;
      int32_t sum = half;
      for (int t = 0; t < taps; t++) sum += start[t] * weights[t];
      out_row[x] = Clip8(sum);
    }
  }
  return out;
}

// Filters along y: output row y mixes source rows bounds[2y] - first_row onwards.
std::vector<uint8_t> FilterColumns8(const uint8_t* rows, int row_width, int first_row, int out_height,
                                    const FilterCoefficients& coefficients) {
  const std::vector<int32_t> fixed = ToFixedPoint(coefficients.weights);
  std::vector<uint8_t> out(static_cast<size_t>(row_width) * out_height);
  std::vector<int32_t> sums(row_width);
  const int32_t half = 1 << (kPrecisionBits - 1);
  for (int y = 0; y < out_height; y++) {
    const int start = coefficients.bounds[y * 2] - first_row;
    const int taps = coefficients.bounds[y * 2 + 1];
    std::fill(sums.begin(), sums.end(), half);
    for (int t = 0; t < taps; t++) {
      const int32_t weight = fixed[static_cast<size_t>(y) * coefficients.kernel_size + t];
      const uint8_t* row = rows + static_cast<size_t>(start + t) * row_width;
      for (int x = 0; x < row_width; x++) sums[x] += row[x] * weight;
    }
    uint8_t* out_row = out.data() + static_cast<size_t>(y) * row_width;
    for (int x = 0; x < row_width; x++) out_row[x] = Clip8(sums[x]);
  }
  return out;
}

// Pillow 13 runs the vertical pass first when the height shrinks by more than
// twice as many pixels as the width (ImagingResampleInner in Resample.c).
bool VerticalPassFirst(int width, int height, int out_width, int out_height) {
  return height - out_height > 0 && height - out_height > 2 * (width - out_width);
}

// Filters rows [first_row, first_row + row_count) of `src` along x, summing in
// double and storing float32 as Pillow's mode 'F' does.
template <typename Sample>
std::vector<float> FilterRowsFloat(const Sample* src, int width, int first_row, int row_count, int out_width,
                                   const FilterCoefficients& coefficients) {
  const int k = coefficients.kernel_size;
  std::vector<float> out(static_cast<size_t>(out_width) * row_count);
  for (int y = 0; y < row_count; y++) {
    const Sample* row = src + static_cast<size_t>(y + first_row) * width;
    for (int x = 0; x < out_width; x++) {
      const int start = coefficients.bounds[x * 2];
      const int taps = coefficients.bounds[x * 2 + 1];
      double sum = 0;
      for (int t = 0; t < taps; t++) sum += static_cast<double>(row[start + t]) * coefficients.weights[static_cast<size_t>(x) * k + t];
      out[static_cast<size_t>(y) * out_width + x] = static_cast<float>(sum);
    }
  }
  return out;
}

// Filters along y: output row y mixes source rows bounds[2y] - first_row onwards.
template <typename Sample>
std::vector<float> FilterColumnsFloat(const Sample* rows, int row_width, int first_row, int out_height,
                                      const FilterCoefficients& coefficients) {
  const int k = coefficients.kernel_size;
  std::vector<float> out(static_cast<size_t>(row_width) * out_height);
  std::vector<double> sums(row_width);
  for (int y = 0; y < out_height; y++) {
    const int start = coefficients.bounds[y * 2] - first_row;
    const int taps = coefficients.bounds[y * 2 + 1];
    const double* weights = coefficients.weights.data() + static_cast<size_t>(y) * k;
    // Row by row, so memory is read in order. Each sum still adds its taps in the same order.
    std::fill(sums.begin(), sums.end(), 0.0);
    for (int t = 0; t < taps; t++) {
      const Sample* row = rows + static_cast<size_t>(start + t) * row_width;
      for (int x = 0; x < row_width; x++) sums[x] += static_cast<double>(row[x]) * weights[t];
    }
    for (int x = 0; x < row_width; x++) out[static_cast<size_t>(y) * row_width + x] = static_cast<float>(sums[x]);
  }
  return out;
}

}  // namespace

std::vector<uint8_t> ResizeBilinear8(const uint8_t* src, int width, int height, int out_width, int out_height) {
  const FilterCoefficients horizontal = ComputeCoefficients(width, out_width);
  const FilterCoefficients vertical = ComputeCoefficients(height, out_height);
  const bool need_horizontal = out_width != width;
  const bool need_vertical = out_height != height;
  if (!need_horizontal && !need_vertical) return std::vector<uint8_t>(src, src + static_cast<size_t>(width) * height);
  if (!need_horizontal) return FilterColumns8(src, width, 0, out_height, vertical);
  if (VerticalPassFirst(width, height, out_width, out_height)) {
    std::vector<uint8_t> columns = FilterColumns8(src, width, 0, out_height, vertical);
    return FilterRows8(columns.data(), width, 0, out_height, out_width, horizontal);
  }
  // Pillow only filters the source rows that the vertical pass reads.
  const int first_row = vertical.bounds[0];
  const int last_row = vertical.bounds[out_height * 2 - 2] + vertical.bounds[out_height * 2 - 1];
  std::vector<uint8_t> rows = FilterRows8(src, width, first_row, last_row - first_row, out_width, horizontal);
  if (!need_vertical) return rows;
  return FilterColumns8(rows.data(), out_width, first_row, out_height, vertical);
}

template <typename Sample>
std::vector<float> ResizeBilinearFloat(const Sample* src, int width, int height, int out_width, int out_height) {
  const FilterCoefficients horizontal = ComputeCoefficients(width, out_width);
  const FilterCoefficients vertical = ComputeCoefficients(height, out_height);
  const bool need_horizontal = out_width != width;
  const bool need_vertical = out_height != height;
  if (!need_horizontal && !need_vertical) return std::vector<float>(src, src + static_cast<size_t>(width) * height);
  if (!need_horizontal) return FilterColumnsFloat(src, width, 0, out_height, vertical);
  if (VerticalPassFirst(width, height, out_width, out_height)) {
    std::vector<float> columns = FilterColumnsFloat(src, width, 0, out_height, vertical);
    return FilterRowsFloat(columns.data(), width, 0, out_height, out_width, horizontal);
  }
  // Pillow only filters the source rows that the vertical pass reads.
  const int first_row = vertical.bounds[0];
  const int last_row = vertical.bounds[out_height * 2 - 2] + vertical.bounds[out_height * 2 - 1];
  std::vector<float> rows = FilterRowsFloat(src, width, first_row, last_row - first_row, out_width, horizontal);
  if (!need_vertical) return rows;
  return FilterColumnsFloat(rows.data(), out_width, first_row, out_height, vertical);
}

template std::vector<float> ResizeBilinearFloat<float>(const float*, int, int, int, int);
template std::vector<float> ResizeBilinearFloat<uint16_t>(const uint16_t*, int, int, int, int);
template std::vector<float> ResizeBilinearFloat<uint8_t>(const uint8_t*, int, int, int, int);

void RgbToGray8(const uint8_t* samples, size_t pixels, int channels, uint8_t* out) {
  for (size_t i = 0, j = 0; i < pixels; i++, j += channels) {
    out[i] = static_cast<uint8_t>((samples[j] * 19595u + samples[j + 1] * 38470u + samples[j + 2] * 7471u + 0x8000u) >> 16);
  }
}

}  // namespace more_image
