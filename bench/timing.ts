/** Timing helpers shared by the backend, model and text benchmarks. */

/** Returns calls per second of `step` after one warm-up call. `step` must wait for its result. */
export function callsPerSecond(step: () => void, minSeconds: number, minIterations: number): number {
  step();
  let iterations = 0;
  const started = process.hrtime.bigint();
  const elapsed = (): number => Number(process.hrtime.bigint() - started) / 1e9;
  while (iterations < minIterations || elapsed() < minSeconds) {
    step();
    iterations += 1;
  }
  return iterations / elapsed();
}

/** Rounds per inference figure, alternating eager and compiled calls so that load changes reach both. */
export const INFERENCE_ROUNDS = 3;

/** Returns the median of `values` (the upper one of the middle two for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
