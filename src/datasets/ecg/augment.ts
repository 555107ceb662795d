/**
 * Training augmentations for 12-lead ECGs. Every random choice draws from the
 * caller's seeded `Rng`, so a run resumed with a saved generator state repeats
 * the same augmentations. All functions return a new array and leave the input alone.
 */

import type { Rng } from '../../util/rng';
import type { EcgArray } from './preprocess';

type Samples = Float32Array | Float64Array;

function emptyLike<T extends Samples>(data: T): T {
  return (data instanceof Float32Array ? new Float32Array(data.length) : new Float64Array(data.length)) as T;
}

/** Returns the start index of each of `count` near-equal segments of `length` samples, plus `length` at the end. */
export function segmentBoundaries(length: number, count: number): number[] {
  if (!Number.isInteger(count) || count < 1 || count > length) {
    throw new Error(`Invalid segment count ${count} for ${length} samples: expected an integer in [1, ${length}]`);
  }
  return Array.from({ length: count + 1 }, (_, i) => Math.round((i * length) / count));
}

/** Linear interpolation of `source[start, end)` onto `outLength` evenly spaced points that include both ends. */
function interpolateSegment(source: Samples, start: number, end: number, out: Samples, outStart: number, outLength: number): void {
  const inLength = end - start;
  for (let j = 0; j < outLength; j++) {
    const position = outLength === 1 || inLength === 1 ? 0 : (j * (inLength - 1)) / (outLength - 1);
    const left = Math.floor(position);
    const right = Math.min(left + 1, inLength - 1);
    const weight = position - left;
    out[outStart + j] = source[start + left] * (1 - weight) + source[start + right] * weight;
  }
}

/**
 * Time warp: cuts the signal into `segments` pieces, stretches a randomly chosen
 * half of them by `factor` and squeezes the rest by `factor` (linear
 * interpolation), and joins them again, keeping the total length. Every lead
 * is warped the same way, so the leads stay aligned.
 */
export function timeWarp<T extends Samples>(ecg: EcgArray<T>, rng: Rng, segments = 4, factor = 0.25): EcgArray<T> {
  const { leads, samples } = ecg;
  const bounds = segmentBoundaries(samples, segments);
  const stretched = Math.floor(segments / 2);
  const scales = rng.shuffle(Array.from({ length: segments }, (_, i) => (i < stretched ? 1 + factor : 1 - factor)));

  const targetLengths = scales.map((scale, i) => Math.max(1, Math.round((bounds[i + 1] - bounds[i]) * scale)));
  // Rounding may leave the total a few samples off; the last segment absorbs the difference.
  const total = targetLengths.reduce((a, b) => a + b, 0);
  targetLengths[segments - 1] += samples - total;
  if (targetLengths[segments - 1] < 1) {
    throw new Error(`Cannot time-warp ${samples} samples into ${segments} segments: the signal is too short`);
  }

  const data = emptyLike(ecg.data);
  for (let lead = 0; lead < leads; lead++) {
    const offset = lead * samples;
    let written = 0;
    for (let i = 0; i < segments; i++) {
      interpolateSegment(ecg.data, offset + bounds[i], offset + bounds[i + 1], data, offset + written, targetLengths[i]);
      written += targetLengths[i];
    }
  }
  return { data, leads, samples };
}

/** Segment permutation: cuts each lead into `segments` pieces and joins them in a random order drawn per lead. */
export function permuteSegments<T extends Samples>(ecg: EcgArray<T>, rng: Rng, segments = 4): EcgArray<T> {
  const { leads, samples } = ecg;
  const bounds = segmentBoundaries(samples, segments);
  const data = emptyLike(ecg.data);
  for (let lead = 0; lead < leads; lead++) {
    const offset = lead * samples;
    const order = rng.shuffle(Array.from({ length: segments }, (_, i) => i));
    let written = 0;
    for (const piece of order) {
      data.set(ecg.data.subarray(offset + bounds[piece], offset + bounds[piece + 1]), offset + written);
      written += bounds[piece + 1] - bounds[piece];
    }
  }
  return { data, leads, samples };
}

/** Adds independent Gaussian noise with standard deviation `std` to every sample. */
export function addGaussianNoise<T extends Samples>(ecg: EcgArray<T>, rng: Rng, std = 0.01): EcgArray<T> {
  const data = emptyLike(ecg.data);
  for (let i = 0; i < data.length; i++) data[i] = ecg.data[i] + std * rng.normal();
  return { data, leads: ecg.leads, samples: ecg.samples };
}

/** Multiplies each lead by its own factor drawn from a normal distribution with mean 1 and standard deviation `sigma`. */
export function scaleRandomly<T extends Samples>(ecg: EcgArray<T>, rng: Rng, sigma = 0.1): EcgArray<T> {
  const { leads, samples } = ecg;
  const data = emptyLike(ecg.data);
  for (let lead = 0; lead < leads; lead++) {
    const factor = 1 + sigma * rng.normal();
    for (let t = lead * samples; t < (lead + 1) * samples; t++) data[t] = ecg.data[t] * factor;
  }
  return { data, leads, samples };
}

/** Negates the whole record (every lead) with probability `probability`. */
export function flipSign<T extends Samples>(ecg: EcgArray<T>, rng: Rng, probability = 0.5): EcgArray<T> {
  const data = emptyLike(ecg.data);
  const sign = rng.uniform() < probability ? -1 : 1;
  for (let i = 0; i < data.length; i++) data[i] = sign * ecg.data[i];
  return { data, leads: ecg.leads, samples: ecg.samples };
}

export type EcgAugmentationChoice = 'timeWarp' | 'permuteSegments' | 'none';
export const ECG_AUGMENTATION_CHOICES: readonly EcgAugmentationChoice[] = ['timeWarp', 'permuteSegments', 'none'];

export interface EcgAugmentOptions {
  /** The augmentations to pick one of, uniformly (default: time warp, segment permutation or nothing, as MoRE trains). */
  choices?: readonly EcgAugmentationChoice[];
  /** Segments for time warp and permutation (default 4). */
  segments?: number;
  /** Stretch and squeeze factor of the time warp (default 0.25). */
  warpFactor?: number;
  /** Standard deviation of added Gaussian noise, applied after the chosen augmentation; off when absent. */
  noiseStd?: number;
  /** Standard deviation of the per-lead random scaling; off when absent. */
  scaleSigma?: number;
  /** Probability of a sign flip; off when absent. */
  signFlipProbability?: number;
}

/** Applies one augmentation picked from `options.choices`, then the optional noise, scaling and sign flip. */
export function augmentEcg<T extends Samples>(ecg: EcgArray<T>, rng: Rng, options: EcgAugmentOptions = {}): EcgArray<T> {
  const choices = options.choices ?? ECG_AUGMENTATION_CHOICES;
  if (choices.length === 0) throw new Error('Invalid ECG augmentation choices: expected at least one');
  for (const choice of choices) {
    if (!ECG_AUGMENTATION_CHOICES.includes(choice)) {
      throw new Error(`Invalid ECG augmentation "${choice}": expected one of ${ECG_AUGMENTATION_CHOICES.join(', ')}`);
    }
  }
  const segments = options.segments ?? 4;
  const choice = choices[rng.int(choices.length)];
  let result: EcgArray<T> = ecg;
  if (choice === 'timeWarp') result = timeWarp(ecg, rng, segments, options.warpFactor ?? 0.25);
  else if (choice === 'permuteSegments') result = permuteSegments(ecg, rng, segments);
  else result = { data: ecg.data.slice() as T, leads: ecg.leads, samples: ecg.samples };

  if (options.noiseStd !== undefined) result = addGaussianNoise(result, rng, options.noiseStd);
  if (options.scaleSigma !== undefined) result = scaleRandomly(result, rng, options.scaleSigma);
  if (options.signFlipProbability !== undefined) result = flipSign(result, rng, options.signFlipProbability);
  return result;
}
