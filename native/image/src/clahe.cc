// Port of src/datasets/xray/clahe.ts. Every arithmetic step keeps the type the
// TypeScript uses: doubles where it computes in doubles, float32 where it
// rounds with Math.fround, and truncation where it calls Math.trunc, so the
// two agree bit for bit. binding.gyp turns off floating-point contraction,
// because a fused multiply-add would round differently.
#include "clahe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace more_image {
namespace {

// Grey levels of the working image (scikit-image's NR_OF_GRAY).
constexpr int kGrayLevels = 1 << 14;

// NumPy 'reflect' padding index (the edge sample is not repeated).
int ReflectIndex(int index, int size) {
  if (size == 1) return 0;
  const int period = 2 * (size - 1);
  int i = index % period;
  if (i < 0) i += period;
  return i < size ? i : period - i;
}

// Rounds half to even: the default rounding mode makes nearbyint do this.
double RoundHalfEven(double value) { return std::nearbyint(value); }

// Clips a histogram at `limit` and redistributes the excess as scikit-image's `clip_histogram` does.
void ClipHistogram(int32_t* hist, int size, int32_t limit) {
  int64_t excess = 0;
  for (int i = 0; i < size; i++) {
    if (hist[i] > limit) {
      excess += hist[i] - limit;
      hist[i] = limit;
    }
  }
  const int64_t increment = excess / size;
  const int64_t upper = limit - increment;
  for (int i = 0; i < size; i++) {
    if (hist[i] < upper) {
      hist[i] += static_cast<int32_t>(increment);
      excess -= increment;
    }
  }
  for (int i = 0; i < size; i++) {
    if (hist[i] >= upper && hist[i] < limit) {
      excess += hist[i] - limit;
      hist[i] = limit;
    }
  }
  if (excess <= 0) return;

  int64_t under = 0;
  for (int i = 0; i < size; i++) {
    if (hist[i] < limit) under++;
  }
  while (excess > 0 && under > 0) {
    const int64_t before = excess;
    for (int start = 0; start < size; start++) {
      const int64_t step = std::max<int64_t>(1, under / excess);
      for (int64_t i = start; i < size; i += step) {
        if (hist[i] < limit) {
          hist[i] += 1;
          excess -= 1;
          if (hist[i] == limit) under--;
        }
      }
      if (excess <= 0) break;
    }
    if (before == excess) break;
  }
}

}  // namespace

void EqualizeAdapthistUint8(const uint8_t* gray, int width, int height, const ClaheSettings& settings, uint8_t* out) {
  const int count = width * height;
  if (count == 0) return;
  const int kernel_rows = settings.kernel_rows;
  const int kernel_cols = settings.kernel_cols;
  const int bin_size = 1 + kGrayLevels / settings.nbins;

  // Every step before the histogram depends on the grey value alone, so one table of 256 bins replaces it.
  int min_value = 255;
  int max_value = 0;
  for (int i = 0; i < count; i++) {
    min_value = std::min<int>(min_value, gray[i]);
    max_value = std::max<int>(max_value, gray[i]);
  }
  double as16[256];
  for (int v = 0; v < 256; v++) as16[v] = max_value > 0 ? RoundHalfEven((static_cast<double>(v) / max_value) * 65535) : 0;
  const double low = as16[min_value];
  const double high = as16[max_value];
  uint16_t bin_of_value[256];
  for (int v = 0; v < 256; v++) {
    const double level = high > low ? RoundHalfEven(((as16[v] - low) / (high - low)) * (kGrayLevels - 1))
                                    : std::min(std::max(as16[v], 0.0), static_cast<double>(kGrayLevels - 1));
    bin_of_value[v] = static_cast<uint16_t>(static_cast<int>(level) / bin_size);
  }
  std::vector<uint16_t> pixel_bins(count);
  for (int i = 0; i < count; i++) pixel_bins[i] = bin_of_value[gray[i]];

  // Reflect padding: each side becomes a multiple of the tile size, preceded by half a tile.
  const int pad_top = kernel_rows / 2;
  const int pad_left = kernel_cols / 2;
  const int pad_bottom = ((kernel_rows - (height % kernel_rows)) % kernel_rows) + (kernel_rows + 1) / 2;
  const int pad_right = ((kernel_cols - (width % kernel_cols)) % kernel_cols) + (kernel_cols + 1) / 2;
  const int padded_height = height + pad_top + pad_bottom;
  const int padded_width = width + pad_left + pad_right;
  std::vector<int32_t> source_rows(padded_height);
  std::vector<int32_t> source_columns(padded_width);
  for (int y = 0; y < padded_height; y++) source_rows[y] = ReflectIndex(y - pad_top, height);
  for (int x = 0; x < padded_width; x++) source_columns[x] = ReflectIndex(x - pad_left, width);

  // One mapping per contextual region, padded by one tile on every side with edge copies.
  const int tile_rows = padded_height / kernel_rows - 1;
  const int tile_cols = padded_width / kernel_cols - 1;
  const int tile_pixels = kernel_rows * kernel_cols;
  // A limit of tile_pixels or more never clips (no bin can exceed it), so larger limits are capped to fit an int32.
  const double requested_limit = std::max(settings.clip_limit * tile_pixels, 1.0);
  const int32_t limit = settings.clip_limit > 0 && requested_limit < tile_pixels
      ? static_cast<int32_t>(std::trunc(requested_limit))
      : tile_pixels;
  const int hist_length = std::max(settings.nbins, (kGrayLevels - 1) / bin_size + 1);
  const int map_rows = tile_rows + 2;
  const int map_cols = tile_cols + 2;
  std::vector<int32_t> maps(static_cast<size_t>(map_rows) * map_cols * hist_length);
  std::vector<int32_t> hist(hist_length);
  const double map_scale = static_cast<double>(kGrayLevels - 1) / tile_pixels;
  for (int ty = 0; ty < tile_rows; ty++) {
    for (int tx = 0; tx < tile_cols; tx++) {
      std::fill(hist.begin(), hist.end(), 0);
      const int y0 = pad_top + ty * kernel_rows;
      const int x0 = pad_left + tx * kernel_cols;
      const int first_column = x0 - pad_left;
      const bool inside = first_column + kernel_cols <= width;
      for (int y = y0; y < y0 + kernel_rows; y++) {
        const uint16_t* row = pixel_bins.data() + static_cast<size_t>(source_rows[y]) * width;
        if (inside) {
          for (int x = first_column; x < first_column + kernel_cols; x++) hist[row[x]]++;
        } else {
          for (int x = x0; x < x0 + kernel_cols; x++) hist[row[source_columns[x]]]++;
        }
      }
      ClipHistogram(hist.data(), hist_length, limit);
      int32_t* map = maps.data() + (static_cast<size_t>(ty + 1) * map_cols + (tx + 1)) * hist_length;
      int64_t cumulative = 0;
      for (int b = 0; b < hist_length; b++) {
        cumulative += hist[b];
        map[b] = static_cast<int32_t>(std::trunc(std::min(cumulative * map_scale, static_cast<double>(kGrayLevels - 1))));
      }
    }
  }
  for (int my = 0; my < map_rows; my++) {
    for (int mx = 0; mx < map_cols; mx++) {
      const int sy = std::min(std::max(my, 1), tile_rows);
      const int sx = std::min(std::max(mx, 1), tile_cols);
      if (sy == my && sx == mx) continue;
      std::memcpy(maps.data() + (static_cast<size_t>(my) * map_cols + mx) * hist_length,
                  maps.data() + (static_cast<size_t>(sy) * map_cols + sx) * hist_length, sizeof(int32_t) * hist_length);
    }
  }

  // Blend the four surrounding mappings per pixel in float32 and truncate, one tile-wide column block at a time.
  std::vector<double> column_weights(width);
  std::vector<int> block_starts;
  for (int x = 0; x < width; x++) {
    const int px = x + pad_left;
    const int block = px / kernel_cols;
    column_weights[x] = static_cast<double>(px - block * kernel_cols) / kernel_cols;
    if (x == 0 || px % kernel_cols == 0) block_starts.push_back(x);
  }
  block_starts.push_back(width);
  std::vector<uint16_t> levels(count);
  int out_low = kGrayLevels;
  int out_high = 0;
  const size_t row_stride = static_cast<size_t>(map_cols) * hist_length;
  for (int y = 0; y < height; y++) {
    const int py = y + pad_top;
    const int block_row = py / kernel_rows;
    const double cy = static_cast<double>(py - block_row * kernel_rows) / kernel_rows;
    const double upper_weight = 1 - cy;
    const size_t out_row = static_cast<size_t>(y) * width;
    for (size_t b = 0; b + 1 < block_starts.size(); b++) {
      const int block = (block_starts[b] + pad_left) / kernel_cols;
      const int32_t* map00 = maps.data() + static_cast<size_t>(block_row) * row_stride + static_cast<size_t>(block) * hist_length;
      const int32_t* map01 = map00 + hist_length;
      const int32_t* map10 = map00 + row_stride;
      const int32_t* map11 = map10 + hist_length;
      const int end = block_starts[b + 1];
      for (int x = block_starts[b]; x < end; x++) {
        const double cx = column_weights[x];
        const double left_weight = 1 - cx;
        const uint16_t bin = pixel_bins[out_row + x];
        float sum = static_cast<float>(map00[bin] * (left_weight * upper_weight));
        sum = sum + static_cast<float>(map01[bin] * (cx * upper_weight));
        sum = sum + static_cast<float>(map10[bin] * (left_weight * cy));
        sum = sum + static_cast<float>(map11[bin] * (cx * cy));
        const int level = static_cast<int>(std::trunc(sum));
        levels[out_row + x] = static_cast<uint16_t>(level);
        out_low = std::min(out_low, level);
        out_high = std::max(out_high, level);
      }
    }
  }

  // The blended levels are integers in [out_low, out_high], so the final rescale to 8 bits is one table.
  std::vector<uint8_t> to_byte(out_high - out_low + 1);
  for (int level = out_low; level <= out_high; level++) {
    const double unit = out_high > out_low ? static_cast<double>(level - out_low) / (out_high - out_low)
                                           : std::min(std::max(static_cast<double>(level), 0.0), 1.0);
    to_byte[level - out_low] = static_cast<uint8_t>(RoundHalfEven(unit * 255));
  }
  for (int i = 0; i < count; i++) out[i] = to_byte[levels[i] - out_low];
}

}  // namespace more_image
