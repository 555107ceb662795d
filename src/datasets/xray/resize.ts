/**
 * Resizing with Pillow's separable bilinear filter (Pillow `Image.resize` with
 * `Image.BILINEAR`, `libImaging/Resample.c`): when shrinking, the triangle
 * filter is widened by the scale factor, so every source pixel contributes
 * (antialiasing). The 8-bit path reproduces Pillow's 22-bit fixed-point
 * arithmetic, so results equal Pillow's mode 'L' output exactly. The float
 * path follows Pillow's mode 'F' (double sums stored as float32).
 *
 * When the native image addon is loaded (`native.ts`), `resizeBilinear8` and
 * `resizeBilinearFloat` run its port in `native/image/src/resize.cc`, which
 * gives the same bytes. The `...Js` functions are the TypeScript versions.
 */

import { GrayImage } from './image';
import { nativeImage } from './native';

/** Fraction bits of Pillow's fixed-point filter weights for 8-bit images (32 - 8 - 2). */
const PRECISION_BITS = 22;

interface FilterCoefficients {
  /** Size of each output sample's weight window. */
  kernelSize: number;
  /** For output sample i: first source index at `bounds[2i]`, tap count at `bounds[2i + 1]`. */
  bounds: Int32Array;
  weights: Float64Array;
}

function triangle(x: number): number {
  const distance = Math.abs(x);
  return distance < 1 ? 1 - distance : 0;
}

/** Computes the normalised filter weights for mapping `inSize` samples onto `outSize` samples. */
function computeCoefficients(inSize: number, outSize: number): FilterCoefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 1 * filterScale;
  const kernelSize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Float64Array(outSize * kernelSize);
  const inverseFilterScale = 1 / filterScale;
  for (let out = 0; out < outSize; out++) {
    const center = (out + 0.5) * scale;
    const first = Math.max(Math.trunc(center - support + 0.5), 0);
    const last = Math.min(Math.trunc(center + support + 0.5), inSize);
    const taps = last - first;
    let total = 0;
    const base = out * kernelSize;
    for (let k = 0; k < taps; k++) {
      const w = triangle((k + first - center + 0.5) * inverseFilterScale);
      weights[base + k] = w;
      total += w;
    }
    if (total !== 0) for (let k = 0; k < taps; k++) weights[base + k] /= total;
    bounds[out * 2] = first;
    bounds[out * 2 + 1] = taps;
  }
  return { kernelSize, bounds, weights };
}

function toFixedPoint(weights: Float64Array): Int32Array {
  const fixed = new Int32Array(weights.length);
  const one = 2 ** PRECISION_BITS;
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i];
    fixed[i] = w < 0 ? Math.trunc(-0.5 + w * one) : Math.trunc(0.5 + w * one);
  }
  return fixed;
}

function clip8(sum: number): number {
  if (sum >= 2 ** (PRECISION_BITS + 8)) return 255;
  if (sum <= 0) return 0;
  return sum >> PRECISION_BITS;
}

/**
 * Filters `rowCount` rows of `src` (starting at row `firstRow`) along x, four
 * rows at a time so each weight is loaded once per four products. The int32
 * sums cannot overflow: at most 2^21 + 255 * 2^22 plus rounding slack.
 */
function filterRows8(
  src: Uint8Array, width: number, firstRow: number, rowCount: number, outWidth: number, coefficients: FilterCoefficients,
): Uint8Array {
  const fixed = toFixedPoint(coefficients.weights);
  const { bounds, kernelSize } = coefficients;
  const out = new Uint8Array(outWidth * rowCount);
  const half = 1 << (PRECISION_BITS - 1);
  let y = 0;
  for (; y + 4 <= rowCount; y += 4) {
    const r0 = (y + firstRow) * width;
    const r1 = r0 + width;
    const r2 = r1 + width;
    const r3 = r2 + width;
    const o0 = y * outWidth;
    for (let x = 0; x < outWidth; x++) {
      const start = bounds[x * 2];
      const taps = bounds[x * 2 + 1];
      const base = x * kernelSize;
      let s0 = half;
      let s1 = half;
      let s2 = half;
      let s3 = half;
      for (let t = 0; t < taps; t++) {
        const w = fixed[base + t];
        const i = start + t;
        s0 = (s0 + Math.imul(src[r0 + i], w)) | 0;
        s1 = (s1 + Math.imul(src[r1 + i], w)) | 0;
        s2 = (s2 + Math.imul(src[r2 + i], w)) | 0;
        s3 = (s3 + Math.imul(src[r3 + i], w)) | 0;
      }
      out[o0 + x] = clip8(s0);
      out[o0 + outWidth + x] = clip8(s1);
      out[o0 + 2 * outWidth + x] = clip8(s2);
      out[o0 + 3 * outWidth + x] = clip8(s3);
    }
  }
  for (; y < rowCount; y++) {
    const srcRow = (y + firstRow) * width;
    const outRow = y * outWidth;
    for (let x = 0; x < outWidth; x++) {
      const start = srcRow + bounds[x * 2];
      const taps = bounds[x * 2 + 1];
      const base = x * kernelSize;
      let sum = half;
      for (let t = 0; t < taps; t++) sum = (sum + Math.imul(src[start + t], fixed[base + t])) | 0;
      out[outRow + x] = clip8(sum);
    }
  }
  return out;
}

/** Filters along y: output row y mixes source rows `bounds[2y] - firstRow` onwards. */
function filterColumns8(
  rows: Uint8Array, rowWidth: number, firstRow: number, outHeight: number, coefficients: FilterCoefficients,
): Uint8Array {
  const fixed = toFixedPoint(coefficients.weights);
  const { bounds, kernelSize } = coefficients;
  const out = new Uint8Array(rowWidth * outHeight);
  const sums = new Int32Array(rowWidth);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < outHeight; y++) {
    const start = bounds[y * 2] - firstRow;
    const taps = bounds[y * 2 + 1];
    sums.fill(half);
    // Row by row, so the inner loop reads memory in order.
    for (let t = 0; t < taps; t++) {
      const weight = fixed[y * kernelSize + t];
      const offset = (start + t) * rowWidth;
      for (let x = 0; x < rowWidth; x++) sums[x] = (sums[x] + Math.imul(rows[offset + x], weight)) | 0;
    }
    const outRow = y * rowWidth;
    for (let x = 0; x < rowWidth; x++) out[outRow + x] = clip8(sums[x]);
  }
  return out;
}

/**
 * Returns true when Pillow runs the vertical pass first: Pillow 13 does so
 * when the height shrinks by more than twice as many pixels as the width
 * (`ImagingResampleInner` in `Resample.c`). The 8-bit passes round between
 * them, so the order changes results by one grey level on some pixels.
 */
function verticalPassFirst(width: number, height: number, outWidth: number, outHeight: number): boolean {
  return height - outHeight > 0 && height - outHeight > 2 * (width - outWidth);
}

/** Filters `rowCount` rows of `src` (starting at row `firstRow`) along x, summing in float64 and storing float32 as mode 'F' does. */
function filterRowsFloat(
  src: ArrayLike<number>, width: number, firstRow: number, rowCount: number, outWidth: number, coefficients: FilterCoefficients,
): Float32Array {
  const { bounds, kernelSize, weights } = coefficients;
  const out = new Float32Array(outWidth * rowCount);
  for (let y = 0; y < rowCount; y++) {
    const srcRow = (y + firstRow) * width;
    for (let x = 0; x < outWidth; x++) {
      const start = bounds[x * 2];
      const taps = bounds[x * 2 + 1];
      let sum = 0;
      for (let t = 0; t < taps; t++) sum += src[srcRow + start + t] * weights[x * kernelSize + t];
      out[y * outWidth + x] = sum;
    }
  }
  return out;
}

/** Filters along y in float64, storing float32: output row y mixes source rows `bounds[2y] - firstRow` onwards. */
function filterColumnsFloat(
  rows: ArrayLike<number>, rowWidth: number, firstRow: number, outHeight: number, coefficients: FilterCoefficients,
): Float32Array {
  const { bounds, kernelSize, weights } = coefficients;
  const out = new Float32Array(rowWidth * outHeight);
  for (let y = 0; y < outHeight; y++) {
    const start = bounds[y * 2] - firstRow;
    const taps = bounds[y * 2 + 1];
    for (let x = 0; x < rowWidth; x++) {
      let sum = 0;
      for (let t = 0; t < taps; t++) sum += rows[(start + t) * rowWidth + x] * weights[y * kernelSize + t];
      out[y * rowWidth + x] = sum;
    }
  }
  return out;
}

/** The horizontal and vertical passes of one sample type, and a plain copy for a resize to the same size. */
interface FilterPasses<S extends ArrayLike<number>, R extends ArrayLike<number>> {
  rows(src: S | R, width: number, firstRow: number, rowCount: number, outWidth: number, coefficients: FilterCoefficients): R;
  columns(rows: S | R, rowWidth: number, firstRow: number, outHeight: number, coefficients: FilterCoefficients): R;
  copy(src: S): R;
}

/**
 * Resizes with the two passes in Pillow's order: horizontal first, over
 * only the source rows that the vertical pass reads, unless
 * `verticalPassFirst` holds.
 */
function resizeSeparable<S extends ArrayLike<number>, R extends ArrayLike<number>>(
  src: S, width: number, height: number, outWidth: number, outHeight: number, passes: FilterPasses<S, R>,
): R {
  const horizontal = computeCoefficients(width, outWidth);
  const vertical = computeCoefficients(height, outHeight);
  const needHorizontal = outWidth !== width;
  const needVertical = outHeight !== height;
  if (!needHorizontal && !needVertical) return passes.copy(src);
  if (!needHorizontal) return passes.columns(src, width, 0, outHeight, vertical);
  if (verticalPassFirst(width, height, outWidth, outHeight)) {
    const columns = passes.columns(src, width, 0, outHeight, vertical);
    return passes.rows(columns, width, 0, outHeight, outWidth, horizontal);
  }
  const firstRow = vertical.bounds[0];
  const lastRow = vertical.bounds[outHeight * 2 - 2] + vertical.bounds[outHeight * 2 - 1];
  const rows = passes.rows(src, width, firstRow, lastRow - firstRow, outWidth, horizontal);
  if (!needVertical) return rows;
  return passes.columns(rows, outWidth, firstRow, outHeight, vertical);
}

/** Resizes an 8-bit image exactly as Pillow's bilinear resize of a mode 'L' image. */
export function resizeBilinear8(src: Uint8Array, width: number, height: number, outWidth: number, outHeight: number): Uint8Array {
  const native = nativeImage();
  if (native !== undefined) return native.resize8(src, width, height, outWidth, outHeight);
  return resizeBilinear8Js(src, width, height, outWidth, outHeight);
}

/** The TypeScript implementation of `resizeBilinear8`. */
export function resizeBilinear8Js(src: Uint8Array, width: number, height: number, outWidth: number, outHeight: number): Uint8Array {
  return resizeSeparable(src, width, height, outWidth, outHeight, {
    rows: filterRows8,
    columns: filterColumns8,
    copy: (values) => Uint8Array.from(values),
  });
}

/** Resizes a real-valued image as Pillow's bilinear resize of a mode 'F' image (float32 between passes). */
export function resizeBilinearFloat(src: ArrayLike<number>, width: number, height: number, outWidth: number, outHeight: number): Float32Array {
  const native = nativeImage();
  if (native !== undefined && (src instanceof Float32Array || src instanceof Uint16Array || src instanceof Uint8Array)) {
    return native.resizeFloat(src, width, height, outWidth, outHeight);
  }
  return resizeBilinearFloatJs(src, width, height, outWidth, outHeight);
}

/** The TypeScript implementation of `resizeBilinearFloat`. */
export function resizeBilinearFloatJs(src: ArrayLike<number>, width: number, height: number, outWidth: number, outHeight: number): Float32Array {
  return resizeSeparable(src, width, height, outWidth, outHeight, {
    rows: filterRowsFloat,
    columns: filterColumnsFloat,
    copy: (values) => Float32Array.from(values),
  });
}

/**
 * Resizes a grey image to `outWidth` x `outHeight`. 8-bit images stay 8-bit
 * (Pillow mode 'L'); 16-bit and real-valued images come back as float32
 * (Pillow mode 'F').
 */
export function resizeGray(image: GrayImage, outWidth: number, outHeight: number): GrayImage {
  if (!Number.isInteger(outWidth) || !Number.isInteger(outHeight) || outWidth < 1 || outHeight < 1) {
    throw new Error(`Invalid resize target ${outWidth} x ${outHeight}: expected positive integers`);
  }
  const data = image.data instanceof Uint8Array
    ? resizeBilinear8(image.data, image.width, image.height, outWidth, outHeight)
    : resizeBilinearFloat(image.data, image.width, image.height, outWidth, outHeight);
  return { width: outWidth, height: outHeight, data };
}
