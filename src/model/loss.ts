/**
 * Contrastive losses of MoRE: InfoNCE (van den Oord et al., 2018) in the
 * symmetric CLIP form (Radford et al., 2021). Both sides are L2-normalised
 * and the logits are cosine similarities divided by the temperature. The
 * cross-entropy with the diagonal as targets is averaged over both directions.
 * The MoRE total is InfoNCE(report, X-ray) + InfoNCE(report, ECG), each over
 * the pairs whose X-ray or ECG exists.
 */
import * as tf from '@tensorflow/tfjs';

import { DEFAULT_TEMPERATURE, type TemperatureConfig, validateTemperatureConfig } from './config';
import type { ModalityEmbedding } from './types';

/** Norm floor of L2 normalisation, as `torch.nn.functional.normalize` (eps 1e-12). */
const NORM_EPS = 1e-12;

/**
 * The temperature as a logit multiplier (1 / temperature). Fixed: a constant.
 * Learnable: `logit_scale` contains log(1 / temperature) and the multiplier is
 * exp(min(logit_scale, log(maxScale))), so it never exceeds `maxScale`.
 */
export class Temperature {
  readonly config: TemperatureConfig;
  /** log(1 / temperature); a trainable variable only in learnable mode. */
  readonly logitScale?: tf.Variable<tf.Rank.R0>;

  constructor(config: Partial<TemperatureConfig> = {}) {
    this.config = { ...DEFAULT_TEMPERATURE, ...config };
    validateTemperatureConfig(this.config);
    if (this.config.mode === 'learnable') {
      this.logitScale = tf.variable(tf.scalar(Math.log(1 / this.config.initial)), true);
    }
  }

  /** Returns the logit multiplier as a scalar tensor (the caller disposes it). */
  multiplier(): tf.Scalar {
    if (this.logitScale === undefined) return tf.scalar(1 / this.config.initial);
    return tf.tidy(() => tf.exp(tf.minimum(this.logitScale!, Math.log(this.config.maxScale))) as tf.Scalar);
  }

  /** Returns the current temperature, reading the variable back in learnable mode. */
  value(): number {
    const multiplier = this.multiplier();
    const value = 1 / multiplier.dataSync()[0];
    multiplier.dispose();
    return value;
  }

  trainableVariables(): tf.Variable[] {
    return this.logitScale !== undefined ? [this.logitScale] : [];
  }

  namedWeights(): Map<string, tf.Variable> {
    return this.logitScale !== undefined ? new Map([['logit_scale', this.logitScale]]) : new Map();
  }

  dispose(): void {
    this.logitScale?.dispose();
  }
}

/** A temperature given as a number (fixed) or as a {@link Temperature}. */
export type TemperatureLike = number | Temperature;

function multiplierOf(temperature: TemperatureLike): tf.Scalar {
  if (typeof temperature !== 'number') return temperature.multiplier();
  if (!(temperature > 0) || !Number.isFinite(temperature)) {
    throw new Error(`Invalid temperature ${temperature}: expected a positive number`);
  }
  return tf.scalar(1 / temperature);
}

/** Scales each row to unit L2 norm (rows of norm below 1e-12 are divided by 1e-12). */
export function l2Normalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.norm(x, 'euclidean', 1, true), NORM_EPS)));
}

/** Returns the [N, N] logits: cosine similarity of every row of `a` with every row of `b`, over the temperature. */
export function contrastiveLogits(a: tf.Tensor2D, b: tf.Tensor2D, temperature: TemperatureLike): tf.Tensor2D {
  checkPair(a, b);
  return tf.tidy(() => tf.mul(tf.matMul(l2Normalize(a), l2Normalize(b), false, true), multiplierOf(temperature)));
}

/**
 * Symmetric InfoNCE of N pairs (row i of `a` matches row i of `b`): the mean
 * of the a->b and b->a cross-entropies with the diagonal as targets.
 */
export function infoNce(a: tf.Tensor2D, b: tf.Tensor2D, temperature: TemperatureLike): tf.Scalar {
  return tf.tidy(() => {
    const logits = contrastiveLogits(a, b, temperature); // [N, N]
    const N = logits.shape[0];
    const diagonal = tf.sum(tf.mul(logits, tf.eye(N)), 1); // [N]
    const aToB = tf.mean(tf.sub(tf.logSumExp(logits, 1), diagonal));
    const bToA = tf.mean(tf.sub(tf.logSumExp(logits, 0), diagonal));
    return tf.div(tf.add(aToB, bToA), 2) as tf.Scalar;
  });
}

/**
 * InfoNCE between the report embeddings [B, dim] and the embeddings of the
 * rows that have the other modality. Returns 0 when no row has it.
 */
export function pairedInfoNce(text: tf.Tensor2D, other: ModalityEmbedding, temperature: TemperatureLike): tf.Scalar {
  const { embedding, rows } = other;
  if (embedding.shape[0] !== rows.length) {
    throw new Error(`Embedding has ${embedding.shape[0]} rows but ${rows.length} row indices were given`);
  }
  const batch = text.shape[0];
  for (const row of rows) {
    if (!Number.isInteger(row) || row < 0 || row >= batch) {
      throw new Error(`Invalid row index ${row}: expected an integer in [0, ${batch})`);
    }
  }
  if (rows.length === 0) return tf.scalar(0);
  return tf.tidy(() => {
    const anchors = rows.length === batch && rows.every((row, index) => row === index) ? text : tf.gather(text, rows);
    return infoNce(anchors, embedding, temperature);
  });
}

/** Picks the rows flagged present from a full-batch [B, dim] embedding. */
export function presentRows(embedding: tf.Tensor2D, present: boolean[]): ModalityEmbedding {
  if (present.length !== embedding.shape[0]) {
    throw new Error(`Presence flags have length ${present.length}, expected the batch size ${embedding.shape[0]}`);
  }
  const rows = present.flatMap((flag, row) => (flag ? [row] : []));
  return { embedding: tf.gather(embedding, rows) as tf.Tensor2D, rows };
}

/** Computes the MoRE loss, InfoNCE(report, X-ray) + InfoNCE(report, ECG), over present pairs. */
export function moreLoss(
  output: { text: tf.Tensor2D; image?: ModalityEmbedding; ecg?: ModalityEmbedding },
  temperature: TemperatureLike,
): tf.Scalar {
  return tf.tidy(() => {
    let total: tf.Scalar = tf.scalar(0);
    if (output.image !== undefined) total = tf.add(total, pairedInfoNce(output.text, output.image, temperature));
    if (output.ecg !== undefined) total = tf.add(total, pairedInfoNce(output.text, output.ecg, temperature));
    return total;
  });
}

function checkPair(a: tf.Tensor2D, b: tf.Tensor2D): void {
  if (a.rank !== 2 || b.rank !== 2 || a.shape[0] !== b.shape[0] || a.shape[1] !== b.shape[1]) {
    throw new Error(`InfoNCE expected two [N, dim] embeddings of one shape, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`);
  }
  if (a.shape[0] === 0) throw new Error('InfoNCE expected at least one pair, got 0');
}
