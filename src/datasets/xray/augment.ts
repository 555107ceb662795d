/**
 * Training augmentations for preprocessed radiographs (grey values in [0, 1]),
 * driven by a seeded `Rng` so that a sample's augmentation repeats exactly for
 * the same seed: random resized crop, brightness/contrast jitter, Gaussian
 * blur and horizontal flip, each applied with its own probability.
 */

import { Rng } from '../../util/rng';
import { resizeBilinearFloat } from './resize';

export interface XrayAugmentOptions {
  /** Probability of a random resized crop; default 0.8. */
  cropProbability?: number;
  /** Range of the crop's area as a fraction of the image; default [0.2, 1.0]. */
  cropScale?: [number, number];
  /** Range of the crop's aspect ratio (width / height), sampled log-uniformly; default [3/4, 4/3]. */
  cropRatio?: [number, number];
  /** Probability of the brightness/contrast jitter; default 0.8. */
  jitterProbability?: number;
  /** Brightness factor drawn from [1 - b, 1 + b]; default 0.4. */
  brightness?: number;
  /** Contrast factor drawn from [1 - c, 1 + c]; default 0.4. */
  contrast?: number;
  /** Probability of a Gaussian blur; default 0.5. */
  blurProbability?: number;
  /** Range of the blur's standard deviation in pixels; default [0.1, 2.0]. */
  blurSigma?: [number, number];
  /** Probability of a horizontal flip; default 0.5. */
  flipProbability?: number;
}

function uniformIn(rng: Rng, low: number, high: number): number {
  return low + (high - low) * rng.uniform();
}

/** Picks a crop box as torchvision's RandomResizedCrop does: ten tries, then the centred largest box within the ratio range. */
function sampleCropBox(rng: Rng, width: number, height: number, scale: [number, number], ratio: [number, number]): [number, number, number, number] {
  const area = width * height;
  const logLow = Math.log(ratio[0]);
  const logHigh = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * uniformIn(rng, scale[0], scale[1]);
    const aspect = Math.exp(uniformIn(rng, logLow, logHigh));
    const w = Math.round(Math.sqrt(targetArea * aspect));
    const h = Math.round(Math.sqrt(targetArea / aspect));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      const top = rng.int(height - h + 1);
      const left = rng.int(width - w + 1);
      return [left, top, w, h];
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = Math.round(w / ratio[0]);
  else if (inRatio > ratio[1]) w = Math.round(h * ratio[1]);
  return [Math.floor((width - w) / 2), Math.floor((height - h) / 2), w, h];
}

function crop(data: Float32Array, width: number, box: [number, number, number, number]): Float32Array {
  const [left, top, w, h] = box;
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) out.set(data.subarray((top + y) * width + left, (top + y) * width + left + w), y * w);
  return out;
}

function clampUnit(value: number): number {
  return Math.min(Math.max(value, 0), 1);
}

/** Separable Gaussian blur with reflected borders; the kernel spans three standard deviations each side. */
export function gaussianBlur(data: Float32Array, width: number, height: number, sigma: number): Float32Array {
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const kernel = new Float64Array(2 * radius + 1);
  let total = 0;
  for (let i = -radius; i <= radius; i++) {
    kernel[i + radius] = Math.exp(-(i * i) / (2 * sigma * sigma));
    total += kernel[i + radius];
  }
  for (let i = 0; i < kernel.length; i++) kernel[i] /= total;
  const reflect = (index: number, size: number): number => {
    let i = index;
    while (i < 0 || i >= size) i = i < 0 ? -i - 1 : 2 * size - i - 1;
    return i;
  };
  const rows = new Float32Array(data.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let sum = 0;
      for (let k = -radius; k <= radius; k++) sum += data[y * width + reflect(x + k, width)] * kernel[k + radius];
      rows[y * width + x] = sum;
    }
  }
  const out = new Float32Array(data.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let sum = 0;
      for (let k = -radius; k <= radius; k++) sum += rows[reflect(y + k, height) * width + x] * kernel[k + radius];
      out[y * width + x] = sum;
    }
  }
  return out;
}

/**
 * Applies the training augmentations to a `width` x `height` grey image in
 * [0, 1] and returns a new image of the same size. The input is not changed,
 * and every random draw comes from `rng`.
 */
export function augmentXray(data: Float32Array, width: number, height: number, rng: Rng, options: XrayAugmentOptions = {}): Float32Array {
  let image: Float32Array = Float32Array.from(data);

  if (rng.uniform() < (options.cropProbability ?? 0.8)) {
    const box = sampleCropBox(rng, width, height, options.cropScale ?? [0.2, 1.0], options.cropRatio ?? [3 / 4, 4 / 3]);
    image = resizeBilinearFloat(crop(image, width, box), box[2], box[3], width, height);
    for (let i = 0; i < image.length; i++) image[i] = clampUnit(image[i]);
  }

  if (rng.uniform() < (options.jitterProbability ?? 0.8)) {
    const brightness = options.brightness ?? 0.4;
    const contrast = options.contrast ?? 0.4;
    const brightnessFactor = uniformIn(rng, Math.max(0, 1 - brightness), 1 + brightness);
    const contrastFactor = uniformIn(rng, Math.max(0, 1 - contrast), 1 + contrast);
    let mean = 0;
    for (let i = 0; i < image.length; i++) {
      image[i] = clampUnit(image[i] * brightnessFactor);
      mean += image[i];
    }
    mean /= image.length;
    for (let i = 0; i < image.length; i++) image[i] = clampUnit((image[i] - mean) * contrastFactor + mean);
  }

  if (rng.uniform() < (options.blurProbability ?? 0.5)) {
    const [low, high] = options.blurSigma ?? [0.1, 2.0];
    image = gaussianBlur(image, width, height, uniformIn(rng, low, high));
  }

  if (rng.uniform() < (options.flipProbability ?? 0.5)) {
    for (let y = 0; y < height; y++) image.subarray(y * width, (y + 1) * width).reverse();
  }
  return image;
}
