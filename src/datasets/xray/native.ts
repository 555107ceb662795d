/**
 * Loader of the native image addon (`native/image`, built by
 * `scripts/setup/native-image.js` into `native/image/build/more_image.node`).
 * The addon runs the X-ray kernels in C++: CLAHE (a port of `clahe.ts`),
 * Pillow's bilinear resize (a port of `resize.ts`), Pillow's grey conversion,
 * and JPEG/PNG decoding through TensorFlow's DecodeJpeg and DecodePng kernels
 * in the TensorFlow library that tfjs-node loads. The CLAHE and resize ports
 * give the same numbers as the TypeScript, bit for bit.
 *
 * `MORE_TS_NATIVE_IMAGE` chooses the path: unset or `auto` uses the addon
 * when it loads and the TypeScript kernels otherwise, `0` always uses the
 * TypeScript kernels, and `1` requires the addon (an error when it cannot be
 * loaded). The first call logs which path is in effect. Loading also works
 * in worker threads, since the addon is context-aware.
 */

import * as fs from 'fs';
import * as path from 'path';
import { getLogger } from '../../util/log';

/** A grey 8-bit image returned by the addon's decoders. */
export interface NativeGrayImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** The functions that `native/image/src/addon.cc` exports. */
export interface NativeImageAddon {
  /** CLAHE of an 8-bit image with validated settings, as `equalizeAdapthistUint8`. */
  clahe8(gray: Uint8Array, width: number, height: number, kernelRows: number, kernelCols: number, nbins: number, clipLimit: number): Uint8Array;
  /** Pillow's bilinear resize of a mode 'L' image. */
  resize8(src: Uint8Array, width: number, height: number, outWidth: number, outHeight: number): Uint8Array;
  /** Pillow's bilinear resize of a mode 'F' image. */
  resizeFloat(src: Float32Array | Uint16Array | Uint8Array, width: number, height: number, outWidth: number, outHeight: number): Float32Array;
  /** Pillow's `convert('L')` of interleaved RGB (3 channels) or RGBA (4 channels) samples. */
  rgbToGray8(samples: Uint8Array, width: number, height: number, channels: number): Uint8Array;
  /**
   * Decodes a JPEG to grey scaled by 1 / `ratio` in the DCT domain, then
   * resizes it with Pillow's bilinear filter when an output size is given.
   * `channels` 1 decodes libjpeg's luma directly, and 3 decodes RGB and
   * converts it with Pillow's grey formula. Both use the accurate integer
   * IDCT. Throws TensorFlow's message for data it cannot decode.
   */
  decodeJpegGray(bytes: Uint8Array, ratio: 1 | 2 | 4 | 8, channels: 1 | 3, outWidth?: number, outHeight?: number): NativeGrayImage;
  /**
   * Decodes an 8-bit PNG, converts it to grey as `toGray8` in image.ts does
   * and resizes it with Pillow's bilinear filter when an output size is given.
   */
  decodePngGray(bytes: Uint8Array, outWidth?: number, outHeight?: number): NativeGrayImage;
  /** Version of the TensorFlow library the addon runs on. */
  tensorflowVersion(): string;
}

const ADDON_RELATIVE_PATH = path.join('native', 'image', 'build', 'more_image.node');
const SETTINGS = ['auto', '0', '1'] as const;

const logger = getLogger('datasets.xray');

/** Addon after the first lookup: the module, or null when the TypeScript kernels are in effect. */
let loaded: NativeImageAddon | null | undefined;

/** Finds the addon above this file: from `src/datasets/xray` in the sources, from `dist/src/datasets/xray` when built. */
function findAddon(): string | undefined {
  let dir = __dirname;
  for (let level = 0; level < 6; level++) {
    const candidate = path.join(dir, ADDON_RELATIVE_PATH);
    if (fs.existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  return undefined;
}

function readSetting(): (typeof SETTINGS)[number] {
  const value = (process.env.MORE_TS_NATIVE_IMAGE ?? 'auto').toLowerCase() || 'auto';
  if (!(SETTINGS as readonly string[]).includes(value)) {
    throw new Error(`Invalid MORE_TS_NATIVE_IMAGE "${process.env.MORE_TS_NATIVE_IMAGE}": expected one of ${SETTINGS.join(', ')}`);
  }
  return value as (typeof SETTINGS)[number];
}

function load(): NativeImageAddon | null {
  const setting = readSetting();
  if (setting === '0') {
    logger.info('X-ray kernels: TypeScript (MORE_TS_NATIVE_IMAGE=0)');
    return null;
  }
  const file = findAddon();
  let reason: string;
  if (file === undefined) {
    reason = `${ADDON_RELATIVE_PATH} was not found; run \`node scripts/setup/native-image.js\` to build it`;
  } else {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      // TensorFlow prints start-up notices on stderr when the addon loads it first; keep warnings and errors.
      process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
      const addon = require(file) as NativeImageAddon;
      logger.info(`X-ray kernels: native addon ${file} (TensorFlow ${addon.tensorflowVersion()} decoders)`);
      return addon;
    } catch (error) {
      reason = `${file} failed to load: ${(error as Error).message}`;
    }
  }
  if (setting === '1') throw new Error(`MORE_TS_NATIVE_IMAGE=1 requires the native image addon, but ${reason}`);
  logger.warn(`X-ray kernels: TypeScript, slower, because ${reason}`);
  return null;
}

/**
 * Returns the native addon, or undefined when the TypeScript kernels are in effect (see the top of this file).
 *
 * NOTE: the addon is linked against tfjs-node's CPU library, whose file name (soname
 * libtensorflow_cc.so.2) the CUDA build of tfjs-node-gpu shares. Loaded after the GPU backend, the
 * addon runs on the GPU build's library. Loaded before it, it brings in the CPU build, so the GPU
 * addon would then load the CPU library too. With the GPU backend, call `initBackend()` before the
 * first X-ray. This order was reasoned from the dynamic loader's rules, not tried on a GPU machine.
 */
export function nativeImage(): NativeImageAddon | undefined {
  if (loaded === undefined) loaded = load();
  return loaded ?? undefined;
}
