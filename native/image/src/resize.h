// Pillow's separable bilinear resize (`Image.resize` with `Image.BILINEAR`,
// libImaging/Resample.c), ported from src/datasets/xray/resize.ts, and
// Pillow's RGB(A) to 'L' conversion.
#ifndef MORE_TS_IMAGE_RESIZE_H_
#define MORE_TS_IMAGE_RESIZE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace more_image {

// Resizes an 8-bit image as Pillow resizes a mode 'L' image (22-bit fixed-point weights).
std::vector<uint8_t> ResizeBilinear8(const uint8_t* src, int width, int height, int out_width, int out_height);

// Resizes real-valued samples as Pillow resizes a mode 'F' image (double sums stored as float32).
template <typename Sample>
std::vector<float> ResizeBilinearFloat(const Sample* src, int width, int height, int out_width, int out_height);

// Converts interleaved 8-bit RGB or RGBA samples to grey with Pillow's `convert('L')` fixed-point luma.
void RgbToGray8(const uint8_t* samples, size_t pixels, int channels, uint8_t* out);

}  // namespace more_image

#endif  // MORE_TS_IMAGE_RESIZE_H_
