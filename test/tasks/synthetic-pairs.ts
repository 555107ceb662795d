// Seeded synthetic X-ray, ECG and report batches for the pre-training tests.
import { tf } from '../../src/backend';
import type { MoreBatch } from '../../src/model';
import type { BatchSource } from '../../src/tasks/train';
import { Rng } from '../../src/util/rng';

export interface SyntheticPairsOptions {
  samples: number;
  /** Report length in tokens, padding included. */
  tokens: number;
  imageSize: number;
  /** Seed of sample 0; sample i draws from seed + i. */
  seed: number;
  /** Whether a sample has its X-ray (default: all do). */
  hasImage?: (index: number) => boolean;
  /** Whether a sample has its ECG (default: all do). */
  hasEcg?: (index: number) => boolean;
}

/** Samples of random X-rays (normal), ECGs (uniform in [-1, 1]) and RoBERTa-style token ids. */
export class SyntheticPairs implements BatchSource<MoreBatch> {
  readonly size: number;

  constructor(private readonly options: SyntheticPairsOptions) {
    this.size = options.samples;
  }

  loadBatch(indices: number[]): MoreBatch {
    const { tokens: T, imageSize, seed, hasImage, hasEcg } = this.options;
    const images: number[] = [];
    const ecgs: number[] = [];
    const ids: number[][] = [];
    const mask: number[][] = [];
    for (const index of indices) {
      const rng = new Rng(seed + index);
      for (let i = 0; i < imageSize * imageSize * 3; i++) images.push(rng.normal());
      for (let i = 0; i < 12 * 100; i++) ecgs.push(rng.uniform() * 2 - 1);
      // <s> (0), random words, </s> (2), then padding (1).
      const length = 4 + rng.int(T - 4);
      const tokens = [0];
      while (tokens.length < length - 1) tokens.push(3 + rng.int(900));
      tokens.push(2);
      while (tokens.length < T) tokens.push(1);
      ids.push(tokens);
      mask.push(tokens.map((_, t) => (t < length ? 1 : 0)));
    }
    const batch: MoreBatch = {
      images: tf.tensor4d(images, [indices.length, imageSize, imageSize, 3]),
      ecgs: tf.tensor3d(ecgs, [indices.length, 12, 100]),
      inputIds: tf.tensor2d(ids, undefined, 'int32'),
      attentionMask: tf.tensor2d(mask, undefined, 'int32'),
    };
    if (hasImage !== undefined) batch.imagePresent = indices.map(hasImage);
    if (hasEcg !== undefined) batch.ecgPresent = indices.map(hasEcg);
    return batch;
  }
}
