// JPEG and PNG decoding through TensorFlow's own DecodeJpeg and DecodePng
// kernels, called with the TensorFlow eager C API of the library that the
// tfjs-node addon loads.
#ifndef MORE_TS_IMAGE_TF_DECODE_H_
#define MORE_TS_IMAGE_TF_DECODE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace more_image {

struct DecodedImage {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> data;
};

// Decodes a JPEG with DecodeJpeg: `channels` 0 (as stored), 1 (grey) or 3
// (RGB), scaled down by `ratio` (1, 2, 4 or 8) in the DCT domain. The IDCT is
// libjpeg's accurate integer one (dct_method INTEGER_ACCURATE), the one
// Pillow uses. Returns false and sets `error` to TensorFlow's message when
// the data cannot be decoded.
bool DecodeJpeg(const uint8_t* bytes, size_t length, int channels, int ratio, DecodedImage* image, std::string* error);

// Decodes an 8-bit PNG with DecodePng, `channels` 0 (as stored) or 1, 3, 4.
bool DecodePng(const uint8_t* bytes, size_t length, int channels, DecodedImage* image, std::string* error);

// TensorFlow's version string (TF_Version).
const char* TensorflowVersion();

}  // namespace more_image

#endif  // MORE_TS_IMAGE_TF_DECODE_H_
