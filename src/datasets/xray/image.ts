/**
 * One-channel radiograph in memory, and the decoding of JPEG and PNG files
 * into it with sharp (libvips). Pixel values are kept exactly as stored:
 * 8-bit files give `Uint8Array`, 16-bit files `Uint16Array`.
 */

import * as fs from 'fs';
import sharp, { Metadata } from 'sharp';

/** A grey-level image stored row by row (row-major, `height` rows of `width` values). */
export interface GrayImage {
  width: number;
  height: number;
  /** Stored values: 8-bit, 16-bit, or real-valued (DICOM after rescale and window). */
  data: Uint8Array | Uint16Array | Float32Array;
}

/** Error raised when an X-ray file cannot be read or decoded; the message names the file. */
export class XrayDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XrayDecodeError';
  }
}

/**
 * Converts interleaved 8-bit RGB(A) samples to grey with the ITU-R 601-2 luma
 * weights in the same 16-bit fixed point as Pillow's `convert('L')`, so grey
 * values equal Pillow's exactly. `channels` is 3 or 4 (alpha is ignored).
 */
export function rgbToGray8(rgb: Uint8Array, width: number, height: number, channels: number): Uint8Array {
  const out = new Uint8Array(width * height);
  for (let i = 0, j = 0; i < out.length; i++, j += channels) {
    out[i] = (rgb[j] * 19595 + rgb[j + 1] * 38470 + rgb[j + 2] * 7471 + 0x8000) >>> 16;
  }
  return out;
}

/** Converts interleaved 16-bit RGB(A) samples to grey with the ITU-R 601-2 luma weights, rounded. */
function rgbToGray16(rgb: Uint16Array, width: number, height: number, channels: number): Uint16Array {
  const out = new Uint16Array(width * height);
  for (let i = 0, j = 0; i < out.length; i++, j += channels) {
    out[i] = Math.round(rgb[j] * 0.299 + rgb[j + 1] * 0.587 + rgb[j + 2] * 0.114);
  }
  return out;
}

/** Reads 16-bit samples that sharp wrote in the machine's byte order (libvips keeps native order). */
function nativeUint16(buffer: Buffer): Uint16Array {
  const copy = new Uint8Array(buffer.length);
  copy.set(buffer);
  return new Uint16Array(copy.buffer, 0, buffer.length / 2);
}

/**
 * Decodes a JPEG or PNG radiograph into one grey channel. 8-bit files keep
 * their bytes, and colour copies of grey radiographs are converted with
 * Pillow's luma formula. 16-bit PNG samples (stored big-endian in the file)
 * come back as their numeric values. `source` names the input in errors.
 */
export async function decodeImageBuffer(buffer: Buffer, source: string): Promise<GrayImage> {
  let metadata: Metadata;
  try {
    metadata = await sharp(buffer).metadata();
  } catch (error) {
    throw new XrayDecodeError(`Cannot decode X-ray image ${source}: ${(error as Error).message}`);
  }
  const { format, depth, channels } = metadata;
  if (format !== 'jpeg' && format !== 'png') {
    throw new XrayDecodeError(`Unsupported X-ray image format "${format}" in ${source}: expected JPEG, PNG or DICOM`);
  }
  if (channels === undefined || channels < 1 || channels > 4) {
    throw new XrayDecodeError(`Unsupported channel count ${channels} in ${source}: expected 1 to 4 channels`);
  }
  const sixteenBit = depth === 'ushort';
  try {
    if (sixteenBit) {
      // Without an explicit 16-bit colour space, libvips would convert to 8-bit sRGB on raw output.
      const space = channels >= 3 ? 'rgb16' : 'grey16';
      const { data, info } = await sharp(buffer, { failOn: 'error' })
        .toColourspace(space)
        .raw({ depth: 'ushort' })
        .toBuffer({ resolveWithObject: true });
      const samples = nativeUint16(data);
      const gray = info.channels === 1 ? samples
        : info.channels === 2 ? pickFirstChannel16(samples, info.channels)
          : rgbToGray16(samples, info.width, info.height, info.channels);
      return { width: info.width, height: info.height, data: gray };
    }
    const { data, info } = await sharp(buffer, { failOn: 'error' }).raw().toBuffer({ resolveWithObject: true });
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.length);
    let gray: Uint8Array;
    if (info.channels === 1) gray = bytes;
    else if (info.channels === 2) gray = pickFirstChannel8(bytes, info.channels);
    else gray = rgbToGray8(bytes, info.width, info.height, info.channels);
    return { width: info.width, height: info.height, data: gray };
  } catch (error) {
    throw new XrayDecodeError(`Cannot decode X-ray image ${source}: ${(error as Error).message}`);
  }
}

function pickFirstChannel8(samples: Uint8Array, channels: number): Uint8Array {
  const out = new Uint8Array(samples.length / channels);
  for (let i = 0; i < out.length; i++) out[i] = samples[i * channels];
  return out;
}

function pickFirstChannel16(samples: Uint16Array, channels: number): Uint16Array {
  const out = new Uint16Array(samples.length / channels);
  for (let i = 0; i < out.length; i++) out[i] = samples[i * channels];
  return out;
}

/** Reads a whole file, naming it in the error when it is missing or unreadable. */
export function readFileOrThrow(filePath: string): Buffer {
  try {
    return fs.readFileSync(filePath);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'file not found' : (error as Error).message;
    throw new XrayDecodeError(`Cannot read X-ray file ${filePath}: ${reason}`);
  }
}
