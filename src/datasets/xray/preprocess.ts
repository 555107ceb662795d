/**
 * The X-ray preprocessing chain: decode (JPEG, PNG or DICOM) to one grey
 * channel, resize to 224 x 224, scale to [0, 1] by the image maximum, CLAHE
 * (scikit-image `equalize_adapthist` defaults), back to 8 bits, optional
 * training augmentation, normalise with mean 0.499 and std 0.293, and repeat
 * to three channels (HWC float32).
 *
 * Two resize paths, chosen with `XrayPreprocessOptions.resize`:
 * - 'pillow' decodes every image at full size and resizes it with Pillow's
 *   bilinear filter (`resize.ts`), so the 8-bit CLAHE output equals Pillow +
 *   scikit-image bit for bit.
 * - 'fast' (the default), with the native image addon loaded (`native.ts`):
 *   TensorFlow's DecodeJpeg decodes 8-bit JPEGs to grey. It scales them down
 *   in the DCT domain while the decoded sides stay at least twice the output
 *   (`jpegScaleDenominator`), and Pillow's bilinear filter does the rest
 *   (`decodeResizedNatively`). That saves most of the decoding time of
 *   full-size JPEG radiographs, and moves the final 8-bit values of a 2000 x
 *   2000 one by 1.2 grey levels on average. 8-bit RGB(A) PNGs go through
 *   TensorFlow's DecodePng and grey PNGs through `decodeSimplePng`; both
 *   then take the Pillow-exact resize, so PNGs equal the 'pillow' path.
 *   Without the addon, libvips decodes 8-bit JPEGs and RGB PNGs at least as
 *   large as the output straight to the output size
 *   (`decodeResizedWithLibvips`: shrink-on-load, then its linear kernel),
 *   0.98 to 1.28 grey levels off on the test radiographs.
 * 16-bit PNGs and DICOM files take the Pillow-exact path under both options.
 * libvips would round the resized 16-bit samples to integers, where the
 * reference keeps them as float32 (Pillow mode 'F'), and DICOM pixels are
 * decoded in JavaScript at full size anyway.
 *
 * The resize and CLAHE kernels run in the native addon when it is loaded,
 * with the same results as their TypeScript versions.
 */

import * as path from 'path';
import { Rng } from '../../util/rng';
import { augmentXray, XrayAugmentOptions } from './augment';
import { ClaheOptions, equalizeAdapthist, equalizeAdapthistUint8, roundHalfEven } from './clahe';
import { decodeDicom, DicomDecodeOptions } from './dicom';
import {
  decodeImageBuffer, decodeResizedNatively, decodeResizedWithLibvips, GrayImage, readFileOrThrow, resizesWithLibvips, XrayDecodeError,
} from './image';
import { nativeImage } from './native';
import { resizeGray } from './resize';

export const XRAY_SIZE = 224;
export const XRAY_MEAN = 0.499;
export const XRAY_STD = 0.293;

/** True when the bytes start a DICOM data set: "DICM" after the preamble, or a plausible first element tag. */
export function looksLikeDicom(bytes: Uint8Array): boolean {
  if (bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d) return true;
  if (bytes.length < 8) return false;
  // A bare data set starts with a low group number (0002, 0008 or 0010 in practice), little endian.
  const group = bytes[0] | (bytes[1] << 8);
  return bytes[1] === 0 && group >= 0x0002 && group <= 0x0010 && group % 2 === 0;
}

function isDicomFile(filePath: string, bytes: Uint8Array): boolean {
  const extension = path.extname(filePath).toLowerCase();
  return extension === '.dcm' || extension === '.dicom' || looksLikeDicom(bytes);
}

/** Decodes a radiograph file (JPEG, PNG or DICOM, chosen by content) into one grey channel at full size. */
export async function decodeXrayFile(filePath: string, dicomOptions: DicomDecodeOptions = {}): Promise<GrayImage> {
  const bytes = readFileOrThrow(filePath);
  if (isDicomFile(filePath, bytes)) return decodeDicom(bytes, filePath, dicomOptions);
  return decodeImageBuffer(bytes, filePath);
}

/** The resize paths of the preprocessing; see the top of this file. */
export const XRAY_RESIZE_MODES = ['fast', 'pillow'] as const;
export type XrayResizeMode = (typeof XRAY_RESIZE_MODES)[number];

export interface XrayResizeOptions {
  /** Output side in pixels; default 224. */
  size?: number;
  /** 'fast' (default) or 'pillow'; see the top of this file. */
  resize?: XrayResizeMode;
  dicom?: DicomDecodeOptions;
}

/**
 * Decodes a radiograph file and resizes it to `size` x `size` along the
 * chosen path: 8-bit images come back as `Uint8Array`, 16-bit images and
 * DICOM files as `Float32Array` (Pillow's mode 'F').
 */
export async function decodeXrayFileResized(filePath: string, options: XrayResizeOptions = {}): Promise<GrayImage> {
  const size = options.size ?? XRAY_SIZE;
  const mode = options.resize ?? 'fast';
  if (!XRAY_RESIZE_MODES.includes(mode)) {
    throw new Error(`Invalid X-ray resize mode "${String(mode)}": expected one of ${XRAY_RESIZE_MODES.join(', ')}`);
  }
  const bytes = readFileOrThrow(filePath);
  if (isDicomFile(filePath, bytes)) return resizeGray(decodeDicom(bytes, filePath, options.dicom), size, size);
  if (mode === 'fast') {
    if (nativeImage() !== undefined) {
      const decoded = decodeResizedNatively(bytes, filePath, size, size);
      if (decoded !== undefined) return decoded;
    } else if (resizesWithLibvips(bytes, size, size)) {
      return decodeResizedWithLibvips(bytes, filePath, size, size);
    }
  }
  return resizeGray(await decodeImageBuffer(bytes, filePath), size, size);
}

/** Scales an image to [0, 1] by its maximum (float64); an all-zero image stays zero. */
export function scaleToUnit(image: GrayImage): Float64Array {
  let max = 0;
  for (let i = 0; i < image.data.length; i++) if (image.data[i] > max) max = image.data[i];
  const out = new Float64Array(image.data.length);
  if (max <= 0) return out;
  for (let i = 0; i < out.length; i++) out[i] = Math.max(image.data[i], 0) / max;
  return out;
}

export interface XrayPreprocessOptions extends XrayResizeOptions {
  clahe?: ClaheOptions;
  /** Seeded generator for training augmentation; no augmentation when absent. */
  augment?: { rng: Rng; options?: XrayAugmentOptions };
}

/**
 * Runs the Pillow-exact resize (skipped when the image already has the
 * size), [0, 1] scaling, CLAHE and conversion back to 8 bits (scikit-image
 * `img_as_ubyte`: x * 255 rounded half to even) on a decoded image.
 */
export function claheUint8(image: GrayImage, size = XRAY_SIZE, clahe: ClaheOptions = {}): Uint8Array {
  const resized = image.width === size && image.height === size ? image : resizeGray(image, size, size);
  if (resized.data instanceof Uint8Array) return equalizeAdapthistUint8(resized.data, size, size, clahe);
  const unit = scaleToUnit(resized);
  const equalised = equalizeAdapthist(unit, size, size, clahe);
  const out = new Uint8Array(equalised.length);
  for (let i = 0; i < out.length; i++) out[i] = roundHalfEven(equalised[i] * 255);
  return out;
}

/**
 * Reads a radiograph file and returns its 8-bit CLAHE image, `size` x `size`:
 * decode, resize along `options.resize`, [0, 1] scaling, CLAHE and conversion
 * back to 8 bits. Decoding and CLAHE errors name the file.
 */
export async function claheXrayFile(filePath: string, options: Omit<XrayPreprocessOptions, 'augment'> = {}): Promise<Uint8Array> {
  const size = options.size ?? XRAY_SIZE;
  const resized = await decodeXrayFileResized(filePath, options);
  try {
    return claheUint8(resized, size, options.clahe);
  } catch (error) {
    throw new XrayDecodeError(`Cannot preprocess X-ray ${filePath}: ${(error as Error).message}`);
  }
}

/** Normalises 8-bit grey values (or [0, 1] values when `unit` is true) and repeats them to three channels, HWC. */
export function normaliseToRgb(gray: ArrayLike<number>, unit = false): Float32Array {
  const out = new Float32Array(gray.length * 3);
  const scale = unit ? 1 : 1 / 255;
  for (let i = 0; i < gray.length; i++) {
    const value = (gray[i] * scale - XRAY_MEAN) / XRAY_STD;
    out[i * 3] = value;
    out[i * 3 + 1] = value;
    out[i * 3 + 2] = value;
  }
  return out;
}

/**
 * Reads and preprocesses one radiograph into a [size, size, 3] float32 array
 * (row-major HWC), ready for the ViT encoder.
 */
export async function preprocessXrayFile(filePath: string, options: XrayPreprocessOptions = {}): Promise<Float32Array> {
  const size = options.size ?? XRAY_SIZE;
  const gray = await claheXrayFile(filePath, options);
  if (options.augment === undefined) return normaliseToRgb(gray);
  const unit = new Float32Array(gray.length);
  for (let i = 0; i < gray.length; i++) unit[i] = gray[i] / 255;
  return normaliseToRgb(augmentXray(unit, size, size, options.augment.rng, options.augment.options), true);
}
