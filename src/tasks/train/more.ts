/**
 * Adapts a {@link MoreModel} to the trainer: the batch loss is
 * InfoNCE(report, X-ray) + InfoNCE(report, ECG) of a forward pass, and before
 * each batch the random generators of the three encoders (DropKey masks,
 * text dropout and LoRA dropout) are re-seeded from the trainer's per-batch
 * seed. The masks of a batch therefore depend only on the run seed and the
 * batch, and a resumed run draws the same masks as one that never stopped.
 */
import * as tf from '@tensorflow/tfjs';

import type { MoreModel } from '../../model/more';
import type { MoreBatch } from '../../model/types';
import { Rng } from '../../util/rng';
import type { BatchContext, TrainableModel } from '../train';

interface Seeded {
  rng: Rng;
}

function hasRng(part: unknown): part is Seeded {
  return typeof part === 'object' && part !== null && (part as Partial<Seeded>).rng instanceof Rng;
}

/** Returns the trainer's view of `model`; the model stays owned by the caller. */
export function moreTrainingModel(model: MoreModel): TrainableModel<MoreBatch> {
  const parts: unknown[] = [model.image, model.ecg, model.text];
  const seeded = parts.filter(hasRng);
  return {
    namedWeights: () => model.namedWeights(),
    trainableVariables: () => model.trainableVariables(),
    temperature: () => model.temperature.value(),
    batchLoss: (batch: MoreBatch, context: BatchContext): tf.Scalar => {
      const seeds = new Rng(context.seed);
      for (const part of seeded) part.rng.setState(new Rng(seeds.nextUint32()).getState());
      return tf.tidy(() => model.loss(model.forward(batch, { training: context.training })));
    },
  };
}
