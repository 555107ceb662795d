/**
 * The X-ray preprocessing chain: decode (JPEG, PNG or DICOM) to one grey
 * channel, resize to 224 x 224 with Pillow's bilinear filter, scale to [0, 1]
 * by the image maximum, CLAHE (scikit-image `equalize_adapthist` defaults),
 * back to 8 bits, optional training augmentation, normalise with mean 0.499
 * and std 0.293, and repeat to three channels (HWC float32).
 */

import * as path from 'path';
import { Rng } from '../../util/rng';
import { augmentXray, XrayAugmentOptions } from './augment';
import { ClaheOptions, equalizeAdapthist, roundHalfEven } from './clahe';
import { decodeDicom, DicomDecodeOptions } from './dicom';
import { decodeImageBuffer, GrayImage, readFileOrThrow, XrayDecodeError } from './image';
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

/** Decodes a radiograph file (JPEG, PNG or DICOM, chosen by content) into one grey channel. */
export async function decodeXrayFile(filePath: string, dicomOptions: DicomDecodeOptions = {}): Promise<GrayImage> {
  const bytes = readFileOrThrow(filePath);
  const extension = path.extname(filePath).toLowerCase();
  if (extension === '.dcm' || extension === '.dicom' || looksLikeDicom(bytes)) {
    return decodeDicom(bytes, filePath, dicomOptions);
  }
  return decodeImageBuffer(bytes, filePath);
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

export interface XrayPreprocessOptions {
  /** Output side in pixels; default 224. */
  size?: number;
  clahe?: ClaheOptions;
  dicom?: DicomDecodeOptions;
  /** Seeded generator for training augmentation; no augmentation when absent. */
  augment?: { rng: Rng; options?: XrayAugmentOptions };
}

/**
 * Runs resize, [0, 1] scaling, CLAHE and conversion back to 8 bits
 * (scikit-image `img_as_ubyte`: x * 255 rounded half to even) on a decoded image.
 */
export function claheUint8(image: GrayImage, size = XRAY_SIZE, clahe: ClaheOptions = {}): Uint8Array {
  const resized = resizeGray(image, size, size);
  const unit = scaleToUnit(resized);
  const equalised = equalizeAdapthist(unit, size, size, clahe);
  const out = new Uint8Array(equalised.length);
  for (let i = 0; i < out.length; i++) out[i] = roundHalfEven(equalised[i] * 255);
  return out;
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
  const image = await decodeXrayFile(filePath, options.dicom);
  let gray: Uint8Array;
  try {
    gray = claheUint8(image, size, options.clahe);
  } catch (error) {
    throw new XrayDecodeError(`Cannot preprocess X-ray ${filePath}: ${(error as Error).message}`);
  }
  if (options.augment === undefined) return normaliseToRgb(gray);
  const unit = new Float32Array(gray.length);
  for (let i = 0; i < gray.length; i++) unit[i] = gray[i] / 255;
  return normaliseToRgb(augmentXray(unit, size, size, options.augment.rng, options.augment.options), true);
}
