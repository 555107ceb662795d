/**
 * One-channel radiograph in memory, and the decoding of JPEG and PNG files
 * into it. Pixel values are kept exactly as stored: 8-bit files give
 * `Uint8Array`, 16-bit files `Uint16Array`. 8-bit grey PNGs are decoded by
 * `decodeSimplePng` (zlib on the calling thread). When the native image
 * addon is loaded (`native.ts`), 8-bit RGB and RGBA PNGs go to TensorFlow's
 * DecodePng (lossless, then Pillow's grey formula). 8-bit grey and YCbCr
 * JPEGs go to its DecodeJpeg with the accurate integer IDCT, colour ones
 * decoded to RGB and then converted with Pillow's grey formula. Both give the
 * same values as Pillow's decoding. Every other file is decoded by sharp (libvips). None of
 * them applies an embedded ICC profile or gamma, and Pillow does not either.
 */

import * as fs from 'fs';
import sharp, { Metadata } from 'sharp';
import { nativeImage } from './native';
import { decodeSimplePng, hasChunkBeforeImageData, PngHeader, readPngHeader } from './png';

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
  // Grey PNGs decode faster in JavaScript than through a libvips call. RGB PNGs are left to libvips,
  // which undoes their (mostly Paeth) filters on three times as many bytes faster than JavaScript does.
  const png = readPngHeader(buffer);
  const frame = png === undefined ? readJpegFrame(buffer) : undefined;
  checkPixelCount(png ?? frame, source);
  if (png !== undefined && (png.colorType === 0 || png.colorType === 4)) {
    const decoded = decodeSimplePng(buffer, source);
    if (decoded !== undefined) {
      return { width: decoded.width, height: decoded.height, data: toGray8(decoded.data, decoded.width, decoded.height, decoded.channels) };
    }
  }

  const native = nativeImage();
  if (native !== undefined && png !== undefined && isColourPng8(png)) {
    return decodeNatively(source, () => native.decodePngGray(buffer));
  }
  // TensorFlow 2.21 and Pillow 13 both decode JPEGs with libjpeg-turbo: the accurate integer IDCT,
  // fancy chroma upsampling and the YCbCr to RGB tables, all integer arithmetic fixed by the library.
  // So both give the same bytes, and xray-native.test.ts checks this on the grey and the colour JPEG.
  if (native !== undefined && frame?.precision === 8 && (frame.components === 1 || frame.components === 3)) {
    return decodeNatively(source, () => native.decodeJpegGray(buffer, 1, frame.components as 1 | 3));
  }

  // The PNG or JPEG header identifies 8-bit files without a metadata call. Other files are checked by sharp.
  const eightBit = png !== undefined ? png.bitDepth <= 8 : frame?.precision === 8;
  const { depth, channels = 1 } = eightBit ? { depth: 'uchar', channels: 1 } : await readImageMetadata(buffer, source);
  try {
    if (depth === 'ushort') {
      // Without an explicit 16-bit colour space, libvips would convert to 8-bit sRGB on raw output.
      const space = channels >= 3 ? 'rgb16' : 'grey16';
      const { data, info } = await sharp(buffer, { failOn: 'error', ignoreIcc: true })
        .toColourspace(space)
        .raw({ depth: 'ushort' })
        .toBuffer({ resolveWithObject: true });
      const samples = nativeUint16(data);
      const gray = info.channels === 1 ? samples
        : info.channels === 2 ? pickFirstChannel16(samples, info.channels)
          : rgbToGray16(samples, info.width, info.height, info.channels);
      return { width: info.width, height: info.height, data: gray };
    }
    const { data, info } = await sharp(buffer, { failOn: 'error', ignoreIcc: true }).raw().toBuffer({ resolveWithObject: true });
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.length);
    return { width: info.width, height: info.height, data: toGray8(bytes, info.width, info.height, info.channels) };
  } catch (error) {
    throw new XrayDecodeError(`Cannot decode X-ray image ${source}: ${(error as Error).message}`);
  }
}

/**
 * Maximum pixel count a JPEG or PNG header may declare. It is Pillow's
 * decompression bomb limit (twice `Image.MAX_IMAGE_PIXELS`), above which the
 * reference raises instead of opening the file. The header is checked before
 * decoding, so a small file that declares huge sides fails without allocating gigabytes.
 */
export const DECOMPRESSION_BOMB_PIXELS = 178956970;

/** Throws `XrayDecodeError` naming `source` when the header declares more than `DECOMPRESSION_BOMB_PIXELS` pixels. */
function checkPixelCount(size: { width: number; height: number } | undefined, source: string): void {
  if (size === undefined || size.width * size.height <= DECOMPRESSION_BOMB_PIXELS) return;
  throw new XrayDecodeError(
    `Cannot decode X-ray image ${source}: its header declares ${size.width} x ${size.height} pixels, ` +
      `expected at most ${DECOMPRESSION_BOMB_PIXELS} (Pillow's decompression bomb limit)`,
  );
}

function isColourPng8(png: PngHeader): boolean {
  return png.bitDepth === 8 && (png.colorType === 2 || png.colorType === 6);
}

/** Runs a decode of the native addon, naming the file in its error. */
function decodeNatively(source: string, decode: () => GrayImage): GrayImage {
  try {
    return decode();
  } catch (error) {
    throw new XrayDecodeError(`Cannot decode X-ray image ${source}: ${(error as Error).message}`);
  }
}

/**
 * Returns the DCT scale denominator (1, 2, 4 or 8) for decoding a JPEG of
 * `width` x `height` on the way to `outWidth` x `outHeight`. It is the largest
 * one whose scaled sides (libjpeg rounds them up) stay at least twice the
 * output, so the bilinear filter still averages two or more decoded pixels
 * per output pixel. Decoding only down to the output size is far less accurate:
 * on the 2000 x 2000 test radiograph, a 1/8-scale decode (250 x 250) ends
 * 4.1 grey levels from the reference after CLAHE, 1/4 (500 x 500) 1.2 levels.
 */
export function jpegScaleDenominator(width: number, height: number, outWidth: number, outHeight: number): 1 | 2 | 4 | 8 {
  for (const ratio of [8, 4, 2] as const) {
    if (Math.ceil(width / ratio) >= 2 * outWidth && Math.ceil(height / ratio) >= 2 * outHeight) return ratio;
  }
  return 1;
}

/**
 * Decodes an 8-bit JPEG (grey or YCbCr) or an 8-bit RGB or RGBA PNG to
 * `width` x `height` grey pixels with the native image addon, or returns
 * undefined for other files and when the TypeScript kernels are in effect.
 *
 * JPEGs go through TensorFlow's DecodeJpeg with one output channel, scaled in
 * the DCT domain by `jpegScaleDenominator`, then Pillow's bilinear resize.
 * NOTE: this is not Pillow's result. The DCT-domain scaling is not a bilinear
 * filter, and libjpeg's luma of a colour JPEG can differ by one level from
 * Pillow's grey conversion of its RGB decode. After CLAHE, which magnifies
 * small differences, the 2000 x 2000 test radiograph (1/4 scale) ends 1.2
 * grey levels from the Pillow-exact path on average, the 685 x 754 colour
 * one (full scale) 0.002 levels. A full-scale grey JPEG comes out equal.
 * PNGs are decoded losslessly, converted with Pillow's grey formula and
 * resized as Pillow does, so they equal the Pillow-exact path.
 */
export function decodeResizedNatively(buffer: Buffer, source: string, width: number, height: number): GrayImage | undefined {
  const native = nativeImage();
  if (native === undefined) return undefined;
  const png = readPngHeader(buffer);
  const frame = png === undefined ? readJpegFrame(buffer) : undefined;
  checkPixelCount(png ?? frame, source);
  if (png !== undefined) {
    return isColourPng8(png) ? decodeNatively(source, () => native.decodePngGray(buffer, width, height)) : undefined;
  }
  if (frame === undefined || frame.precision !== 8 || (frame.components !== 1 && frame.components !== 3)) return undefined;
  const ratio = jpegScaleDenominator(frame.width, frame.height, width, height);
  return decodeNatively(source, () => native.decodeJpegGray(buffer, ratio, 1, width, height));
}

/**
 * True for the files that the fast path hands to `decodeResizedWithLibvips`
 * when the native addon is not loaded:
 * 8-bit JPEGs and 8-bit RGB PNGs without transparency, at least `width` x
 * `height` in size. Grey PNGs are left out, because the JavaScript decoder and
 * the Pillow-exact resize are faster than libvips on them. Transparency is
 * left out because libvips resizes with premultiplied alpha, where Pillow's
 * grey conversion ignores alpha. Smaller images are left out because libvips
 * enlarges with a different interpolation (`vips_affine`) whose closeness to
 * Pillow was not measured.
 */
export function resizesWithLibvips(bytes: Uint8Array, width: number, height: number): boolean {
  const png = readPngHeader(bytes);
  const frame = png === undefined ? readJpegFrame(bytes) : undefined;
  const eligible = png !== undefined
    ? png.bitDepth === 8 && png.colorType === 2 && !hasChunkBeforeImageData(bytes, 'tRNS')
    : frame?.precision === 8;
  const size = png ?? frame;
  return eligible && size !== undefined && size.width >= width && size.height >= height;
}

/**
 * Decodes an 8-bit JPEG or RGB PNG straight to `width` x `height` grey
 * pixels with libvips, which resizes with its linear (triangle) kernel. A
 * JPEG at least 4 times the target on both sides is first decoded at 1/2,
 * 1/4 or 1/8 scale in the DCT domain (shrink-on-load). sharp picks the
 * largest of these scales that leaves at least a factor of 2 for the linear
 * kernel. Colour images are resized in RGB and then converted with Pillow's
 * luma formula.
 *
 * NOTE: this is not Pillow's result. The DCT-domain scaling is not a bilinear
 * filter, libvips rounds its fixed-point weights differently, and it extends
 * the edge pixels where Pillow renormalises its filter window. After CLAHE,
 * which magnifies small differences, the output differs from the
 * Pillow-exact path by about one grey level on average.
 */
export async function decodeResizedWithLibvips(buffer: Buffer, source: string, width: number, height: number): Promise<GrayImage> {
  const png = readPngHeader(buffer);
  const jpeg = png === undefined ? readJpegFrame(buffer) : undefined;
  checkPixelCount(png ?? jpeg, source);
  if ((png === undefined || png.bitDepth !== 8 || png.colorType !== 2) && jpeg?.precision !== 8) {
    throw new XrayDecodeError(`Cannot resize ${source} with libvips: expected an 8-bit JPEG or an 8-bit RGB PNG`);
  }
  try {
    let pipeline = sharp(buffer, { failOn: 'error', ignoreIcc: true })
      .resize(width, height, { fit: 'fill', kernel: 'linear', fastShrinkOnLoad: false });
    // libvips writes grey JPEGs as sRGB unless the output colour space is set.
    if (jpeg?.components === 1) pipeline = pipeline.toColourspace('b-w');
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.length);
    return { width: info.width, height: info.height, data: toGray8(bytes, info.width, info.height, info.channels) };
  } catch (error) {
    throw new XrayDecodeError(`Cannot decode X-ray image ${source}: ${(error as Error).message}`);
  }
}

/** The start-of-frame fields of a JPEG that the preprocessing needs. */
export interface JpegFrame {
  width: number;
  height: number;
  /** Colour components: 1 for grey, 3 for YCbCr or RGB, 4 for CMYK. */
  components: number;
  /** Bits per sample: 8, or 12 for extended-process files (which libvips cannot decode). */
  precision: number;
}

/**
 * Reads the first start-of-frame segment of a JPEG (any process: baseline,
 * progressive, lossless). Returns undefined when there is none before the
 * scan data, so that the decoder reports what is wrong.
 */
export function readJpegFrame(bytes: Uint8Array): JpegFrame | undefined {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return undefined;
  let offset = 2;
  while (offset + 10 <= bytes.length) {
    if (bytes[offset] !== 0xff) return undefined;
    const marker = bytes[offset + 1];
    // Fill bytes and markers without a length field.
    if (marker === 0xff) {
      offset += 1;
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      offset += 2;
      continue;
    }
    // Start of scan or end of image: no frame header came first.
    if (marker === 0xda || marker === 0xd9) return undefined;
    const length = (bytes[offset + 2] << 8) | bytes[offset + 3];
    // SOF0 to SOF15, except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      const height = (bytes[offset + 5] << 8) | bytes[offset + 6];
      const width = (bytes[offset + 7] << 8) | bytes[offset + 8];
      return { width, height, components: bytes[offset + 9], precision: bytes[offset + 4] };
    }
    offset += 2 + length;
  }
  return undefined;
}

/** Reads the format, bit depth and channel count with sharp, raising `XrayDecodeError` for anything but a 1- to 4-channel JPEG or PNG. */
async function readImageMetadata(buffer: Buffer, source: string): Promise<Metadata> {
  let metadata: Metadata;
  try {
    metadata = await sharp(buffer).metadata();
  } catch (error) {
    throw new XrayDecodeError(`Cannot decode X-ray image ${source}: ${(error as Error).message}`);
  }
  const { format, channels } = metadata;
  if (format !== 'jpeg' && format !== 'png') {
    throw new XrayDecodeError(`Unsupported X-ray image format "${format}" in ${source}: expected JPEG, PNG or DICOM`);
  }
  if (channels === undefined || channels < 1 || channels > 4) {
    throw new XrayDecodeError(`Unsupported channel count ${channels} in ${source}: expected 1 to 4 channels`);
  }
  return metadata;
}

/** Reduces interleaved 8-bit samples to grey: the first channel of grey + alpha, Pillow's luma for RGB(A). */
function toGray8(samples: Uint8Array, width: number, height: number, channels: number): Uint8Array {
  if (channels === 1) return samples;
  if (channels === 2) return pickFirstChannel8(samples, channels);
  return rgbToGray8(samples, width, height, channels);
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
