/**
 * ECG preprocessing for the MoRE ECG encoder (Thapa et al., 2024, "MoRE:
 * Multi-Modal Contrastive Pre-training with Transformers on X-Rays, ECGs, and
 * Diagnostic Report"): NaN -> 0, polyphase resampling to 100 Hz, baseline wander
 * removal with two median filters (0.2 s then 0.6 s, 21 and 61 samples at
 * 100 Hz), and scaling of each lead to [-1, 1] by its own minimum and maximum.
 */

import { medianFilter, resamplePoly } from './filters';

/** A multi-lead signal stored row-major: lead l, sample t is `data[l * samples + t]`. */
export interface EcgArray<T extends Float32Array | Float64Array = Float32Array | Float64Array> {
  data: T;
  leads: number;
  samples: number;
}

export interface EcgPreprocessOptions {
  /** Output sampling rate in Hz (default 100, the rate the encoder expects). */
  targetRate?: number;
  /** Lengths of the two median filters in seconds (default [0.2, 0.6]); each becomes an odd number of samples. */
  baselineWindows?: readonly [number, number];
  /** Remove baseline wander (default true). */
  removeBaseline?: boolean;
  /** Scale each lead to [-1, 1] (default true). */
  scale?: boolean;
  /** Element type of the result (default `float32`, what the encoder takes). Computation is float64 throughout. */
  dtype?: 'float32' | 'float64';
}

/** Returns a copy of `x` with every NaN replaced by 0; other samples are untouched. */
export function replaceNaN(x: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const value = x[i];
    out[i] = Number.isNaN(value) ? 0 : value;
  }
  return out;
}

/** Returns the odd window length for `seconds` at `samplingRate`: 2 * round(seconds * rate / 2) + 1. */
export function medianWindowLength(seconds: number, samplingRate: number): number {
  return 2 * Math.round((seconds * samplingRate) / 2) + 1;
}

/**
 * Subtracts the baseline estimated by two chained median filters, the first of
 * `windows[0]` seconds and the second of `windows[1]` seconds applied to its output.
 */
export function removeBaselineWander(
  x: ArrayLike<number>,
  samplingRate: number,
  windows: readonly [number, number] = [0.2, 0.6],
): Float64Array {
  const first = medianFilter(x, medianWindowLength(windows[0], samplingRate));
  const baseline = medianFilter(first, medianWindowLength(windows[1], samplingRate));
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] - baseline[i];
  return out;
}

/**
 * Scales `x` linearly so its minimum maps to -1 and its maximum to 1. A constant
 * lead (maximum equal to minimum) becomes all zeros.
 * NOTE: the reference divides by zero there and produces NaN; zeros keep the batch finite.
 */
export function scaleToUnitRange(x: ArrayLike<number>): Float64Array {
  let low = Infinity;
  let high = -Infinity;
  for (let i = 0; i < x.length; i++) {
    if (x[i] < low) low = x[i];
    if (x[i] > high) high = x[i];
  }
  const out = new Float64Array(x.length);
  const range = high - low;
  if (!(range > 0)) return out;
  for (let i = 0; i < x.length; i++) out[i] = (2 * (x[i] - low)) / range - 1;
  return out;
}

function resamplingFactors(from: number, to: number): [number, number] {
  const scale = 1000;
  const up = Math.round(to * scale);
  const down = Math.round(from * scale);
  if (Math.abs(up / scale - to) > 1e-9 || Math.abs(down / scale - from) > 1e-9) {
    throw new Error(`Cannot resample from ${from} Hz to ${to} Hz: expected rates with at most three decimals`);
  }
  return [up, down];
}

/**
 * Runs the whole preprocessing on one record, where `leads` contains one array per lead
 * (in the order the caller wants in the output) at `samplingRate` Hz.
 * Returns a leads x samples array at `targetRate` Hz.
 */
export function preprocessEcg(
  leads: readonly ArrayLike<number>[],
  samplingRate: number,
  options: EcgPreprocessOptions = {},
): EcgArray {
  const targetRate = options.targetRate ?? 100;
  if (!(samplingRate > 0) || !(targetRate > 0)) {
    throw new Error(`Invalid sampling rates ${samplingRate} Hz -> ${targetRate} Hz: expected positive numbers`);
  }
  if (leads.length === 0) throw new Error('Invalid ECG: expected at least one lead');
  const length = leads[0].length;
  leads.forEach((lead, index) => {
    if (lead.length !== length) {
      throw new Error(`Invalid ECG: lead ${index} has ${lead.length} samples but lead 0 has ${length}`);
    }
  });
  const [up, down] = resamplingFactors(samplingRate, targetRate);

  const processed = leads.map((lead) => {
    let signal = replaceNaN(lead);
    if (samplingRate !== targetRate) signal = resamplePoly(signal, up, down);
    if (options.removeBaseline ?? true) {
      signal = removeBaselineWander(signal, targetRate, options.baselineWindows ?? [0.2, 0.6]);
    }
    if (options.scale ?? true) signal = scaleToUnitRange(signal);
    return signal;
  });

  const samples = processed[0].length;
  const data = options.dtype === 'float64' ? new Float64Array(leads.length * samples) : new Float32Array(leads.length * samples);
  processed.forEach((signal, index) => data.set(signal, index * samples));
  return { data, leads: leads.length, samples };
}
