/**
 * WFDB record reader: parses the header, reads every signal file it names,
 * checks sizes and checksums, and returns digital and physical samples per
 * signal. Physical value = (digital - baseline) / gain, and each format's
 * invalid-sample marker becomes NaN. A multi-segment record is joined from its
 * segment records, which sit next to its header.
 */

import * as fs from 'fs';
import * as path from 'path';

import { resolveInsideRoot } from '../paths';
import { bytesForSamples, decodeSamples, INVALID_SAMPLE_VALUE } from './formats';
import { parseWfdbHeader, WfdbError, WfdbHeader, WfdbSegmentSpec, WfdbSignalSpec } from './header';

export interface WfdbReadOptions {
  /** Element type of the physical arrays; `float64` by default, like wfdb-python's `rdrecord`. */
  physicalType?: 'float64' | 'float32';
  /** Compare each signal's 16-bit sample sum with the header checksum and reject a mismatch (default true). */
  verifyChecksums?: boolean;
  /** Accept signal files longer than the header declares, reading only the declared samples (default false). */
  allowTrailingBytes?: boolean;
}

export interface WfdbRecord {
  header: WfdbHeader;
  /** Path of the header file the record came from. */
  source: string;
  samplingFrequency: number;
  /** Samples per signal. */
  sampleCount: number;
  /** Signal names (the header's descriptions), in header order. */
  signalNames: string[];
  /**
   * Digital samples per signal, as stored. Null for a multi-segment record whose
   * segments store a signal with different formats, gains or baselines, because
   * its digital values have no common scale there (wfdb-python also refuses them).
   */
  digital: Int32Array[] | null;
  /** Physical samples per signal in the header's units; NaN marks an invalid sample. */
  physical: Float64Array[] | Float32Array[];
}

/** Signals stored together in one file, with their positions in the header. */
interface SignalFileGroup {
  fileName: string;
  format: number;
  byteOffset: number;
  signalIndices: number[];
}

function groupSignalsByFile(header: WfdbHeader, source: string): SignalFileGroup[] {
  const groups: SignalFileGroup[] = [];
  header.signals.forEach((signal, index) => {
    if (signal.samplesPerFrame !== 1) {
      throw new WfdbError(
        `${source}: signal ${index} (${signal.description || 'unnamed'}) stores ${signal.samplesPerFrame} samples per frame; only 1 is supported`,
      );
    }
    if (signal.skew !== 0) {
      throw new WfdbError(`${source}: signal ${index} (${signal.description || 'unnamed'}) has skew ${signal.skew}; only 0 is supported`);
    }
    const last = groups[groups.length - 1];
    if (last !== undefined && last.fileName === signal.fileName) {
      if (signal.format !== last.format) {
        throw new WfdbError(
          `${source}: signals in ${signal.fileName} use formats ${last.format} and ${signal.format}; one file must use one format`,
        );
      }
      last.signalIndices.push(index);
      return;
    }
    if (groups.some((group) => group.fileName === signal.fileName)) {
      throw new WfdbError(`${source}: the signals of ${signal.fileName} are not listed on consecutive lines`);
    }
    groups.push({ fileName: signal.fileName, format: signal.format, byteOffset: signal.byteOffset, signalIndices: [index] });
  });
  return groups;
}

/** Bytes by which a stream of `format` may legitimately overrun its last sample (padding to a whole group). */
function packingSlack(format: number): number {
  if (format === 212) return 2;
  if (format === 310 || format === 311) return 3;
  return 0;
}

function inferSampleCount(group: SignalFileGroup, byteLength: number): number {
  const available = byteLength - group.byteOffset;
  const signals = group.signalIndices.length;
  let streamSamples: number;
  if (group.format === 212) streamSamples = Math.floor((available * 2) / 3);
  else if (group.format === 310 || group.format === 311) streamSamples = Math.floor((available * 3) / 4);
  else streamSamples = Math.floor(available / bytesForSamples(group.format, 1));
  return Math.floor(streamSamples / signals);
}

function checksumOf(samples: Int32Array): number {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum = (sum + samples[i]) & 0xffff;
  return sum;
}

function toPhysical(
  digital: Int32Array,
  signal: WfdbSignalSpec,
  type: 'float64' | 'float32',
): Float64Array | Float32Array {
  const out = type === 'float32' ? new Float32Array(digital.length) : new Float64Array(digital.length);
  const invalid = INVALID_SAMPLE_VALUE[signal.format];
  const { baseline, gain } = signal;
  for (let i = 0; i < digital.length; i++) {
    const value = digital[i];
    out[i] = value === invalid ? Number.NaN : (value - baseline) / gain;
  }
  return out;
}

/**
 * Decodes a record from its parsed header and the bytes of its signal files,
 * keyed by the file names the header uses. `source` (the header path) prefixes
 * every error, and each error also names the signal file at fault.
 */
export function decodeWfdbRecord(
  header: WfdbHeader,
  files: ReadonlyMap<string, Uint8Array>,
  source: string,
  options: WfdbReadOptions = {},
): WfdbRecord {
  const verifyChecksums = options.verifyChecksums ?? true;
  const physicalType = options.physicalType ?? 'float64';
  const groups = groupSignalsByFile(header, source);

  let sampleCount = header.sampleCount;
  if (sampleCount === null) {
    // Without a sample count in the header, the shortest signal file decides it.
    const counts = groups.map((group) => inferSampleCount(group, files.get(group.fileName)?.length ?? 0));
    sampleCount = counts.length > 0 ? Math.min(...counts) : 0;
  }

  const digital: Int32Array[] = new Array(header.signalCount);
  for (const group of groups) {
    const bytes = sampleCount === 0 ? new Uint8Array(group.byteOffset) : files.get(group.fileName);
    if (bytes === undefined) {
      throw new WfdbError(`${source}: signal file ${group.fileName} was not provided`);
    }
    const signals = group.signalIndices.length;
    const streamLength = sampleCount * signals;
    const expected = bytesForSamples(group.format, streamLength, `${source} (${group.fileName})`);
    const available = bytes.length - group.byteOffset;
    if (available < expected) {
      throw new WfdbError(
        `${group.fileName}: truncated signal file: the header ${source} declares ${sampleCount} samples for each of ` +
          `${signals} signals in format ${group.format}, which needs ${expected} bytes after the ${group.byteOffset}-byte offset, ` +
          `but the file has ${Math.max(available, 0)}`,
      );
    }
    if (available > expected + packingSlack(group.format) && header.sampleCount !== null && !options.allowTrailingBytes) {
      throw new WfdbError(
        `${group.fileName}: header and data sizes disagree: the header ${source} declares ${sampleCount} samples for each of ` +
          `${signals} signals (${expected} bytes after the ${group.byteOffset}-byte offset) but the file has ${available} bytes; ` +
          'fix the sample count or pass allowTrailingBytes to read only the declared samples',
      );
    }

    const stream = decodeSamples(bytes, group.byteOffset, streamLength, group.format, `${source} (${group.fileName})`);
    group.signalIndices.forEach((signalIndex, column) => {
      const samples = new Int32Array(sampleCount);
      for (let t = 0, p = column; t < sampleCount; t++, p += signals) samples[t] = stream[p];
      digital[signalIndex] = samples;
    });
  }

  if (verifyChecksums && header.sampleCount !== null) {
    header.signals.forEach((signal, index) => {
      if (signal.checksum === null) return;
      const computed = checksumOf(digital[index]);
      const written = signal.checksum & 0xffff;
      if (computed !== written) {
        throw new WfdbError(
          `${signal.fileName}: checksum mismatch for signal ${index} (${signal.description || 'unnamed'}): ` +
            `the header ${source} gives ${signal.checksum} but the samples sum to ${computed} (mod 65536); the file is damaged or does not belong to this header`,
        );
      }
    });
  }

  const physical = header.signals.map((signal, index) => toPhysical(digital[index], signal, physicalType));
  return {
    header,
    source,
    samplingFrequency: header.samplingFrequency,
    sampleCount,
    signalNames: header.signals.map((signal) => signal.description),
    digital,
    physical: physical as Float64Array[] | Float32Array[],
  };
}

/** Returns the header path for a record path given with or without the `.hea` extension. */
function headerPathOf(recordPath: string): string {
  return recordPath.endsWith('.hea') ? recordPath : `${recordPath}.hea`;
}

function readHeader(headerPath: string, text: string | null): WfdbHeader {
  if (text === null) {
    throw new WfdbError(`${headerPath}: header file not found`);
  }
  return parseWfdbHeader(text, headerPath);
}

function signalFilePath(headerPath: string, fileName: string): string {
  return resolveInsideRoot(path.dirname(headerPath), fileName, headerPath);
}

function missingSignalFile(headerPath: string, filePath: string): WfdbError {
  return new WfdbError(`${filePath}: signal file not found (named in ${headerPath})`);
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}

/**
 * Reads a WFDB record synchronously. `recordPath` is the header path with or
 * without `.hea`; signal files are looked up next to the header and must stay
 * inside its folder.
 */
export function readWfdbRecordSync(recordPath: string, options: WfdbReadOptions = {}): WfdbRecord {
  const headerPath = headerPathOf(recordPath);
  let text: string | null = null;
  try {
    text = fs.readFileSync(headerPath, 'latin1');
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  const header = readHeader(headerPath, text);
  if (header.segments !== null) {
    const parts = header.segments.map((segment) => readSegmentSync(headerPath, segment, options));
    return assembleSegments(header, headerPath, parts, options);
  }
  const files = new Map<string, Uint8Array>();
  for (const signal of header.signals) {
    // A header declaring 0 samples (such as a multi-segment layout header) needs no signal file.
    if (files.has(signal.fileName) || header.sampleCount === 0) continue;
    const filePath = signalFilePath(headerPath, signal.fileName);
    try {
      files.set(signal.fileName, fs.readFileSync(filePath));
    } catch (error) {
      if (isNotFound(error)) throw missingSignalFile(headerPath, filePath);
      throw error;
    }
  }
  return decodeWfdbRecord(header, files, headerPath, options);
}

/** Reads a WFDB record; the asynchronous form of `readWfdbRecordSync`. */
export async function readWfdbRecord(recordPath: string, options: WfdbReadOptions = {}): Promise<WfdbRecord> {
  const headerPath = headerPathOf(recordPath);
  let text: string | null = null;
  try {
    text = await fs.promises.readFile(headerPath, 'latin1');
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  const header = readHeader(headerPath, text);
  if (header.segments !== null) {
    const parts = await Promise.all(header.segments.map((segment) => readSegment(headerPath, segment, options)));
    return assembleSegments(header, headerPath, parts, options);
  }
  const names = header.sampleCount === 0 ? [] : [...new Set(header.signals.map((signal) => signal.fileName))];
  const contents = await Promise.all(
    names.map(async (fileName) => {
      const filePath = signalFilePath(headerPath, fileName);
      try {
        return await fs.promises.readFile(filePath);
      } catch (error) {
        if (isNotFound(error)) throw missingSignalFile(headerPath, filePath);
        throw error;
      }
    }),
  );
  const files = new Map<string, Uint8Array>(names.map((name, index) => [name, contents[index]]));
  return decodeWfdbRecord(header, files, headerPath, options);
}

/**
 * A segment of a multi-segment record once read: a gap (`~`), the layout
 * header of a variable-layout record (0 samples, signals only), or a record.
 */
type SegmentPart =
  | { kind: 'gap'; spec: WfdbSegmentSpec }
  | { kind: 'layout'; spec: WfdbSegmentSpec; header: WfdbHeader }
  | { kind: 'record'; spec: WfdbSegmentSpec; record: WfdbRecord };

function segmentPath(masterPath: string, name: string): string {
  return resolveInsideRoot(path.dirname(masterPath), `${name}.hea`, masterPath);
}

function readSegmentSync(masterPath: string, spec: WfdbSegmentSpec, options: WfdbReadOptions): SegmentPart {
  if (spec.name === '~') return { kind: 'gap', spec };
  const file = segmentPath(masterPath, spec.name);
  if (spec.sampleCount === 0) {
    let text: string | null = null;
    try {
      text = fs.readFileSync(file, 'latin1');
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    return { kind: 'layout', spec, header: readHeader(file, text) };
  }
  return { kind: 'record', spec, record: readWfdbRecordSync(file, options) };
}

async function readSegment(masterPath: string, spec: WfdbSegmentSpec, options: WfdbReadOptions): Promise<SegmentPart> {
  if (spec.name === '~') return { kind: 'gap', spec };
  const file = segmentPath(masterPath, spec.name);
  if (spec.sampleCount === 0) {
    let text: string | null = null;
    try {
      text = await fs.promises.readFile(file, 'latin1');
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    return { kind: 'layout', spec, header: readHeader(file, text) };
  }
  return { kind: 'record', spec, record: await readWfdbRecord(file, options) };
}

function sameStorage(a: WfdbSignalSpec, b: WfdbSignalSpec): boolean {
  return a.format === b.format && a.gain === b.gain && a.baseline === b.baseline;
}

/**
 * Joins the segments of a multi-segment record into one record. Signals follow
 * the layout header when there is one (variable layout), else the first
 * segment (fixed layout), and are matched by name in every segment. A gap, or a
 * segment without a signal, gives NaN for that stretch.
 */
function assembleSegments(
  header: WfdbHeader,
  source: string,
  parts: SegmentPart[],
  options: WfdbReadOptions,
): WfdbRecord {
  const layoutPart = parts.find((part) => part.kind === 'layout');
  const firstRecord = parts.find((part) => part.kind === 'record');
  let layout: WfdbSignalSpec[];
  if (layoutPart !== undefined && layoutPart.kind === 'layout') layout = layoutPart.header.signals;
  else if (firstRecord !== undefined && firstRecord.kind === 'record') layout = firstRecord.record.header.signals;
  else throw new WfdbError(`${source}: the multi-segment record has no segment with signals`);
  if (layout.length !== header.signalCount) {
    throw new WfdbError(`${source}: the record line declares ${header.signalCount} signals but the layout has ${layout.length}`);
  }

  const sampleCount = parts.reduce((sum, part) => sum + (part.kind === 'layout' ? 0 : part.spec.sampleCount), 0);
  if (header.sampleCount !== null && header.sampleCount !== sampleCount) {
    throw new WfdbError(`${source}: the record line declares ${header.sampleCount} samples but the segments add up to ${sampleCount}`);
  }

  const physicalType = options.physicalType ?? 'float64';
  const physical = layout.map(() =>
    physicalType === 'float32' ? new Float32Array(sampleCount).fill(Number.NaN) : new Float64Array(sampleCount).fill(Number.NaN),
  );
  const digital = layout.map((signal) => new Int32Array(sampleCount).fill(INVALID_SAMPLE_VALUE[signal.format] ?? 0));
  let digitalValid = true;
  let offset = 0;
  for (const part of parts) {
    if (part.kind === 'layout') continue;
    if (part.kind === 'record') {
      const { record } = part;
      if (record.sampleCount !== part.spec.sampleCount) {
        throw new WfdbError(
          `${record.source}: the segment has ${record.sampleCount} samples but the master header ${source} declares ${part.spec.sampleCount}`,
        );
      }
      layout.forEach((signal, index) => {
        const position = record.signalNames.findIndex((name) => name === signal.description);
        if (position < 0) return;
        physical[index].set(record.physical[position], offset);
        if (record.digital === null || !sameStorage(record.header.signals[position], signal)) digitalValid = false;
        else digital[index].set(record.digital[position], offset);
      });
    }
    offset += part.spec.sampleCount;
  }

  return {
    header: { ...header, signals: layout },
    source,
    samplingFrequency: header.samplingFrequency,
    sampleCount,
    signalNames: layout.map((signal) => signal.description),
    digital: digitalValid ? digital : null,
    physical: physical as Float64Array[] | Float32Array[],
  };
}
