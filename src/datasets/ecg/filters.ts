/**
 * Signal-processing primitives for ECG preprocessing, written to give the same
 * numbers as SciPy: `resamplePoly` follows `scipy.signal.resample_poly` (Kaiser
 * window with beta 5, half length 10 * max(up, down), zero padding) and
 * `medianFilter` follows `scipy.signal.medfilt` (zero padding at both ends).
 */

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Modified Bessel function of the first kind, order 0, by its power series (converges for every real x). */
function besselI0(x: number): number {
  const quarterSquare = (x * x) / 4;
  let term = 1;
  let sum = 1;
  for (let k = 1; k < 500; k++) {
    term *= quarterSquare / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = Math.PI * x;
  return Math.sin(px) / px;
}

/**
 * Designs the low-pass FIR filter that `resample_poly` uses: `numTaps` taps,
 * cutoff `cutoff` relative to Nyquist, Kaiser window with `beta`, scaled to unit
 * gain at DC, as `scipy.signal.firwin(numTaps, cutoff, window=('kaiser', beta))`.
 */
export function firwinKaiser(numTaps: number, cutoff: number, beta: number): Float64Array {
  const taps = new Float64Array(numTaps);
  const centre = (numTaps - 1) / 2;
  const normaliser = besselI0(beta);
  let sum = 0;
  for (let n = 0; n < numTaps; n++) {
    const ratio = numTaps === 1 ? 0 : (2 * n) / (numTaps - 1) - 1;
    const window = besselI0(beta * Math.sqrt(Math.max(0, 1 - ratio * ratio))) / normaliser;
    taps[n] = cutoff * sinc(cutoff * (n - centre)) * window;
    sum += taps[n];
  }
  for (let n = 0; n < numTaps; n++) taps[n] /= sum;
  return taps;
}

/** Polyphase filter and its offsets for one (up, down) pair, as `resample_poly` lays them out. */
interface ResamplingPlan {
  filter: Float64Array;
  preRemove: number;
}

const planCache = new Map<string, ResamplingPlan>();

function resamplingPlan(up: number, down: number, inputLength: number, outputLength: number): ResamplingPlan {
  const key = `${up}/${down}/${inputLength}`;
  const cached = planCache.get(key);
  if (cached !== undefined) return cached;

  const maxRate = Math.max(up, down);
  const halfLength = 10 * maxRate;
  const design = firwinKaiser(2 * halfLength + 1, 1 / maxRate, 5.0);
  // Pad the filter in front so that output samples land on the filter centre,
  // and behind until the full convolution covers every kept output sample.
  const prePad = down - (halfLength % down);
  const preRemove = Math.floor((halfLength + prePad) / down);
  let postPad = 0;
  const fullLength = (filterLength: number) => Math.floor(((inputLength - 1) * up + filterLength - 1) / down) + 1;
  while (fullLength(design.length + prePad + postPad) < outputLength + preRemove) postPad++;
  const filter = new Float64Array(prePad + design.length + postPad);
  for (let i = 0; i < design.length; i++) filter[prePad + i] = design[i] * up;

  const plan = { filter, preRemove };
  if (planCache.size > 64) planCache.clear();
  planCache.set(key, plan);
  return plan;
}

/**
 * Resamples `x` by the rational factor `up / down` with a polyphase FIR filter,
 * as `scipy.signal.resample_poly(x, up, down)` with its default window and
 * constant (zero) padding. The output has ceil(x.length * up / down) samples.
 */
export function resamplePoly(x: ArrayLike<number>, up: number, down: number): Float64Array {
  if (!Number.isInteger(up) || !Number.isInteger(down) || up < 1 || down < 1) {
    throw new Error(`Invalid resampling factors up=${up}, down=${down}: expected positive integers`);
  }
  const divisor = gcd(up, down);
  up /= divisor;
  down /= divisor;
  const input = x instanceof Float64Array ? x : Float64Array.from(x);
  const inputLength = input.length;
  if (up === 1 && down === 1) return input.slice();

  const outputLength = Math.ceil((inputLength * up) / down);
  const { filter, preRemove } = resamplingPlan(up, down, inputLength, outputLength);
  const taps = filter.length;

  // y[m] = sum_j filter[j] * upsampled[p - j] with p = (m + preRemove) * down, where
  // upsampled[k * up] = x[k] and 0 elsewhere: only taps j = p - k * up contribute.
  const y = new Float64Array(outputLength);
  for (let m = 0; m < outputLength; m++) {
    const position = (m + preRemove) * down;
    const kHigh = Math.min(inputLength - 1, Math.floor(position / up));
    const kLow = Math.max(0, Math.ceil((position - taps + 1) / up));
    let accumulator = 0;
    for (let k = kHigh, j = position - kHigh * up; k >= kLow; k--, j += up) accumulator += filter[j] * input[k];
    y[m] = accumulator;
  }
  return y;
}

/**
 * Median filter with zero padding, as `scipy.signal.medfilt(x, kernel)`:
 * output i is the median of x[i - h .. i + h] (h = (kernel - 1) / 2), where
 * samples outside the signal count as 0. `kernel` must be odd.
 */
export function medianFilter(x: ArrayLike<number>, kernel: number): Float64Array {
  if (!Number.isInteger(kernel) || kernel < 1 || kernel % 2 === 0) {
    throw new Error(`Invalid median filter kernel ${kernel}: expected a positive odd integer`);
  }
  const n = x.length;
  const half = (kernel - 1) / 2;
  const valueAt = (i: number): number => (i >= 0 && i < n ? x[i] : 0);

  // A sorted copy of the current window, updated by one removal and one insertion per step.
  const window = new Float64Array(kernel);
  for (let i = -half; i <= half; i++) window[i + half] = valueAt(i);
  window.sort();

  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = window[half];
    if (i + 1 === n) break;
    replaceSorted(window, valueAt(i - half), valueAt(i + half + 1));
  }
  return out;
}

/** Removes one copy of `outgoing` from the sorted `window` and inserts `incoming`, keeping it sorted. */
function replaceSorted(window: Float64Array, outgoing: number, incoming: number): void {
  let at = lowerBound(window, outgoing);
  if (incoming >= outgoing) {
    while (at + 1 < window.length && window[at + 1] < incoming) {
      window[at] = window[at + 1];
      at++;
    }
  } else {
    while (at > 0 && window[at - 1] > incoming) {
      window[at] = window[at - 1];
      at--;
    }
  }
  window[at] = incoming;
}

function lowerBound(sorted: Float64Array, value: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sorted[middle] < value) low = middle + 1;
    else high = middle;
  }
  return low;
}
