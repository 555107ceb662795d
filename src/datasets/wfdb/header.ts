/**
 * Parser for WFDB header (`.hea`) files, following the PhysioNet WFDB header
 * specification (https://physionet.org/physiotools/wag/header-5.htm): one
 * record line, one line per signal, and `#` comment lines anywhere.
 */

/** Error raised for a header, signal file or record that cannot be read as WFDB. */
export class WfdbError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WfdbError';
  }
}

/** ADC gain that the WFDB specification substitutes when a header writes 0. */
export const DEFAULT_ADC_GAIN = 200;

/** Description of one signal, as written on its header line. */
export interface WfdbSignalSpec {
  /** Signal file name, relative to the header's folder. */
  fileName: string;
  /** Storage format, for example `16`, `212` or `80`. */
  format: number;
  /** Samples per frame (the `x` suffix of the format field). */
  samplesPerFrame: number;
  /** Skew in samples (the `:` suffix of the format field). */
  skew: number;
  /** Bytes to skip at the start of the signal file (the `+` suffix of the format field). */
  byteOffset: number;
  /** ADC units per physical unit; 200 where the header writes 0 or nothing. */
  gain: number;
  /** True when the header writes a gain of 0 or none, so the gain is the WFDB default and not a calibration. */
  uncalibrated: boolean;
  /** Digital value that corresponds to a physical 0; the ADC zero when the header gives none. */
  baseline: number;
  /** Physical units, `mV` when the header gives none. */
  units: string;
  adcResolution: number;
  adcZero: number;
  /** First sample's digital value; the ADC zero when the header gives none. */
  initialValue: number;
  /** 16-bit sum of all digital samples as written (signed or unsigned), or null when absent. */
  checksum: number | null;
  blockSize: number;
  /** Signal name (lead name for ECGs); empty when the header gives none. */
  description: string;
}

/** One segment line of a multi-segment header. */
export interface WfdbSegmentSpec {
  /** Segment record name, or `~` for a gap without signals. */
  name: string;
  sampleCount: number;
}

/** Contents of a WFDB header. */
export interface WfdbHeader {
  recordName: string;
  /** Segment lines of a multi-segment header (record line `name/segments`), or null for a single-segment record. */
  segments: WfdbSegmentSpec[] | null;
  signalCount: number;
  /** Sampling frequency in Hz; 250 when the header gives none (the WFDB default). */
  samplingFrequency: number;
  /** Samples per signal, or null when the header leaves it out. */
  sampleCount: number | null;
  /** Base time as written (for example `19:46:25.757`), or null. */
  baseTime: string | null;
  /** Base date as written (for example `05-May-2020` or `01/10/1990`), or null. */
  baseDate: string | null;
  signals: WfdbSignalSpec[];
  /** Comment lines without the leading `#`, trimmed, in file order. */
  comments: string[];
}

const TIME_PATTERN = /^\d{1,2}:\d{1,2}(:\d{1,2}(\.\d+)?)?$/;

function parseInteger(text: string, field: string, where: string): number {
  if (!/^[+-]?\d+$/.test(text)) {
    throw new WfdbError(`${where}: invalid ${field} "${text}": expected an integer`);
  }
  return Number.parseInt(text, 10);
}

function parseNumber(text: string, field: string, where: string): number {
  const value = Number(text);
  if (text === '' || !Number.isFinite(value)) {
    throw new WfdbError(`${where}: invalid ${field} "${text}": expected a number`);
  }
  return value;
}

function parseRecordLine(
  line: string,
  where: string,
): Omit<WfdbHeader, 'signals' | 'comments' | 'segments'> & { segmentCount: number | null } {
  const tokens = line.trim().split(/\s+/);
  if (tokens.length < 2) {
    throw new WfdbError(`${where}: invalid record line "${line}": expected at least a record name and a signal count`);
  }
  const [recordName, segmentField] = tokens[0].split('/');
  const segmentCount = segmentField === undefined ? null : parseInteger(segmentField, 'segment count', where);
  const signalCount = parseInteger(tokens[1], 'signal count', where);
  let samplingFrequency = 250;
  if (tokens.length > 2) {
    // The frequency field may carry a counter frequency and base counter: `360/1000(0)`.
    samplingFrequency = parseNumber(tokens[2].split('/')[0], 'sampling frequency', where);
  }
  const sampleCount = tokens.length > 3 ? parseInteger(tokens[3], 'sample count', where) : null;
  let baseTime: string | null = null;
  let baseDate: string | null = null;
  for (const token of tokens.slice(4)) {
    if (baseTime === null && TIME_PATTERN.test(token)) baseTime = token;
    else if (baseDate === null) baseDate = token;
    else throw new WfdbError(`${where}: unexpected field "${token}" on the record line "${line}"`);
  }
  return { recordName, segmentCount, signalCount, samplingFrequency, sampleCount, baseTime, baseDate };
}

function parseFormatField(text: string, where: string): Pick<WfdbSignalSpec, 'format' | 'samplesPerFrame' | 'skew' | 'byteOffset'> {
  const match = /^(\d+)(?:x(\d+))?(?::(\d+))?(?:\+(\d+))?$/.exec(text);
  if (match === null) {
    throw new WfdbError(`${where}: invalid format field "${text}": expected FORMAT[xSAMPLES][:SKEW][+OFFSET], for example 16 or 16+24`);
  }
  return {
    format: Number(match[1]),
    samplesPerFrame: match[2] === undefined ? 1 : Number(match[2]),
    skew: match[3] === undefined ? 0 : Number(match[3]),
    byteOffset: match[4] === undefined ? 0 : Number(match[4]),
  };
}

function parseSignalLine(line: string, where: string): WfdbSignalSpec {
  const tokens = line.trim().split(/\s+/);
  if (tokens.length < 2) {
    throw new WfdbError(`${where}: invalid signal line "${line}": expected at least a file name and a format`);
  }
  const fileName = tokens[0];
  const format = parseFormatField(tokens[1], where);

  let gain = 0;
  let baseline: number | null = null;
  let units = 'mV';
  if (tokens.length > 2) {
    const match = /^([^(/]+)(?:\(([^)]*)\))?(?:\/(.+))?$/.exec(tokens[2]);
    if (match === null) {
      throw new WfdbError(`${where}: invalid ADC gain field "${tokens[2]}": expected GAIN[(BASELINE)][/UNITS]`);
    }
    gain = parseNumber(match[1], 'ADC gain', where);
    if (match[2] !== undefined) baseline = parseInteger(match[2], 'baseline', where);
    if (match[3] !== undefined) units = match[3];
  }
  const adcResolution = tokens.length > 3 ? parseInteger(tokens[3], 'ADC resolution', where) : 0;
  const adcZero = tokens.length > 4 ? parseInteger(tokens[4], 'ADC zero', where) : 0;
  const initialValue = tokens.length > 5 ? parseInteger(tokens[5], 'initial value', where) : adcZero;
  const checksum = tokens.length > 6 ? parseInteger(tokens[6], 'checksum', where) : null;
  const blockSize = tokens.length > 7 ? parseInteger(tokens[7], 'block size', where) : 0;
  const description = tokens.length > 8 ? tokens.slice(8).join(' ') : '';

  const uncalibrated = gain === 0;
  return {
    fileName,
    ...format,
    gain: uncalibrated ? DEFAULT_ADC_GAIN : gain,
    uncalibrated,
    baseline: baseline ?? adcZero,
    units,
    adcResolution,
    adcZero,
    initialValue,
    checksum,
    blockSize,
    description,
  };
}

/**
 * Parses the text of a WFDB header. `source` names the file in error messages.
 * A multi-segment header (`name/segments` on the record line) lists segments
 * in place of signals.
 */
export function parseWfdbHeader(text: string, source: string): WfdbHeader {
  const comments: string[] = [];
  const contentLines: { line: string; lineNumber: number }[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '') return;
    if (line.startsWith('#')) {
      comments.push(line.slice(1).trim());
      return;
    }
    contentLines.push({ line, lineNumber: index + 1 });
  });
  if (contentLines.length === 0) {
    throw new WfdbError(`${source}: the header has no record line`);
  }

  const recordLine = contentLines[0];
  const { segmentCount, ...record } = parseRecordLine(recordLine.line, `${source} line ${recordLine.lineNumber}`);
  const bodyLines = contentLines.slice(1);
  const expected = segmentCount ?? record.signalCount;
  const kind = segmentCount === null ? 'signal' : 'segment';
  if (bodyLines.length < expected) {
    throw new WfdbError(`${source}: the record line declares ${expected} ${kind}s but the header has ${bodyLines.length} ${kind} lines`);
  }
  const extra = bodyLines.slice(expected);
  if (extra.length > 0) {
    throw new WfdbError(
      `${source} line ${extra[0].lineNumber}: unexpected line "${extra[0].line}" after the ${expected} declared ${kind} lines`,
    );
  }

  if (segmentCount !== null) {
    const segments = bodyLines.map(({ line, lineNumber }) => {
      const tokens = line.split(/\s+/);
      const where = `${source} line ${lineNumber}`;
      if (tokens.length !== 2) throw new WfdbError(`${where}: invalid segment line "${line}": expected a segment name and a sample count`);
      return { name: tokens[0], sampleCount: parseInteger(tokens[1], 'segment sample count', where) };
    });
    return { ...record, segments, signals: [], comments };
  }
  const signals = bodyLines.map(({ line, lineNumber }) => parseSignalLine(line, `${source} line ${lineNumber}`));
  return { ...record, segments: null, signals, comments };
}
