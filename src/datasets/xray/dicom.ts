/**
 * A reader for uncompressed single-frame grey DICOM images (DICOM PS3.5 data
 * encoding, PS3.3 C.7.6.3 image pixel module, C.11 modality and VOI LUTs).
 *
 * It accepts Part 10 files (128-byte preamble, "DICM", file meta group) and
 * bare data sets without them (ACR-NEMA style), in implicit or explicit VR
 * little endian. Compressed and big-endian transfer syntaxes are rejected by
 * UID and name.
 */

import { getLogger } from '../../util/log';
import { GrayImage, XrayDecodeError } from './image';

const logger = getLogger('datasets.xray.dicom');

const IMPLICIT_LITTLE = '1.2.840.10008.1.2';
const EXPLICIT_LITTLE = '1.2.840.10008.1.2.1';

/** Names of transfer syntaxes that this reader rejects, for the error message. */
const UNSUPPORTED_TRANSFER_SYNTAXES: Record<string, string> = {
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline (Process 1)',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (Process 2 & 4)',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless, Non-Hierarchical (Process 14)',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14, Selection Value 1)',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-Lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000 Image Compression',
  '1.2.840.10008.1.2.4.201': 'High-Throughput JPEG 2000 Lossless Only',
  '1.2.840.10008.1.2.4.203': 'High-Throughput JPEG 2000',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

/** Explicit-VR value representations whose length field is 4 bytes after 2 reserved bytes. */
const LONG_LENGTH_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const UNDEFINED_LENGTH = 0xffffffff;

const TAG = {
  transferSyntax: 0x00020010,
  samplesPerPixel: 0x00280002,
  photometric: 0x00280004,
  numberOfFrames: 0x00280008,
  rows: 0x00280010,
  columns: 0x00280011,
  bitsAllocated: 0x00280100,
  bitsStored: 0x00280101,
  highBit: 0x00280102,
  pixelRepresentation: 0x00280103,
  windowCenter: 0x00281050,
  windowWidth: 0x00281051,
  rescaleIntercept: 0x00281052,
  rescaleSlope: 0x00281053,
  pixelData: 0x7fe00010,
};

/** The attributes of the image pixel module and the LUT attributes this reader uses. */
export interface DicomImageInfo {
  transferSyntaxUid: string;
  rows: number;
  columns: number;
  samplesPerPixel: number;
  photometricInterpretation: string;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  /** 0 for unsigned, 1 for two's complement pixels. */
  pixelRepresentation: number;
  rescaleSlope: number;
  rescaleIntercept: number;
  windowCenter?: number;
  windowWidth?: number;
}

interface ElementValue {
  offset: number;
  length: number;
}

interface ParsedDataSet {
  elements: Map<number, ElementValue>;
  transferSyntaxUid: string;
}

function isUpperLetter(code: number): boolean {
  return code >= 0x41 && code <= 0x5a;
}

class DicomParser {
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array, private readonly source: string) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private fail(message: string): never {
    throw new XrayDecodeError(`Invalid DICOM file ${this.source}: ${message}`);
  }

  private need(offset: number, count: number, what: string): void {
    if (offset + count > this.bytes.length) {
      this.fail(`${what} at byte ${offset} runs past the end of the file (${this.bytes.length} bytes)`);
    }
  }

  private tagAt(offset: number): number {
    this.need(offset, 4, 'element tag');
    return ((this.view.getUint16(offset, true) << 16) | this.view.getUint16(offset + 2, true)) >>> 0;
  }

  /** Guesses explicit VR when the two bytes after the tag are upper-case letters, as a VR would be. */
  private looksExplicit(offset: number): boolean {
    return offset + 6 <= this.bytes.length && isUpperLetter(this.bytes[offset + 4]) && isUpperLetter(this.bytes[offset + 5]);
  }

  parse(): ParsedDataSet {
    const elements = new Map<number, ElementValue>();
    let offset = 0;
    let transferSyntaxUid: string | undefined;
    const hasPreamble = this.bytes.length >= 132
      && this.bytes[128] === 0x44 && this.bytes[129] === 0x49 && this.bytes[130] === 0x43 && this.bytes[131] === 0x4d;
    if (hasPreamble) {
      offset = 132;
      // The file meta group (0002,xxxx) is always explicit VR little endian.
      while (offset < this.bytes.length && (this.tagAt(offset) >>> 16) === 0x0002) {
        offset = this.readElement(offset, true, elements);
      }
      const syntax = elements.get(TAG.transferSyntax);
      if (syntax !== undefined) transferSyntaxUid = this.readString(syntax);
    }
    if (transferSyntaxUid === undefined) {
      // Without file meta information, the encoding is read from the first element itself.
      transferSyntaxUid = this.looksExplicit(offset) ? EXPLICIT_LITTLE : IMPLICIT_LITTLE;
    }
    if (transferSyntaxUid !== IMPLICIT_LITTLE && transferSyntaxUid !== EXPLICIT_LITTLE) {
      const name = UNSUPPORTED_TRANSFER_SYNTAXES[transferSyntaxUid] ?? 'unknown transfer syntax';
      throw new XrayDecodeError(
        `Unsupported DICOM transfer syntax ${transferSyntaxUid} (${name}) in ${this.source}: `
        + 'only uncompressed implicit or explicit VR little endian is supported; decompress the file first (for example with dcmdjpeg or gdcmconv --raw)',
      );
    }
    const explicit = transferSyntaxUid === EXPLICIT_LITTLE;
    while (offset < this.bytes.length) {
      if (this.bytes.length - offset < 8) this.fail(`${this.bytes.length - offset} stray bytes at the end of the file`);
      offset = this.readElement(offset, explicit, elements);
    }
    return { elements, transferSyntaxUid };
  }

  /** Reads one element at `offset`, stores top-level values in `elements` and returns the next offset. */
  private readElement(offset: number, explicit: boolean, elements: Map<number, ElementValue> | null): number {
    const tag = this.tagAt(offset);
    let length: number;
    let valueOffset: number;
    let vr = '';
    if (explicit && (tag >>> 16) !== 0xfffe) {
      this.need(offset, 8, 'element header');
      vr = String.fromCharCode(this.bytes[offset + 4], this.bytes[offset + 5]);
      if (LONG_LENGTH_VRS.has(vr)) {
        this.need(offset, 12, 'element header');
        length = this.view.getUint32(offset + 8, true);
        valueOffset = offset + 12;
      } else {
        length = this.view.getUint16(offset + 6, true);
        valueOffset = offset + 8;
      }
    } else {
      this.need(offset, 8, 'element header');
      length = this.view.getUint32(offset + 4, true);
      valueOffset = offset + 8;
    }
    if (length === UNDEFINED_LENGTH) {
      if (tag === TAG.pixelData) {
        this.fail('pixel data is encapsulated (compressed) although the transfer syntax is uncompressed');
      }
      // A sequence of undefined length: skip its items up to the sequence delimiter.
      return this.skipUndefinedSequence(valueOffset, explicit);
    }
    this.need(valueOffset, length, `value of element (${hexTag(tag)})`);
    if (elements !== null) elements.set(tag, { offset: valueOffset, length });
    return valueOffset + length;
  }

  private skipUndefinedSequence(offset: number, explicit: boolean): number {
    for (;;) {
      const tag = this.tagAt(offset);
      this.need(offset, 8, 'item header');
      const length = this.view.getUint32(offset + 4, true);
      if (tag === 0xfffee0dd) return offset + 8;
      if (tag !== 0xfffee000) this.fail(`expected a sequence item at byte ${offset}, found (${hexTag(tag)})`);
      if (length !== UNDEFINED_LENGTH) {
        this.need(offset + 8, length, 'sequence item');
        offset += 8 + length;
        continue;
      }
      offset += 8;
      // An item of undefined length ends at the item delimiter (FFFE,E00D).
      while (this.tagAt(offset) !== 0xfffee00d) offset = this.readElement(offset, explicit, null);
      offset += 8;
    }
  }

  readString(value: ElementValue): string {
    let text = '';
    for (let i = 0; i < value.length; i++) text += String.fromCharCode(this.bytes[value.offset + i]);
    return text.replace(/[\0 ]+$/, '').trim();
  }

  readUint16(value: ElementValue): number {
    return this.view.getUint16(value.offset, true);
  }
}

function hexTag(tag: number): string {
  const group = (tag >>> 16).toString(16).toUpperCase().padStart(4, '0');
  const element = (tag & 0xffff).toString(16).toUpperCase().padStart(4, '0');
  return `${group},${element}`;
}

/** Parses the first value of a decimal-string (DS/IS) element; multi-valued strings use their first value. */
function parseDecimal(text: string, name: string, source: string): number {
  const first = text.split('\\')[0].trim();
  const value = Number(first);
  if (first === '' || !Number.isFinite(value)) {
    throw new XrayDecodeError(`Invalid DICOM file ${source}: ${name} "${text}" is not a number`);
  }
  return value;
}

interface ParsedImage {
  info: DicomImageInfo;
  pixels: ElementValue;
  parser: DicomParser;
}

function parseImage(bytes: Uint8Array, source: string): ParsedImage {
  const parser = new DicomParser(bytes, source);
  const { elements, transferSyntaxUid } = parser.parse();
  const pixels = elements.get(TAG.pixelData);
  if (pixels === undefined) {
    throw new XrayDecodeError(`DICOM file ${source} has no pixel data (7FE0,0010): it is not an image, or the image was stripped`);
  }
  const required = (tag: number, name: string): number => {
    const value = elements.get(tag);
    if (value === undefined || value.length < 2) {
      throw new XrayDecodeError(`Invalid DICOM file ${source}: the required attribute ${name} (${hexTag(tag)}) is missing`);
    }
    return parser.readUint16(value);
  };
  const optionalString = (tag: number): string | undefined => {
    const value = elements.get(tag);
    return value === undefined ? undefined : parser.readString(value);
  };
  const decimal = (tag: number, name: string): number | undefined => {
    const text = optionalString(tag);
    return text === undefined || text === '' ? undefined : parseDecimal(text, name, source);
  };
  const samplesElement = elements.get(TAG.samplesPerPixel);
  const info: DicomImageInfo = {
    transferSyntaxUid,
    rows: required(TAG.rows, 'Rows'),
    columns: required(TAG.columns, 'Columns'),
    samplesPerPixel: samplesElement === undefined ? 1 : parser.readUint16(samplesElement),
    photometricInterpretation: optionalString(TAG.photometric) ?? 'MONOCHROME2',
    bitsAllocated: required(TAG.bitsAllocated, 'BitsAllocated'),
    bitsStored: elements.has(TAG.bitsStored) ? required(TAG.bitsStored, 'BitsStored') : required(TAG.bitsAllocated, 'BitsAllocated'),
    highBit: 0,
    pixelRepresentation: elements.has(TAG.pixelRepresentation) ? required(TAG.pixelRepresentation, 'PixelRepresentation') : 0,
    rescaleSlope: decimal(TAG.rescaleSlope, 'RescaleSlope') ?? 1,
    rescaleIntercept: decimal(TAG.rescaleIntercept, 'RescaleIntercept') ?? 0,
    windowCenter: decimal(TAG.windowCenter, 'WindowCenter'),
    windowWidth: decimal(TAG.windowWidth, 'WindowWidth'),
  };
  info.highBit = elements.has(TAG.highBit) ? required(TAG.highBit, 'HighBit') : info.bitsStored - 1;
  validateInfo(info, pixels, source, optionalString(TAG.numberOfFrames));
  return { info, pixels, parser };
}

function validateInfo(info: DicomImageInfo, pixels: ElementValue, source: string, frames: string | undefined): void {
  const fail = (message: string): never => {
    throw new XrayDecodeError(`Unsupported DICOM image in ${source}: ${message}`);
  };
  if (info.samplesPerPixel !== 1) fail(`SamplesPerPixel is ${info.samplesPerPixel}, expected 1 (grey)`);
  if (info.photometricInterpretation !== 'MONOCHROME1' && info.photometricInterpretation !== 'MONOCHROME2') {
    fail(`PhotometricInterpretation is ${info.photometricInterpretation}, expected MONOCHROME1 or MONOCHROME2`);
  }
  if (![8, 16, 32].includes(info.bitsAllocated)) fail(`BitsAllocated is ${info.bitsAllocated}, expected 8, 16 or 32`);
  if (info.bitsStored < 1 || info.bitsStored > info.bitsAllocated) {
    fail(`BitsStored is ${info.bitsStored}, expected 1 to BitsAllocated (${info.bitsAllocated})`);
  }
  if (info.highBit < info.bitsStored - 1 || info.highBit >= info.bitsAllocated) {
    fail(`HighBit is ${info.highBit}, expected ${info.bitsStored - 1} to ${info.bitsAllocated - 1}`);
  }
  if (info.pixelRepresentation !== 0 && info.pixelRepresentation !== 1) {
    fail(`PixelRepresentation is ${info.pixelRepresentation}, expected 0 (unsigned) or 1 (signed)`);
  }
  if (info.rows === 0 || info.columns === 0) fail(`the image is ${info.rows} x ${info.columns}, expected at least one pixel`);
  if (frames !== undefined && frames !== '' && Number(frames) > 1) {
    // NOTE: only the first frame of a multi-frame image is read; the others are ignored.
    logger.debug(`${source} has ${frames} frames; reading the first`);
  }
  const needed = info.rows * info.columns * (info.bitsAllocated / 8);
  if (pixels.length < needed) {
    fail(`pixel data holds ${pixels.length} bytes, expected ${needed} for ${info.rows} x ${info.columns} at ${info.bitsAllocated} bits`);
  }
  if (info.windowWidth !== undefined && info.windowWidth < 1) fail(`WindowWidth is ${info.windowWidth}, expected at least 1`);
}

/** Reads the attributes of a DICOM image without decoding its pixels. */
export function readDicomInfo(bytes: Uint8Array, source: string): DicomImageInfo {
  return parseImage(bytes, source).info;
}

/** Options for `decodeDicom`. */
export interface DicomDecodeOptions {
  /** Apply the VOI window (WindowCenter/WindowWidth) when the file has one; default true. */
  applyWindow?: boolean;
}

/**
 * Decodes a DICOM image to display values in [0, 1] (row-major, first frame):
 * stored values are masked to BitsStored (sign-extended when
 * PixelRepresentation is 1), rescaled by RescaleSlope/RescaleIntercept, then
 * mapped linearly to [0, 1], either through the VOI window (DICOM PS3.3
 * C.11.2.1.2.1, the 'LINEAR' function) or, without a window, over the range
 * the stored bits can hold. MONOCHROME1 images are inverted so that higher
 * values are always brighter.
 */
export function decodeDicom(bytes: Uint8Array, source: string, options: DicomDecodeOptions = {}): GrayImage & { info: DicomImageInfo } {
  const { info, pixels } = parseImage(bytes, source);
  const count = info.rows * info.columns;
  const view = new DataView(bytes.buffer, bytes.byteOffset + pixels.offset, pixels.length);
  const shift = info.highBit + 1 - info.bitsStored;
  const storedMax = 2 ** info.bitsStored;
  const signed = info.pixelRepresentation === 1;
  const { rescaleSlope: slope, rescaleIntercept: intercept } = info;

  // Range of rescaled values that the stored bits can represent.
  const storedLow = signed ? -(storedMax / 2) : 0;
  const storedHigh = signed ? storedMax / 2 - 1 : storedMax - 1;
  const rangeA = storedLow * slope + intercept;
  const rangeB = storedHigh * slope + intercept;
  const rangeLow = Math.min(rangeA, rangeB);
  const rangeHigh = Math.max(rangeA, rangeB);

  const useWindow = (options.applyWindow ?? true) && info.windowCenter !== undefined && info.windowWidth !== undefined;
  const center = info.windowCenter ?? 0;
  const width = info.windowWidth ?? 1;
  const invert = info.photometricInterpretation === 'MONOCHROME1';

  const out = new Float32Array(count);
  const bytesPerSample = info.bitsAllocated / 8;
  for (let i = 0; i < count; i++) {
    let raw: number;
    if (bytesPerSample === 1) raw = view.getUint8(i);
    else if (bytesPerSample === 2) raw = view.getUint16(i * 2, true);
    else raw = view.getUint32(i * 4, true);
    // Keep only the stored bits, then sign-extend two's complement values.
    let stored = Math.floor(raw / 2 ** shift) % storedMax;
    if (signed && stored >= storedMax / 2) stored -= storedMax;
    const value = stored * slope + intercept;
    let display: number;
    if (useWindow) {
      // DICOM PS3.3 C.11.2.1.2.1: linear window with the half-unit offsets of the standard.
      const low = center - 0.5 - (width - 1) / 2;
      const high = center - 0.5 + (width - 1) / 2;
      if (value <= low) display = 0;
      else if (value > high) display = 1;
      else display = width === 1 ? 1 : (value - (center - 0.5)) / (width - 1) + 0.5;
    } else {
      display = rangeHigh > rangeLow ? (value - rangeLow) / (rangeHigh - rangeLow) : 0;
    }
    out[i] = invert ? 1 - display : display;
  }
  return { width: info.columns, height: info.rows, data: out, info };
}
