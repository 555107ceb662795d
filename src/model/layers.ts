/**
 * Layers with PyTorch semantics and PyTorch weight layouts: Linear keeps its
 * weight as [out, in], LayerNorm and BatchNorm1d keep `weight` / `bias`, and
 * BatchNorm1d keeps `running_mean`, `running_var` and `num_batches_tracked`.
 */
import * as tf from '@tensorflow/tfjs';

import { traceFeed } from '../backend/graph/trace';
import { bernoulliMask, Rng } from '../util/rng';
import { Module } from './module';

/**
 * Samples N(0, std) truncated at two standard deviations. timm truncates at
 * +-2 in absolute terms, which cuts nothing at its std of 0.02, so fresh
 * weights differ slightly in distribution (loaded weights are unaffected).
 */
export function truncatedNormal(shape: number[], std: number): tf.Tensor {
  return tf.truncatedNormal(shape, 0, std, 'float32', nextInitialisationSeed());
}

let initialisation: Rng | undefined;

/**
 * Builds modules with every fresh weight drawn from `seed`, so two models
 * built with one seed start from the same weights. Outside such a call the
 * initialisers take TensorFlow.js's own unseeded random numbers.
 */
export function withInitialisationSeed<T>(seed: number, build: () => T): T {
  const previous = initialisation;
  initialisation = new Rng(seed);
  try {
    return build();
  } finally {
    initialisation = previous;
  }
}

/** Returns the seed of the next random initialiser, or undefined outside {@link withInitialisationSeed}. */
export function nextInitialisationSeed(): number | undefined {
  return initialisation?.nextUint32();
}

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** The argument type of `tf.customGrad`, which its typings do not export. */
export type CustomGradient = Parameters<typeof tf.customGrad>[0];

// A custom gradient keeps only the input for the backward pass. Built from
// primitive ops, GELU would keep four tensors of the MLP's hidden size per block.
const geluWithGradient = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x]);
  const value = tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))));
  const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor =>
    tf.tidy(() => {
      const [input] = saved;
      // d/dx [x Phi(x)] = Phi(x) + x phi(x), with phi the standard normal density.
      const cdf = tf.mul(tf.add(1, tf.erf(tf.mul(input, Math.SQRT1_2))), 0.5);
      const density = tf.mul(tf.exp(tf.mul(tf.square(input), -0.5)), INV_SQRT_2PI);
      return tf.mul(dy, tf.add(cdf, tf.mul(input, density)));
    });
  return { value, gradFunc };
}) as unknown as CustomGradient);

/** Applies GELU in the exact erf form (PyTorch `nn.GELU()` default, not the tanh approximation). */
export function gelu<T extends tf.Tensor>(x: T): T {
  return geluWithGradient(x) as T;
}

/**
 * Applies inverted dropout: each value is zeroed with probability `rate` and
 * the rest scaled by 1 / (1 - rate). `seed` draws the mask's seed and is
 * called once per call; a compiled graph calls it again on each replay for a
 * fresh mask.
 */
export function seededDropout<T extends tf.Tensor>(x: T, rate: number, seed: () => number): T {
  const scale = 1 / (1 - rate);
  const multiplier = (maskSeed: number): tf.Tensor => tf.tensor(bernoulliMask(x.size, rate, maskSeed, 0, scale), x.shape);
  return tf.tidy(() => tf.mul(x, traceFeed(multiplier(seed()), () => multiplier(seed()))) as T);
}

/**
 * Mean and biased variance over `axes`, both keeping the reduced axes. The
 * squared deviations are a product rather than `tf.moments`' Square: in a
 * compiled graph, TensorFlow 2.21's oneDNN rewrites fuse the Square pattern
 * into a layer normalisation that differed from eager results by up to
 * 1.6e-4 on a unit-scale input.
 */
export function meanAndVariance(x: tf.Tensor, axes: number[]): { mean: tf.Tensor; variance: tf.Tensor } {
  const mean = tf.mean(x, axes, true);
  const centred = tf.sub(x, mean);
  return { mean, variance: tf.mean(tf.mul(centred, centred), axes, true) };
}

type LayerNormFunction = (x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor) => tf.Tensor;

/**
 * Builds layer normalisation over the last axis with a custom gradient that
 * keeps only the normalised input and the reciprocal standard deviation.
 */
function layerNormWithGradient(epsilon: number): LayerNormFunction {
  return tf.customGrad(((x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, save: tf.GradSaveFunc) => {
    const axis = x.rank - 1;
    const [normalised, inverseStd] = tf.tidy(() => {
      const { mean, variance } = meanAndVariance(x, [axis]);
      const inverse = tf.rsqrt(tf.add(variance, epsilon));
      return [tf.mul(tf.sub(x, mean), inverse), inverse];
    });
    save([normalised, inverseStd, weight]);
    const value = tf.tidy(() => tf.add(tf.mul(normalised, weight), bias));
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] =>
      tf.tidy(() => {
        const [xHat, inverse, gamma] = saved;
        const outerAxes = xHat.shape.slice(0, -1).map((_, index) => index);
        const dxHat = tf.mul(dy, gamma);
        // dx = inverse * (dxHat - mean(dxHat) - xHat * mean(dxHat * xHat)), means over the last axis.
        const centred = tf.sub(dxHat, tf.mean(dxHat, axis, true));
        const dx = tf.mul(inverse, tf.sub(centred, tf.mul(xHat, tf.mean(tf.mul(dxHat, xHat), axis, true))));
        const dWeight = tf.sum(tf.mul(dy, xHat), outerAxes);
        const dBias = tf.sum(dy, outerAxes);
        return [dx, dWeight, dBias];
      });
    return { value, gradFunc };
  }) as unknown as CustomGradient) as LayerNormFunction;
}

/** y = x W^T + b over the last axis of an input of any rank. */
export class Linear extends Module {
  readonly weight: tf.Variable<tf.Rank.R2>;
  readonly bias?: tf.Variable<tf.Rank.R1>;

  constructor(readonly inFeatures: number, readonly outFeatures: number, useBias = true, initStd = 0.02) {
    super();
    this.weight = this.addWeight('weight', truncatedNormal([outFeatures, inFeatures], initStd) as tf.Tensor2D);
    if (useBias) this.bias = this.addWeight('bias', tf.zeros([outFeatures]) as tf.Tensor1D);
  }

  apply<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => {
      const shape = x.shape;
      const last = shape[shape.length - 1];
      if (last !== this.inFeatures) {
        throw new Error(`Linear expected last axis ${this.inFeatures}, got input of shape [${shape.join(', ')}]`);
      }
      // Each reshape keeps its input for the backward pass, so rank-2 inputs skip them.
      const rows = x.rank === 2 ? (x as unknown as tf.Tensor2D) : (tf.reshape(x, [-1, last]) as tf.Tensor2D); // [N, in]
      // The fused kernel adds the bias in the same op, one tensor fewer per layer.
      const y = tf.fused.matMul({ a: rows, b: this.weight, transposeB: true, bias: this.bias }); // [N, out]
      return (x.rank === 2 ? y : tf.reshape(y, [...shape.slice(0, -1), this.outFeatures])) as T;
    });
  }
}

/** Layer normalisation over the last axis (biased variance, as PyTorch). */
export class LayerNorm extends Module {
  readonly weight: tf.Variable<tf.Rank.R1>;
  readonly bias: tf.Variable<tf.Rank.R1>;

  private readonly normalise: LayerNormFunction;

  constructor(readonly features: number, readonly eps: number) {
    super();
    this.weight = this.addWeight('weight', tf.ones([features]) as tf.Tensor1D);
    this.bias = this.addWeight('bias', tf.zeros([features]) as tf.Tensor1D);
    this.normalise = layerNormWithGradient(eps);
  }

  apply<T extends tf.Tensor>(x: T): T {
    return this.normalise(x, this.weight, this.bias) as T;
  }
}

/**
 * Batch normalisation over the channel (last) axis of [B, C] or [B, L, C]
 * inputs, matching `torch.nn.BatchNorm1d` (momentum 0.1, eps 1e-5). Training
 * normalises with the biased batch variance and moves the running variance
 * towards the unbiased one. Evaluation uses the running statistics.
 */
export class BatchNorm1d extends Module {
  readonly weight: tf.Variable<tf.Rank.R1>;
  readonly bias: tf.Variable<tf.Rank.R1>;
  readonly runningMean: tf.Variable<tf.Rank.R1>;
  readonly runningVar: tf.Variable<tf.Rank.R1>;
  readonly numBatchesTracked: tf.Variable<tf.Rank.R0>;

  constructor(readonly features: number, readonly eps = 1e-5, readonly momentum = 0.1) {
    super();
    this.weight = this.addWeight('weight', tf.ones([features]) as tf.Tensor1D);
    this.bias = this.addWeight('bias', tf.zeros([features]) as tf.Tensor1D);
    this.runningMean = this.addWeight('running_mean', tf.zeros([features]) as tf.Tensor1D, false);
    this.runningVar = this.addWeight('running_var', tf.ones([features]) as tf.Tensor1D, false);
    this.numBatchesTracked = this.addWeight('num_batches_tracked', tf.scalar(0), false);
  }

  /** Normalises `x`. In training it also updates the running statistics once. */
  apply<T extends tf.Tensor>(x: T, training: boolean): T {
    return tf.tidy(() => {
      if (x.shape[x.rank - 1] !== this.features) {
        throw new Error(`BatchNorm1d expected ${this.features} channels last, got input of shape [${x.shape.join(', ')}]`);
      }
      const axes = x.shape.slice(0, -1).map((_, axis) => axis);
      let mean: tf.Tensor;
      let variance: tf.Tensor;
      if (training) {
        const count = x.size / this.features;
        if (count < 2) {
          throw new Error(`BatchNorm1d in training needs more than one value per channel, got input of shape [${x.shape.join(', ')}]`);
        }
        ({ mean, variance } = meanAndVariance(x, axes));
        mean = tf.reshape(mean, [this.features]);
        variance = tf.reshape(variance, [this.features]);
        this.updateRunningStats(mean, variance, count);
      } else {
        mean = this.runningMean;
        variance = this.runningVar;
      }
      const normalised = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.eps)));
      return tf.add(tf.mul(normalised, this.weight), this.bias) as T;
    });
  }

  private updateRunningStats(mean: tf.Tensor, biasedVariance: tf.Tensor, count: number): void {
    const m = this.momentum;
    const unbiased = tf.mul(biasedVariance, count / (count - 1));
    this.runningMean.assign(tf.add(tf.mul(this.runningMean, 1 - m), tf.mul(mean, m)) as tf.Tensor1D);
    this.runningVar.assign(tf.add(tf.mul(this.runningVar, 1 - m), tf.mul(unbiased, m)) as tf.Tensor1D);
    this.numBatchesTracked.assign(tf.add(this.numBatchesTracked, 1) as tf.Scalar);
  }
}
