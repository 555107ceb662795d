/**
 * Reading and writing the safetensors format (Hugging Face). A file starts
 * with an unsigned 64-bit little-endian header length N. N bytes of UTF-8
 * JSON follow, mapping each tensor name to `{dtype, shape, data_offsets}` and
 * optionally `__metadata__` to an object of strings. The raw little-endian
 * tensor bytes come last, and data_offsets count from their start.
 *
 * Reading validates the whole header before any tensor is decoded, and every
 * error names the file and, where one is involved, the tensor.
 */
import * as fs from 'fs';
import * as os from 'os';

import { writeFileAtomic } from '../util/atomic';

/** Dtypes this reader decodes. F32, F16 and BF16 can also be written. */
export const SAFETENSORS_DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'] as const;
export type SafetensorsDtype = (typeof SAFETENSORS_DTYPES)[number];

/** Dtypes the writer produces. */
export const WRITABLE_DTYPES = ['F32', 'F16', 'BF16'] as const;
export type WritableDtype = (typeof WRITABLE_DTYPES)[number];

const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/** One tensor's entry in the header. */
export interface SafetensorsEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte range [begin, end) inside the data area. */
  dataOffsets: [number, number];
}

/** A decoded tensor: its values widened to float32 (integers and booleans included), plus its stored dtype. */
export interface DecodedTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array;
}

/** A tensor to write: float32 values that the writer narrows to `dtype`. */
export interface TensorToWrite {
  dtype: WritableDtype;
  shape: number[];
  data: Float32Array;
}

const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const LITTLE_ENDIAN_HOST = os.endianness() === 'LE';

// ---------------------------------------------------------------------------
// Half-precision conversions (IEEE 754 binary16 and bfloat16).

const conversionView = new DataView(new ArrayBuffer(4));

/** Converts an IEEE binary16 bit pattern to a number. */
export function float16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : Number.NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** Converts a number to the nearest IEEE binary16 bit pattern (round half to even; overflow becomes infinity). */
export function numberToFloat16Bits(value: number): number {
  conversionView.setFloat32(0, value, true);
  const x = conversionView.getUint32(0, true);
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  // Re-bias from float32 (127) to float16 (15).
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // Subnormal half (or zero): shift the mantissa with its implicit leading one.
    if (halfExponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - halfExponent;
    let half = mantissa >>> shift;
    const remainder = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (remainder > halfway || (remainder === halfway && (half & 1) === 1)) half += 1;
    return sign | half;
  }
  let half = (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent, up to infinity.
  if (remainder > 0x1000 || (remainder === 0x1000 && (half & 1) === 1)) half += 1;
  return sign | half;
}

/** Converts a bfloat16 bit pattern (the upper half of a float32) to a number. */
export function bfloat16BitsToNumber(bits: number): number {
  conversionView.setUint32(0, (bits & 0xffff) << 16, true);
  return conversionView.getFloat32(0, true);
}

/** Converts a number to the nearest bfloat16 bit pattern (round half to even on the float32 bits). */
export function numberToBfloat16Bits(value: number): number {
  conversionView.setFloat32(0, value, true);
  const x = conversionView.getUint32(0, true);
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  const rounding = 0x7fff + ((x >>> 16) & 1);
  return ((x + rounding) >>> 16) & 0xffff;
}

/** Rounds float32 values to the given storage dtype and back, as a save in that dtype would. */
export function roundToDtype(values: Float32Array, dtype: WritableDtype): Float32Array {
  if (dtype === 'F32') return values.slice();
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    out[i] = dtype === 'F16'
      ? float16BitsToNumber(numberToFloat16Bits(values[i]))
      : bfloat16BitsToNumber(numberToBfloat16Bits(values[i]));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Reading.

/** Random access to a file's bytes. */
interface ByteSource {
  size: number;
  read(offset: number, length: number): Uint8Array;
  close(): void;
}

function bufferSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    read: (offset, length) => bytes.subarray(offset, offset + length),
    close: () => undefined,
  };
}

function fileSource(file: string): ByteSource {
  const fd = fs.openSync(file, 'r');
  const size = fs.fstatSync(fd).size;
  return {
    size,
    read: (offset, length) => {
      const buffer = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const count = fs.readSync(fd, buffer, done, length - done, offset + done);
        if (count === 0) throw new Error(`${file}: unexpected end of file at byte ${offset + done}`);
        done += count;
      }
      return buffer;
    },
    close: () => fs.closeSync(fd),
  };
}

function isDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && (SAFETENSORS_DTYPES as readonly string[]).includes(value);
}

function parseEntry(name: string, raw: unknown, source: string): SafetensorsEntry {
  const where = `${source}: tensor "${name}"`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Error(`${where}: expected an object with dtype, shape and data_offsets, got ${JSON.stringify(raw)}`);
  }
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (!isDtype(dtype)) {
    throw new Error(`${where}: unsupported dtype ${JSON.stringify(dtype)}; expected one of ${SAFETENSORS_DTYPES.join(', ')}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(`${where}: invalid shape ${JSON.stringify(shape)}; expected an array of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw new Error(`${where}: invalid data_offsets ${JSON.stringify(offsets)}; expected [begin, end] byte offsets`);
  }
  const [begin, end] = offsets as [number, number];
  const elements = (shape as number[]).reduce((a, b) => a * b, 1);
  const expected = elements * DTYPE_BYTES[dtype];
  if (end < begin || end - begin !== expected) {
    throw new Error(
      `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, but shape [${shape.join(', ')}] ` +
      `of ${dtype} needs ${expected} bytes`,
    );
  }
  return { dtype, shape: shape as number[], dataOffsets: [begin, end] };
}

/** A parsed safetensors header: entries in file order, the metadata, and where the data area starts. */
export interface SafetensorsHeader {
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  dataStart: number;
  dataLength: number;
}

function parseHeader(bytes: ByteSource, source: string): SafetensorsHeader {
  if (bytes.size < 8) {
    throw new Error(`${source}: file of ${bytes.size} bytes is too short for the 8-byte safetensors header length`);
  }
  const lengthBytes = bytes.read(0, 8);
  const headerLength = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(bytes.size - 8)) {
    throw new Error(`${source}: header length ${headerLength} runs past the end of the file (${bytes.size} bytes)`);
  }
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw new Error(`${source}: header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }

  const length = Number(headerLength);
  const text = Buffer.from(bytes.read(8, length)).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`${source}: header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new Error(`${source}: header must be a JSON object, got ${text.slice(0, 80)}`);
  }

  const dataStart = 8 + length;
  const dataLength = bytes.size - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(raw, source);
      continue;
    }
    const entry = parseEntry(name, raw, source);
    if (entry.dataOffsets[1] > dataLength) {
      throw new Error(
        `${source}: tensor "${name}": data_offsets [${entry.dataOffsets.join(', ')}] lie outside ` +
        `the data area of ${dataLength} bytes`,
      );
    }
    entries.set(name, entry);
  }
  checkLayout(entries, dataLength, source);
  return { entries, metadata, dataStart, dataLength };
}

/**
 * Checks that the tensors tile the data area without gaps or overlaps, as the
 * format requires (the reference Rust reader rejects such files too).
 */
function checkLayout(entries: Map<string, SafetensorsEntry>, dataLength: number, source: string): void {
  const ordered = [...entries.entries()].sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let end = 0;
  let previous = '';
  for (const [name, entry] of ordered) {
    const [begin, stop] = entry.dataOffsets;
    if (begin < end) {
      throw new Error(`${source}: tensor "${name}" starts at byte ${begin}, inside tensor "${previous}" (which ends at ${end})`);
    }
    if (begin > end) {
      throw new Error(`${source}: tensor "${name}" starts at byte ${begin}, leaving a gap after byte ${end}`);
    }
    end = stop;
    previous = name;
  }
  if (end !== dataLength) {
    throw new Error(`${source}: tensors cover ${end} bytes of the ${dataLength}-byte data area; the file has trailing bytes`);
  }
}

function parseMetadata(raw: unknown, source: string): Record<string, string> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Error(`${source}: __metadata__ must be an object of strings, got ${JSON.stringify(raw)}`);
  }
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof value !== 'string') {
      throw new Error(`${source}: __metadata__ field "${key}" must be a string, got ${JSON.stringify(value)}`);
    }
    metadata[key] = value;
  }
  return metadata;
}

function decode(bytes: Uint8Array, dtype: SafetensorsDtype, count: number): Float32Array {
  if (dtype === 'F32' && LITTLE_ENDIAN_HOST) {
    // Copy into a fresh aligned buffer; the source view may start at any byte.
    const copy = new Uint8Array(count * 4);
    copy.set(bytes);
    return new Float32Array(copy.buffer);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    switch (dtype) {
      case 'F64': out[i] = view.getFloat64(i * 8, true); break;
      case 'F32': out[i] = view.getFloat32(i * 4, true); break;
      case 'F16': out[i] = float16BitsToNumber(view.getUint16(i * 2, true)); break;
      case 'BF16': out[i] = bfloat16BitsToNumber(view.getUint16(i * 2, true)); break;
      case 'I64': out[i] = Number(view.getBigInt64(i * 8, true)); break;
      case 'I32': out[i] = view.getInt32(i * 4, true); break;
      case 'I16': out[i] = view.getInt16(i * 2, true); break;
      case 'I8': out[i] = view.getInt8(i); break;
      case 'U8': out[i] = view.getUint8(i); break;
      case 'BOOL': out[i] = view.getUint8(i) !== 0 ? 1 : 0; break;
    }
  }
  return out;
}

/**
 * An open safetensors file. The header is parsed and validated on open. Each
 * tensor is read from disk only when requested, so a checkpoint larger than
 * memory can be inspected. Call {@link close} when done.
 */
export class SafetensorsFile {
  readonly source: string;
  readonly header: SafetensorsHeader;
  private readonly bytes: ByteSource;

  private constructor(bytes: ByteSource, source: string) {
    this.bytes = bytes;
    this.source = source;
    try {
      this.header = parseHeader(bytes, source);
    } catch (error) {
      bytes.close();
      throw error;
    }
  }

  /** Opens and validates a file on disk. */
  static open(file: string): SafetensorsFile {
    if (!fs.existsSync(file)) throw new Error(`safetensors file not found: ${file}`);
    return new SafetensorsFile(fileSource(file), file);
  }

  /** Validates bytes already in memory; `source` names them in errors. */
  static fromBytes(bytes: Uint8Array, source = '<bytes>'): SafetensorsFile {
    return new SafetensorsFile(bufferSource(bytes), source);
  }

  /** Tensor names in header order. */
  names(): string[] {
    return [...this.header.entries.keys()];
  }

  has(name: string): boolean {
    return this.header.entries.has(name);
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  entry(name: string): SafetensorsEntry {
    const entry = this.header.entries.get(name);
    if (entry === undefined) {
      throw new Error(`${this.source}: tensor "${name}" not found (the file has ${this.header.entries.size} tensors)`);
    }
    return entry;
  }

  /** Reads one tensor and widens its values to float32. */
  read(name: string): DecodedTensor {
    const entry = this.entry(name);
    const [begin, end] = entry.dataOffsets;
    const raw = this.bytes.read(this.header.dataStart + begin, end - begin);
    const count = entry.shape.reduce((a, b) => a * b, 1);
    return { dtype: entry.dtype, shape: [...entry.shape], data: decode(raw, entry.dtype, count) };
  }

  close(): void {
    this.bytes.close();
  }
}

/** Reads every tensor of a file into memory. */
export function readSafetensors(file: string): { tensors: Map<string, DecodedTensor>; metadata: Record<string, string> } {
  const opened = SafetensorsFile.open(file);
  try {
    const tensors = new Map<string, DecodedTensor>();
    for (const name of opened.names()) tensors.set(name, opened.read(name));
    return { tensors, metadata: { ...opened.metadata } };
  } finally {
    opened.close();
  }
}

// ---------------------------------------------------------------------------
// Writing.

function encodeValues(tensor: TensorToWrite, name: string): Uint8Array {
  const { dtype, data } = tensor;
  if (!(WRITABLE_DTYPES as readonly string[]).includes(dtype)) {
    throw new Error(`tensor "${name}": cannot write dtype ${dtype}; expected one of ${WRITABLE_DTYPES.join(', ')}`);
  }
  const bytesPer = DTYPE_BYTES[dtype];
  const out = new Uint8Array(data.length * bytesPer);
  const view = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) {
    if (dtype === 'F32') view.setFloat32(i * 4, data[i], true);
    else if (dtype === 'F16') view.setUint16(i * 2, numberToFloat16Bits(data[i]), true);
    else view.setUint16(i * 2, numberToBfloat16Bits(data[i]), true);
  }
  return out;
}

/**
 * Serialises tensors to safetensors bytes. Tensors are laid out in the order
 * given, and the header is padded with spaces to a multiple of 8 bytes so the
 * data area starts aligned, as the Python package does.
 */
export function encodeSafetensors(
  tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Uint8Array {
  const list = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, tensor] of list) {
    if (name === '__metadata__') throw new Error('tensor name "__metadata__" is reserved for the metadata object');
    const count = tensor.shape.reduce((a, b) => a * b, 1);
    if (count !== tensor.data.length) {
      throw new Error(`tensor "${name}": shape [${tensor.shape.join(', ')}] needs ${count} values, got ${tensor.data.length}`);
    }
    const bytes = encodeValues(tensor, name);
    header[name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  const padding = (8 - (Buffer.byteLength(json, 'utf8') % 8)) % 8;
  json += ' '.repeat(padding);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let position = 8 + headerBytes.length;
  for (const chunk of chunks) {
    out.set(chunk, position);
    position += chunk.length;
  }
  return out;
}

/** Writes tensors to `file` atomically (a reader sees the old file or the whole new one). */
export function writeSafetensors(
  file: string,
  tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}
