/**
 * A small seeded pseudo-random generator (xoshiro128**, Blackman and Vigna)
 * whose whole state can be saved and restored, so shuffles, augmentations and
 * masks repeat exactly when a run resumes from a checkpoint.
 */

export type RngState = [number, number, number, number];

function splitMix32(seed: number): () => number {
  let value = seed >>> 0;
  return () => {
    value = (value + 0x9e3779b9) >>> 0;
    let z = value;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Rng {
  private s: RngState;

  constructor(seed: number) {
    if (!Number.isInteger(seed)) {
      throw new Error(`Invalid seed ${seed}: expected an integer`);
    }
    const next = splitMix32(seed);
    this.s = [next(), next(), next(), next()];
  }

  static fromState(state: RngState): Rng {
    const rng = new Rng(0);
    rng.setState(state);
    return rng;
  }

  getState(): RngState {
    return [...this.s] as RngState;
  }

  setState(state: RngState): void {
    if (state.length !== 4 || state.every((word) => word === 0)) {
      throw new Error(`Invalid generator state ${JSON.stringify(state)}: expected four 32-bit words, not all zero`);
    }
    this.s = state.map((word) => word >>> 0) as RngState;
  }

  /** Returns a uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    for (let i = 0; i < 4; i++) s[i] >>>= 0;
    return result;
  }

  /** Returns a uniform float in [0, 1) with 32 bits of randomness. */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Returns a uniform integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new Error(`Invalid range ${n}: expected a positive integer`);
    return Math.floor(this.uniform() * n);
  }

  /** Returns a standard normal sample (Box-Muller). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Shuffles `items` in place (Fisher-Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * Returns `size` values that are `hit` with probability `probability` and
 * `miss` otherwise, drawn by xoshiro128** from the state of `new Rng(seed)`.
 * The generator step is inlined because per-call `Rng` methods and
 * `tf.randomUniform` (JavaScript in tfjs 4.22) are about four times slower
 * for attention-sized masks.
 */
export function bernoulliMask(size: number, probability: number, seed: number, hit: number, miss: number): Float32Array {
  const mask = new Float32Array(size);
  const threshold = Math.floor(probability * 4294967296);
  let [s0, s1, s2, s3] = new Rng(seed).getState();
  for (let index = 0; index < size; index++) {
    const scrambled = Math.imul(s1, 5);
    const sample = Math.imul((scrambled << 7) | (scrambled >>> 25), 9) >>> 0;
    const shifted = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= shifted;
    s3 = (s3 << 11) | (s3 >>> 21);
    mask[index] = sample < threshold ? hit : miss;
  }
  return mask;
}
