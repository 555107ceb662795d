/**
 * Adapts a {@link MoreModel} to the trainer: the batch loss is
 * InfoNCE(report, X-ray) + InfoNCE(report, ECG) of a forward pass, and before
 * each batch the random generators of the three encoders (DropKey masks,
 * text dropout and LoRA dropout) are re-seeded from the trainer's per-batch
 * seed. The masks of a batch therefore depend only on the run seed and the
 * batch, and a resumed run draws the same masks as one that never stopped.
 */
import * as tf from '@tensorflow/tfjs';

import type { Batch } from '../../datasets/pipeline/types';
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
  const seedParts = (seed: number): void => {
    const seeds = new Rng(seed);
    for (const part of seeded) part.rng.setState(new Rng(seeds.nextUint32()).getState());
  };
  return {
    namedWeights: () => model.namedWeights(),
    trainableVariables: () => model.trainableVariables(),
    temperature: () => model.temperature.value(),
    // A compiled graph replays a batch without calling batchLoss, so the seeding happens here as well.
    prepareBatch: (context: BatchContext): void => seedParts(context.seed),
    batchLoss: (batch: MoreBatch, context: BatchContext): tf.Scalar => {
      seedParts(context.seed);
      return tf.tidy(() => model.loss(model.forward(batch, { training: context.training })));
    },
  };
}

/** Token ids of a batch of texts, row-major [batchSize x sequenceLength] (the tokenizer's `encodeBatch` result fits). */
export interface TokenizedTexts {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  batchSize: number;
  sequenceLength: number;
}

/**
 * Builds the model's batch from a batch-pipeline batch: X-rays [B, H, W, C]
 * and ECGs [B, leads, samples] as tensors with their presence flags (a
 * modality no sample has is left out), and the texts through `tokenize`.
 * The caller owns the tensors; the trainer disposes them after the step.
 */
export function moreBatchFromPipeline(batch: Batch, tokenize: (texts: string[]) => TokenizedTexts): MoreBatch {
  const B = batch.ids.length;
  const tokens = tokenize(batch.texts);
  if (tokens.batchSize !== B || tokens.inputIds.length !== B * tokens.sequenceLength) {
    throw new Error(`Tokenized ${tokens.batchSize} texts of length ${tokens.sequenceLength} (${tokens.inputIds.length} ids) ` +
      `for a batch of ${B}; expected ${B} rows`);
  }
  const imagePresent = Array.from(batch.xrayMask, (flag) => flag === 1);
  const ecgPresent = Array.from(batch.ecgMask, (flag) => flag === 1);
  const result: MoreBatch = {
    inputIds: tf.tensor2d(tokens.inputIds, [B, tokens.sequenceLength], 'int32'),
    attentionMask: tf.tensor2d(tokens.attentionMask, [B, tokens.sequenceLength], 'int32'),
    imagePresent,
    ecgPresent,
  };
  if (imagePresent.some(Boolean)) {
    if (batch.xrayShape.length !== 4) throw new Error(`X-ray batch shape [${batch.xrayShape}]: expected [B, H, W, C]`);
    result.images = tf.tensor4d(batch.xray, batch.xrayShape as [number, number, number, number]);
  }
  if (ecgPresent.some(Boolean)) {
    if (batch.ecgShape.length !== 3) throw new Error(`ECG batch shape [${batch.ecgShape}]: expected [B, leads, samples]`);
    result.ecgs = tf.tensor3d(batch.ecg, batch.ecgShape as [number, number, number]);
  }
  return result;
}
