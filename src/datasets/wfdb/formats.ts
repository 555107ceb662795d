/**
 * Decoders for the WFDB signal storage formats. Each decoder turns the bytes of
 * one signal file into a flat stream of digital samples, interleaved by signal
 * exactly as stored. The record reader then splits the stream into signals.
 */

import { WfdbError } from './header';

export const SUPPORTED_FORMATS = [16, 212, 80, 24, 32, 61, 160, 310, 311] as const;

/** The digital value each format reserves for an invalid (missing) sample; it becomes NaN in physical units. */
export const INVALID_SAMPLE_VALUE: Readonly<Record<number, number>> = {
  16: -32768,
  61: -32768,
  160: -32768,
  24: -(2 ** 23),
  32: -(2 ** 31),
  80: -128,
  212: -2048,
  310: -512,
  311: -512,
};

function checkFormat(format: number, source: string): void {
  if (!(SUPPORTED_FORMATS as readonly number[]).includes(format)) {
    throw new WfdbError(
      `${source}: unsupported WFDB signal format ${format}; supported formats are ${SUPPORTED_FORMATS.join(', ')}`,
    );
  }
}

/** Returns the number of bytes that `count` samples of `format` occupy. */
export function bytesForSamples(format: number, count: number, source = 'signal file'): number {
  checkFormat(format, source);
  switch (format) {
    case 80:
      return count;
    case 16:
    case 61:
    case 160:
      return 2 * count;
    case 24:
      return 3 * count;
    case 32:
      return 4 * count;
    case 212:
      // Two samples share three bytes; a lone last sample uses two.
      return Math.ceil(count * 1.5);
    default: {
      // Formats 310 and 311 pack three samples into four bytes. A trailing pair
      // needs the whole group in format 310 (the third sample's bits sit in both
      // words) but only three bytes in format 311.
      const remainder = count % 3;
      const whole = Math.floor(count / 3) * 4;
      if (remainder === 0) return whole;
      if (remainder === 1) return whole + 2;
      return whole + (format === 310 ? 4 : 3);
    }
  }
}

function signExtend(value: number, bits: number): number {
  const shift = 32 - bits;
  return (value << shift) >> shift;
}

/**
 * Decodes `count` samples of `format` from `bytes`, starting at `offset`.
 * The caller checks that enough bytes are present (see `bytesForSamples`).
 */
export function decodeSamples(bytes: Uint8Array, offset: number, count: number, format: number, source: string): Int32Array {
  checkFormat(format, source);
  const out = new Int32Array(count);
  const b = bytes;
  let p = offset;
  switch (format) {
    case 16:
      for (let i = 0; i < count; i++, p += 2) out[i] = ((b[p] | (b[p + 1] << 8)) << 16) >> 16;
      break;
    case 61:
      for (let i = 0; i < count; i++, p += 2) out[i] = (((b[p] << 8) | b[p + 1]) << 16) >> 16;
      break;
    case 160:
      for (let i = 0; i < count; i++, p += 2) out[i] = (b[p] | (b[p + 1] << 8)) - 32768;
      break;
    case 80:
      for (let i = 0; i < count; i++, p++) out[i] = b[p] - 128;
      break;
    case 24:
      for (let i = 0; i < count; i++, p += 3) out[i] = signExtend(b[p] | (b[p + 1] << 8) | (b[p + 2] << 16), 24);
      break;
    case 32:
      for (let i = 0; i < count; i++, p += 4) out[i] = b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24);
      break;
    case 212:
      // Sample 0: byte 0 and the low nibble of byte 1; sample 1: byte 2 and the high nibble of byte 1.
      for (let i = 0; i < count; i += 2, p += 3) {
        out[i] = signExtend(b[p] | ((b[p + 1] & 0x0f) << 8), 12);
        if (i + 1 < count) out[i + 1] = signExtend(b[p + 2] | ((b[p + 1] >> 4) << 8), 12);
      }
      break;
    case 310:
      // Two little-endian 16-bit words per group: samples 0 and 1 are bits 1-10 of
      // each word, sample 2 joins bits 11-15 of the first word (low half) and of the second.
      for (let i = 0; i < count; i += 3, p += 4) {
        const word0 = b[p] | (b[p + 1] << 8);
        out[i] = signExtend((word0 >> 1) & 0x3ff, 10);
        if (i + 1 < count) {
          const word1 = b[p + 2] | (b[p + 3] << 8);
          out[i + 1] = signExtend((word1 >> 1) & 0x3ff, 10);
          if (i + 2 < count) out[i + 2] = signExtend(((word0 >> 11) & 0x1f) | (((word1 >> 11) & 0x1f) << 5), 10);
        }
      }
      break;
    case 311:
      // One little-endian 32-bit word per group, samples in bits 0-9, 10-19 and 20-29.
      for (let i = 0; i < count; i += 3, p += 4) {
        out[i] = signExtend(b[p] | ((b[p + 1] & 0x03) << 8), 10);
        if (i + 1 < count) out[i + 1] = signExtend((b[p + 1] >> 2) | ((b[p + 2] & 0x0f) << 6), 10);
        if (i + 2 < count) out[i + 2] = signExtend((b[p + 2] >> 4) | ((b[p + 3] & 0x3f) << 4), 10);
      }
      break;
  }
  return out;
}
