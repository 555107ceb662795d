/**
 * Adapts a {@link MoreModel} to the trainer: the batch loss is
 * InfoNCE(report, X-ray) + InfoNCE(report, ECG) of a forward pass, computed
 * so that a compiled graph depends on how many samples have each modality,
 * not on which ones. Before
 * each batch the random generators of the three encoders (DropKey masks,
 * text dropout and LoRA dropout) are re-seeded from the trainer's per-batch
 * seed. The masks of a batch therefore depend only on the run seed and the
 * batch, and a resumed run draws the same masks as one that never stopped.
 */
import * as tf from '@tensorflow/tfjs';

import type { Batch } from '../../datasets/pipeline/types';
import { traceFeed } from '../../backend/graph/trace';
import { infoNce } from '../../model/loss';
import { type MoreModel, presentRowIndices } from '../../model/more';
import type { MoreBatch } from '../../model/types';
import { Rng } from '../../util/rng';
import type { BatchContext, BatchLayout, TrainableModel } from '../train';

interface Seeded {
  rng: Rng;
}

function hasRng(part: unknown): part is Seeded {
  return typeof part === 'object' && part !== null && (part as Partial<Seeded>).rng instanceof Rng;
}

/** Row indices of the samples that have each modality. */
interface PresentRows {
  image: number[];
  ecg: number[];
}

function batchRows(batch: MoreBatch): PresentRows {
  const B = batch.inputIds.shape[0];
  return {
    image: presentRowIndices('images', batch.images, batch.imagePresent, B),
    ecg: presentRowIndices('ecgs', batch.ecgs, batch.ecgPresent, B),
  };
}

/**
 * Computes `model.loss(model.forward(batch))` with the same operations, except
 * that each modality's row indices come from `rowIndices`. With indices
 * registered through traceFeed, one compiled graph serves every batch with
 * the same number of rows, whichever rows they are.
 */
function moreBatchLoss(model: MoreModel, batch: MoreBatch, training: boolean, rowIndices: (modality: keyof PresentRows) => tf.Tensor1D): tf.Scalar {
  const rows = batchRows(batch);
  const B = batch.inputIds.shape[0];
  return tf.tidy(() => {
    const text = model.textHead.apply(model.text.forward(batch.inputIds, batch.attentionMask, { training }).pooled, training);
    let total: tf.Scalar = tf.scalar(0);
    const modalities = [
      { modality: 'image' as const, input: batch.images, encode: (x: tf.Tensor) => model.image.forward(x as tf.Tensor4D, { training }), head: model.imageHead },
      { modality: 'ecg' as const, input: batch.ecgs, encode: (x: tf.Tensor) => model.ecg.forward(x as tf.Tensor3D, { training }), head: model.ecgHead },
    ];
    for (const { modality, input, encode, head } of modalities) {
      if (input === undefined || rows[modality].length === 0) continue;
      // All rows present: no gather, as MoreModel.forward and pairedInfoNce skip it.
      const indices = rows[modality].length === B ? undefined : rowIndices(modality);
      const embedding = head.apply(encode(indices === undefined ? input : tf.gather(input, indices)).pooled, training);
      const anchors = indices === undefined ? text : tf.gather(text, indices);
      total = tf.add(total, infoNce(anchors as tf.Tensor2D, embedding, model.temperature));
    }
    return total;
  });
}

/** Returns the trainer's view of `model`; the model stays owned by the caller. */
export function moreTrainingModel(model: MoreModel): TrainableModel<MoreBatch> {
  const parts: unknown[] = [model.image, model.ecg, model.text];
  const seeded = parts.filter(hasRng);
  const seedParts = (seed: number): void => {
    const seeds = new Rng(seed);
    for (const part of seeded) part.rng.setState(new Rng(seeds.nextUint32()).getState());
  };
  // Rows of the batch in training, which a replayed graph is fed.
  let current: PresentRows | undefined;
  const currentRows = (modality: keyof PresentRows): tf.Tensor1D => {
    if (current === undefined) throw new Error('A compiled MoRE batch step replayed before prepareBatch');
    return tf.tensor1d(current[modality], 'int32');
  };
  return {
    namedWeights: () => model.namedWeights(),
    trainableVariables: () => model.trainableVariables(),
    temperature: () => model.temperature.value(),
    // A compiled graph replays a batch without calling batchLoss, so the seeding happens here as well.
    prepareBatch: (context: BatchContext, batch: MoreBatch): void => {
      seedParts(context.seed);
      current = batchRows(batch);
    },
    // The key names the number of rows of each modality, not which rows: batchLoss feeds those.
    batchLayout: (batch: MoreBatch): BatchLayout => {
      const rows = batchRows(batch);
      const shape = (tensor: tf.Tensor | undefined): string => (tensor === undefined ? 'none' : `${tensor.dtype}[${tensor.shape.join(',')}]`);
      const candidates: (tf.Tensor | undefined)[] = [batch.inputIds, batch.attentionMask, batch.images, batch.ecgs];
      const tensors = candidates.filter((tensor): tensor is tf.Tensor => tensor !== undefined);
      const key = `ids ${shape(batch.inputIds)} mask ${shape(batch.attentionMask)} images ${shape(batch.images)} x ${rows.image.length} ` +
        `ecgs ${shape(batch.ecgs)} x ${rows.ecg.length}`;
      return { tensors, key };
    },
    batchLoss: (batch: MoreBatch, context: BatchContext): tf.Scalar => {
      seedParts(context.seed);
      const rows = batchRows(batch);
      const indices = (modality: keyof PresentRows): tf.Tensor1D =>
        traceFeed(tf.tensor1d(rows[modality], 'int32'), () => currentRows(modality));
      return moreBatchLoss(model, batch, context.training, indices);
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
