// Contrast limited adaptive histogram equalisation of 8-bit images, ported
// line for line from src/datasets/xray/clahe.ts (equalizeAdapthistUint8), so
// it gives the same numbers as scikit-image 0.26 `equalize_adapthist`.
#ifndef MORE_TS_IMAGE_CLAHE_H_
#define MORE_TS_IMAGE_CLAHE_H_

#include <cstdint>

namespace more_image {

struct ClaheSettings {
  int nbins;
  double clip_limit;
  int kernel_rows;
  int kernel_cols;
};

// Equalises `height` rows of `width` grey values into `out` (same size). The
// settings are validated by the caller, as resolveSettings in clahe.ts does.
void EqualizeAdapthistUint8(const uint8_t* gray, int width, int height, const ClaheSettings& settings, uint8_t* out);

}  // namespace more_image

#endif  // MORE_TS_IMAGE_CLAHE_H_
