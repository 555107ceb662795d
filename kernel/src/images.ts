/**
 * Pictures for notebooks: PNG encoding of raw pixels with sharp, and the
 * relevance heatmap laid over a grayscale X-ray.
 */
import sharp from 'sharp';

import { displayBundle } from './display';

/** Raw 8-bit pixels in row-major order, `channels` values per pixel (1 gray, 3 RGB, 4 RGBA). */
export interface RawImage {
  width: number;
  height: number;
  channels: 1 | 3 | 4;
  data: Uint8Array | Uint8ClampedArray;
}

function checkImage(image: RawImage, name: string): void {
  const { width, height, channels, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new Error(`${name}: width and height must be positive integers; got ${width} x ${height}`);
  }
  if (![1, 3, 4].includes(channels)) throw new Error(`${name}: channels must be 1, 3 or 4; got ${channels}`);
  if (data.length !== width * height * channels) {
    throw new Error(`${name}: expected ${width * height * channels} values (${width} x ${height} x ${channels}); got ${data.length}`);
  }
}

/** Encodes raw pixels as PNG. */
export async function encodePng(image: RawImage): Promise<Buffer> {
  checkImage(image, 'encodePng');
  const { width, height, channels, data } = image;
  return sharp(Buffer.from(data.buffer, data.byteOffset, data.byteLength), { raw: { width, height, channels } })
    .png()
    .toBuffer();
}

/** Shows raw pixels as image/png with a text/plain description. */
export async function showImage(image: RawImage, caption = 'Image'): Promise<void> {
  const png = await encodePng(image);
  displayBundle({
    'image/png': png.toString('base64'),
    'text/plain': `${caption}: ${image.width} x ${image.height} pixels, ${image.channels} channel${image.channels === 1 ? '' : 's'}`,
  });
}

/**
 * Maps t in [0, 1] to a blue-cyan-yellow-red ramp (a "jet"-like colormap,
 * piecewise linear through five stops).
 */
export function heatColor(t: number): [number, number, number] {
  const stops: [number, number, number][] = [
    [0, 0, 143], [0, 128, 255], [0, 255, 255], [255, 255, 0], [255, 0, 0],
  ];
  const x = Math.min(Math.max(Number.isFinite(t) ? t : 0, 0), 1) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2);
  const f = x - i;
  const [a, b] = [stops[i], stops[i + 1]];
  return [0, 1, 2].map((k) => Math.round(a[k] + (b[k] - a[k]) * f)) as [number, number, number];
}

export interface HeatmapOverlayOptions {
  /** Weight of the heatmap colour over the image, in [0, 1]. */
  alpha?: number;
}

/**
 * Blends a relevance map over a grayscale image and returns RGB pixels of the
 * image's size. `relevance` has `rows * cols` values in row-major order, for
 * example one per ViT patch. Each image pixel takes the value of the cell it
 * falls in (nearest neighbour). Values are scaled linearly from the map's
 * minimum to its maximum, and a constant map is drawn at the bottom of the
 * colour ramp.
 */
export function heatmapOverlay(
  gray: RawImage, relevance: ArrayLike<number>, grid: { rows: number; cols: number },
  options: HeatmapOverlayOptions = {},
): RawImage {
  checkImage(gray, 'heatmapOverlay image');
  if (gray.channels !== 1) throw new Error(`heatmapOverlay: the image must be grayscale (1 channel); got ${gray.channels}`);
  if (relevance.length !== grid.rows * grid.cols) {
    throw new Error(`heatmapOverlay: expected ${grid.rows * grid.cols} relevance values (${grid.rows} x ${grid.cols}); got ${relevance.length}`);
  }
  const alpha = options.alpha ?? 0.45;
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`heatmapOverlay: alpha must be in [0, 1]; got ${alpha}`);

  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < relevance.length; i++) {
    const value = relevance[i];
    if (!Number.isFinite(value)) throw new Error(`heatmapOverlay: relevance[${i}] is ${value}; expected a finite number`);
    min = Math.min(min, value);
    max = Math.max(max, value);
  }
  const span = max - min;

  const { width, height } = gray;
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const row = Math.min(Math.floor((y * grid.rows) / height), grid.rows - 1);
    for (let x = 0; x < width; x++) {
      const col = Math.min(Math.floor((x * grid.cols) / width), grid.cols - 1);
      const t = span > 0 ? (relevance[row * grid.cols + col] - min) / span : 0;
      const color = heatColor(t);
      const g = gray.data[y * width + x];
      for (let k = 0; k < 3; k++) out[(y * width + x) * 3 + k] = Math.round((1 - alpha) * g + alpha * color[k]);
    }
  }
  return { width, height, channels: 3, data: out };
}
