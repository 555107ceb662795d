/**
 * Contrast limited adaptive histogram equalisation (Zuiderveld, "Contrast
 * Limited Adaptive Histogram Equalization", Graphics Gems IV, 1994), written to
 * give the same numbers as scikit-image 0.26 `exposure.equalize_adapthist` on
 * a 2-D image: the same 14-bit quantisation, reflect padding, tile grid,
 * integer clip limit with its redistribution passes, truncating mappings and
 * float32 bilinear blending of the four neighbouring tile mappings.
 *
 * The work runs on typed arrays with integer histograms and no per-pixel
 * allocation. `equalizeAdapthistUint8` is the entry for 8-bit images: it maps
 * each of the 256 grey values to its histogram bin once, through a table. It
 * runs in the native image addon (`native/image/src/clahe.cc`, a line-for-line
 * port that gives the same bytes) when that is loaded, see `native.ts`, and
 * `equalizeAdapthistUint8Js` is the TypeScript version.
 */

import { nativeImage } from './native';

/** Grey levels of the working image (scikit-image's NR_OF_GRAY). */
const GRAY_LEVELS = 2 ** 14;

export interface ClaheOptions {
  /** Tile size [rows, columns]; defaults to 1/8 of each dimension (at least 1). */
  kernelSize?: [number, number];
  /** Clip limit as a fraction of a tile's pixel count (0 or >= 1: no clipping); default 0.01. */
  clipLimit?: number;
  /** Histogram bins; default 256. */
  nbins?: number;
}

/** Rounds half to even, as NumPy's `rint` and `round` do. */
export function roundHalfEven(value: number): number {
  // Math.round sends ties up, so a tie that landed on an odd integer goes one down.
  const rounded = Math.round(value);
  return rounded - value === 0.5 && rounded % 2 !== 0 ? rounded - 1 : rounded;
}

/** NumPy 'reflect' padding index (the edge sample is not repeated). */
function reflectIndex(index: number, size: number): number {
  if (size === 1) return 0;
  const period = 2 * (size - 1);
  let i = index % period;
  if (i < 0) i += period;
  return i < size ? i : period - i;
}

/** Clips a histogram at `limit` and redistributes the excess as scikit-image's `clip_histogram` does. */
export function clipHistogram(hist: Int32Array, limit: number): void {
  const size = hist.length;
  let excess = 0;
  for (let i = 0; i < size; i++) {
    if (hist[i] > limit) {
      excess += hist[i] - limit;
      hist[i] = limit;
    }
  }
  const increment = Math.floor(excess / size);
  const upper = limit - increment;
  for (let i = 0; i < size; i++) {
    if (hist[i] < upper) {
      hist[i] += increment;
      excess -= increment;
    }
  }
  // Checked after the increment above, so a bin it lifted to `upper` or beyond is also filled to the limit.
  for (let i = 0; i < size; i++) {
    if (hist[i] >= upper && hist[i] < limit) {
      excess += hist[i] - limit;
      hist[i] = limit;
    }
  }
  if (excess <= 0) return;

  // scikit-image recounts the bins under the limit before every strided pass.
  // The count only drops when a bin reaches the limit, so it is kept up to date instead.
  let under = 0;
  for (let i = 0; i < size; i++) if (hist[i] < limit) under++;
  while (excess > 0 && under > 0) {
    const before = excess;
    for (let start = 0; start < size; start++) {
      const step = Math.max(1, Math.floor(under / excess));
      for (let i = start; i < size; i += step) {
        if (hist[i] < limit) {
          hist[i] += 1;
          excess -= 1;
          if (hist[i] === limit) under--;
        }
      }
      if (excess <= 0) break;
    }
    if (before === excess) break;
  }
}

/** Validated CLAHE settings for one image size. */
interface ClaheSettings {
  nbins: number;
  clipLimit: number;
  kernelRows: number;
  kernelCols: number;
  /** Width of one histogram bin in 14-bit levels. */
  binSize: number;
}

function resolveSettings(width: number, height: number, options: ClaheOptions): ClaheSettings {
  const nbins = options.nbins ?? 256;
  const clipLimit = options.clipLimit ?? 0.01;
  const [kernelRows, kernelCols] = options.kernelSize ?? [Math.max(Math.floor(height / 8), 1), Math.max(Math.floor(width / 8), 1)];
  if (!Number.isInteger(nbins) || nbins < 1) throw new Error(`Invalid nbins ${nbins}: expected a positive integer`);
  if (!Number.isInteger(kernelRows) || !Number.isInteger(kernelCols) || kernelRows < 1 || kernelCols < 1) {
    throw new Error(`Invalid kernelSize [${kernelRows}, ${kernelCols}]: expected positive integers`);
  }
  return { nbins, clipLimit, kernelRows, kernelCols, binSize: 1 + Math.floor(GRAY_LEVELS / nbins) };
}

/** Blended 14-bit levels of a CLAHE image, before scikit-image's final rescale, with their range. */
interface BlendedLevels {
  levels: Uint16Array;
  low: number;
  high: number;
}

/**
 * Runs the tile mappings and their blending on the histogram bin of every
 * pixel (row-major, `height` rows of `width`).
 */
function equalizeBins(pixelBins: Uint16Array, width: number, height: number, settings: ClaheSettings): BlendedLevels {
  const { nbins, clipLimit, kernelRows, kernelCols, binSize } = settings;

  // scikit-image reflect-pads so each side is a multiple of the tile size, preceded by half a tile.
  // The padded image is only indexed here, through the source row and column of each padded one.
  const padTop = Math.floor(kernelRows / 2);
  const padLeft = Math.floor(kernelCols / 2);
  const padBottom = ((kernelRows - (height % kernelRows)) % kernelRows) + Math.ceil(kernelRows / 2);
  const padRight = ((kernelCols - (width % kernelCols)) % kernelCols) + Math.ceil(kernelCols / 2);
  const paddedHeight = height + padTop + padBottom;
  const paddedWidth = width + padLeft + padRight;
  const sourceRows = new Int32Array(paddedHeight);
  const sourceColumns = new Int32Array(paddedWidth);
  for (let y = 0; y < paddedHeight; y++) sourceRows[y] = reflectIndex(y - padTop, height);
  for (let x = 0; x < paddedWidth; x++) sourceColumns[x] = reflectIndex(x - padLeft, width);

  // One mapping per contextual region; regions start half a tile into the padded image.
  const tileRows = Math.floor(paddedHeight / kernelRows) - 1;
  const tileCols = Math.floor(paddedWidth / kernelCols) - 1;
  const tilePixels = kernelRows * kernelCols;
  const limit = clipLimit > 0 ? Math.trunc(Math.max(clipLimit * tilePixels, 1)) : tilePixels;
  const histLength = Math.max(nbins, Math.floor((GRAY_LEVELS - 1) / binSize) + 1);
  // Mappings padded by one tile on every side with edge copies, as scikit-image does.
  const mapRows = tileRows + 2;
  const mapCols = tileCols + 2;
  const maps = new Int32Array(mapRows * mapCols * histLength);
  const hist = new Int32Array(histLength);
  const mapScale = (GRAY_LEVELS - 1) / tilePixels;
  for (let ty = 0; ty < tileRows; ty++) {
    for (let tx = 0; tx < tileCols; tx++) {
      hist.fill(0);
      const y0 = padTop + ty * kernelRows;
      const x0 = padLeft + tx * kernelCols;
      // Tiles inside the image read their rows directly, and edge tiles go through the reflected columns.
      const firstColumn = x0 - padLeft;
      const inside = firstColumn + kernelCols <= width;
      for (let y = y0; y < y0 + kernelRows; y++) {
        const row = sourceRows[y] * width;
        if (inside) {
          for (let x = row + firstColumn; x < row + firstColumn + kernelCols; x++) hist[pixelBins[x]]++;
        } else {
          for (let x = x0; x < x0 + kernelCols; x++) hist[pixelBins[row + sourceColumns[x]]]++;
        }
      }
      clipHistogram(hist, limit);
      const base = ((ty + 1) * mapCols + (tx + 1)) * histLength;
      let cumulative = 0;
      for (let b = 0; b < histLength; b++) {
        cumulative += hist[b];
        maps[base + b] = Math.trunc(Math.min(cumulative * mapScale, GRAY_LEVELS - 1));
      }
    }
  }
  for (let my = 0; my < mapRows; my++) {
    for (let mx = 0; mx < mapCols; mx++) {
      const sy = Math.min(Math.max(my, 1), tileRows);
      const sx = Math.min(Math.max(mx, 1), tileCols);
      if (sy === my && sx === mx) continue;
      const from = (sy * mapCols + sx) * histLength;
      maps.copyWithin((my * mapCols + mx) * histLength, from, from + histLength);
    }
  }

  // Blend the four surrounding mappings per pixel, accumulating in float32 and truncating to an integer.
  // Pixels are visited one tile-wide column block at a time, so the four mapping offsets are fixed within a block.
  const columnWeights = new Float64Array(width);
  const blockStarts: number[] = [];
  for (let x = 0; x < width; x++) {
    const px = x + padLeft;
    const block = Math.floor(px / kernelCols);
    columnWeights[x] = (px - block * kernelCols) / kernelCols;
    if (x === 0 || px % kernelCols === 0) blockStarts.push(x);
  }
  blockStarts.push(width);
  const result = new Uint16Array(width * height);
  let low = GRAY_LEVELS;
  let high = 0;
  for (let y = 0; y < height; y++) {
    const py = y + padTop;
    const blockRow = Math.floor(py / kernelRows);
    const cy = (py - blockRow * kernelRows) / kernelRows;
    const upperWeight = 1 - cy;
    const outRow = y * width;
    for (let b = 0; b + 1 < blockStarts.length; b++) {
      const block = Math.floor((blockStarts[b] + padLeft) / kernelCols);
      const base00 = (blockRow * mapCols + block) * histLength;
      const base01 = base00 + histLength;
      const base10 = ((blockRow + 1) * mapCols + block) * histLength;
      const base11 = base10 + histLength;
      const end = blockStarts[b + 1];
      for (let x = blockStarts[b]; x < end; x++) {
        const cx = columnWeights[x];
        const leftWeight = 1 - cx;
        const bin = pixelBins[outRow + x];
        let sum = Math.fround(maps[base00 + bin] * (leftWeight * upperWeight));
        sum = Math.fround(sum + Math.fround(maps[base01 + bin] * (cx * upperWeight)));
        sum = Math.fround(sum + Math.fround(maps[base10 + bin] * (leftWeight * cy)));
        sum = Math.fround(sum + Math.fround(maps[base11 + bin] * (cx * cy)));
        const level = Math.trunc(sum);
        result[outRow + x] = level;
        if (level < low) low = level;
        if (level > high) high = level;
      }
    }
  }
  return { levels: result, low, high };
}

/** Returns the minimum and maximum of 16-bit values, or [Infinity, -Infinity] when there are none. */
function range16(values: Uint16Array): [number, number] {
  let low = Infinity;
  let high = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < low) low = v;
    if (v > high) high = v;
  }
  return [low, high];
}

/**
 * Equalises a 2-D image whose values lie in [0, 1] and returns the result
 * stretched to [0, 1]. `data` contains `height` rows of `width` values. The
 * result equals scikit-image's for the same values given as float64 (float32
 * input makes scikit-image round its last rescale in float32).
 */
export function equalizeAdapthist(data: ArrayLike<number>, width: number, height: number, options: ClaheOptions = {}): Float64Array {
  const count = width * height;
  if (data.length !== count) throw new Error(`Invalid CLAHE input: ${data.length} values for a ${height} x ${width} image`);
  const settings = resolveSettings(width, height, options);

  // img_as_uint: float64 in [0, 1] to uint16, rounded half to even.
  const as16 = new Uint16Array(count);
  for (let i = 0; i < count; i++) {
    const v = data[i];
    if (!(v >= 0 && v <= 1)) throw new Error(`Invalid CLAHE input value ${v} at index ${i}: expected values in [0, 1]`);
    as16[i] = roundHalfEven(v * 65535);
  }
  // rescale_intensity to [0, 2^14 - 1] over the image's own range, rounded half to even, then the bin of each level.
  const [low, high] = range16(as16);
  const pixelBins = new Uint16Array(count);
  for (let i = 0; i < count; i++) {
    const level = high > low
      ? roundHalfEven(((as16[i] - low) / (high - low)) * (GRAY_LEVELS - 1))
      : Math.min(Math.max(as16[i], 0), GRAY_LEVELS - 1);
    pixelBins[i] = Math.floor(level / settings.binSize);
  }

  const { levels: result, low: outLow, high: outHigh } = equalizeBins(pixelBins, width, height, settings);

  // Final rescale_intensity of the float image to [0, 1] over its own range.
  const out = new Float64Array(count);
  if (outHigh > outLow) {
    for (let i = 0; i < count; i++) out[i] = (result[i] - outLow) / (outHigh - outLow);
  } else {
    for (let i = 0; i < count; i++) out[i] = Math.min(Math.max(result[i], 0), 1);
  }
  return out;
}

/**
 * Equalises an 8-bit image after scaling it to [0, 1] by its maximum and
 * returns 8-bit values: the same numbers as scikit-image's
 * `img_as_ubyte(equalize_adapthist(image / image.max()))` on float64, with
 * `img_as_ubyte` rounding x * 255 half to even. An all-zero image stays zero
 * before equalisation, as dividing by its maximum is skipped.
 */
export function equalizeAdapthistUint8(gray: Uint8Array, width: number, height: number, options: ClaheOptions = {}): Uint8Array {
  const count = width * height;
  if (gray.length !== count) throw new Error(`Invalid CLAHE input: ${gray.length} values for a ${height} x ${width} image`);
  const settings = resolveSettings(width, height, options);
  const native = nativeImage();
  // The addon takes finite clip limits only; an infinite one (no clipping) stays in TypeScript.
  if (native !== undefined && count > 0 && Number.isFinite(settings.clipLimit)) {
    return native.clahe8(gray, width, height, settings.kernelRows, settings.kernelCols, settings.nbins, settings.clipLimit);
  }
  return equalizeWithSettings(gray, width, height, settings);
}

/** The TypeScript implementation of `equalizeAdapthistUint8`, whichever path is in effect. */
export function equalizeAdapthistUint8Js(gray: Uint8Array, width: number, height: number, options: ClaheOptions = {}): Uint8Array {
  const count = width * height;
  if (gray.length !== count) throw new Error(`Invalid CLAHE input: ${gray.length} values for a ${height} x ${width} image`);
  return equalizeWithSettings(gray, width, height, resolveSettings(width, height, options));
}

function equalizeWithSettings(gray: Uint8Array, width: number, height: number, settings: ClaheSettings): Uint8Array {
  const count = width * height;
  if (count === 0) return new Uint8Array(0);

  // Every step before the histogram depends on the grey value alone, so one table of 256 bins replaces it.
  let minValue = 255;
  let maxValue = 0;
  for (let i = 0; i < count; i++) {
    const v = gray[i];
    if (v < minValue) minValue = v;
    if (v > maxValue) maxValue = v;
  }
  const as16 = new Float64Array(256);
  for (let v = 0; v < 256; v++) as16[v] = maxValue > 0 ? roundHalfEven((v / maxValue) * 65535) : 0;
  const low = as16[minValue];
  const high = as16[maxValue];
  const binOfValue = new Uint16Array(256);
  for (let v = 0; v < 256; v++) {
    const level = high > low
      ? roundHalfEven(((as16[v] - low) / (high - low)) * (GRAY_LEVELS - 1))
      : Math.min(Math.max(as16[v], 0), GRAY_LEVELS - 1);
    binOfValue[v] = Math.floor(level / settings.binSize);
  }
  const pixelBins = new Uint16Array(count);
  for (let i = 0; i < count; i++) pixelBins[i] = binOfValue[gray[i]];

  const { levels: result, low: outLow, high: outHigh } = equalizeBins(pixelBins, width, height, settings);

  // The blended levels are integers in [outLow, outHigh], so the final rescale is also one table.
  const toByte = new Uint8Array(outHigh - outLow + 1);
  for (let level = outLow; level <= outHigh; level++) {
    const unit = outHigh > outLow ? (level - outLow) / (outHigh - outLow) : Math.min(Math.max(level, 0), 1);
    toByte[level - outLow] = roundHalfEven(unit * 255);
  }
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) out[i] = toByte[result[i] - outLow];
  return out;
}
