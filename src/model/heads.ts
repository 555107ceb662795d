/**
 * Projection heads that map encoder features into the shared MoRE space.
 * Names follow the reference's `ProjectionHead`. The nonlinear head is
 * `layers.0` (Linear without bias + BatchNorm1d), a ReLU, then `layers.2`
 * (the same again). The linear head is `layers.linear` (Linear with bias).
 */
import * as tf from '@tensorflow/tfjs';

import { type HeadConfig, validateHeadConfig } from './config';
import { BatchNorm1d, Linear } from './layers';
import { Module } from './module';

/** Linear followed by an optional BatchNorm1d, with the names `linear` and `bn`. */
export class LinearNorm extends Module {
  readonly linear: Linear;
  readonly bn?: BatchNorm1d;

  constructor(inputDim: number, outputDim: number, useBias: boolean, useNorm: boolean) {
    super();
    this.linear = this.addChild('linear', new Linear(inputDim, outputDim, useBias));
    if (useNorm) this.bn = this.addChild('bn', new BatchNorm1d(outputDim));
  }

  apply(x: tf.Tensor2D, training: boolean): tf.Tensor2D {
    return tf.tidy(() => {
      const projected = this.linear.apply(x);
      return this.bn !== undefined ? this.bn.apply(projected, training) : projected;
    });
  }
}

/** Maps [B, inputDim] features to [B, outputDim] shared-space embeddings. */
export class ProjectionHead extends Module {
  private readonly stages: LinearNorm[];

  constructor(readonly config: HeadConfig) {
    super();
    validateHeadConfig(config);
    const { kind, inputDim, hiddenDim, outputDim } = config;
    if (kind === 'linear') {
      // The reference's linear head is one LinearLayer registered directly as `layers`.
      const single = new LinearNorm(inputDim, outputDim, true, false);
      this.addChild('layers', single);
      this.stages = [single];
    } else {
      this.stages = [
        this.addChild('layers.0', new LinearNorm(inputDim, hiddenDim, false, true)),
        this.addChild('layers.2', new LinearNorm(hiddenDim, outputDim, false, true)),
      ];
    }
  }

  /** Projects `features`; training uses and updates the BatchNorm batch statistics. */
  apply(features: tf.Tensor2D, training = false): tf.Tensor2D {
    const { inputDim } = this.config;
    if (features.rank !== 2 || features.shape[1] !== inputDim) {
      throw new Error(`Projection head expected features [B, ${inputDim}], got [${features.shape.join(', ')}]`);
    }
    return tf.tidy(() => {
      let x = this.stages[0].apply(features, training);
      for (const stage of this.stages.slice(1)) x = stage.apply(tf.relu(x), training);
      return x;
    });
  }
}
