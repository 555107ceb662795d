/**
 * Decoded, preprocessed sample data held in memory for a run, and the batch
 * source the trainer draws MoRE batches from. The sample corpus is small, so
 * every ECG and X-ray is read and preprocessed once; training augmentation
 * then works on the cached arrays.
 */
import * as tf from '@tensorflow/tfjs';

import { augmentEcg } from '../datasets/ecg/augment';
import { loadPreprocessedEcg } from '../datasets/ecg/load';
import type { ReportTokenizer } from '../datasets/tokenizer';
import { augmentXray } from '../datasets/xray/augment';
import { claheUint8, decodeXrayFile, normaliseToRgb, XRAY_SIZE } from '../datasets/xray/preprocess';
import type { MoreBatch } from '../model/types';
import type { BatchSource } from '../tasks/train';
import type { ProgressReporter } from '../util/progress';
import type { Rng } from '../util/rng';
import type { CorpusSample } from './corpus';

export const ECG_LEADS = 12;
export const ECG_SAMPLES = 1000;

/** One sample ready for batching. */
export interface PreparedSample {
  sample: CorpusSample;
  /** [12 * 1000] leads-first ECG at 100 Hz scaled to [-1, 1]; ECG samples only. */
  ecg?: Float32Array;
  /** [224 * 224] 8-bit X-ray after resize and CLAHE; X-ray samples only. */
  xray?: Uint8Array;
  inputIds: number[];
  attentionMask: number[];
}

export interface PrepareOptions {
  maxTextLength: number;
  progress: ProgressReporter;
}

/** Reads, preprocesses and tokenises every sample; an unreadable file fails the run with its name. */
export async function prepareSamples(
  samples: CorpusSample[], tokenizer: ReportTokenizer, options: PrepareOptions,
): Promise<{ prepared: PreparedSample[]; truncatedReports: number }> {
  const prepared: PreparedSample[] = [];
  let truncatedReports = 0;
  options.progress.start('reading samples', samples.length, 'samples');
  for (const [index, sample] of samples.entries()) {
    const encoded = tokenizer.encode(sample.text, null, { maxLength: options.maxTextLength });
    if (encoded.truncated) truncatedReports += 1;
    const entry: PreparedSample = { sample, inputIds: encoded.inputIds, attentionMask: encoded.attentionMask };
    if (sample.modality === 'ecg') {
      const ecg = await loadPreprocessedEcg(sample.ecg.recordPath);
      if (ecg.leads !== ECG_LEADS || ecg.samples !== ECG_SAMPLES) {
        throw new Error(`ECG ${sample.ecg.recordPath}: expected ${ECG_LEADS} x ${ECG_SAMPLES} after preprocessing, got ${ecg.leads} x ${ecg.samples}`);
      }
      entry.ecg = Float32Array.from(ecg.data);
    } else {
      entry.xray = claheUint8(await decodeXrayFile(sample.xray.file), XRAY_SIZE);
    }
    prepared.push(entry);
    options.progress.update({ done: index + 1 });
  }
  options.progress.end(`${prepared.length} samples, ${truncatedReports} reports truncated to ${options.maxTextLength} tokens`);
  return { prepared, truncatedReports };
}

/** Fills one X-ray row of a batch: augmented when an `rng` is given, as in training. */
function xrayRow(gray: Uint8Array, rng: Rng | undefined): Float32Array {
  if (rng === undefined) return normaliseToRgb(gray);
  const unit = new Float32Array(gray.length);
  for (let i = 0; i < gray.length; i++) unit[i] = gray[i] / 255;
  return normaliseToRgb(augmentXray(unit, XRAY_SIZE, XRAY_SIZE, rng), true);
}

function ecgRow(ecg: Float32Array, rng: Rng | undefined): Float32Array {
  if (rng === undefined) return ecg;
  const augmented = augmentEcg({ data: Float32Array.from(ecg), leads: ECG_LEADS, samples: ECG_SAMPLES }, rng);
  return Float32Array.from(augmented.data);
}

/**
 * Builds a MoRE batch of `items`: token ids padded to the longest report of
 * the batch, X-rays and ECGs with a presence flag per row (zeros where a
 * sample lacks the modality). `rng` turns on training augmentation.
 */
export function buildMoreBatch(items: PreparedSample[], rng?: Rng): MoreBatch {
  const B = items.length;
  const T = Math.max(...items.map((item) => item.inputIds.length));
  const ids = new Int32Array(B * T);
  const mask = new Int32Array(B * T);
  items.forEach((item, row) => {
    ids.set(item.inputIds, row * T);
    mask.set(item.attentionMask, row * T);
  });
  const batch: MoreBatch = {
    inputIds: tf.tensor2d(ids, [B, T], 'int32'),
    attentionMask: tf.tensor2d(mask, [B, T], 'int32'),
    imagePresent: items.map((item) => item.xray !== undefined),
    ecgPresent: items.map((item) => item.ecg !== undefined),
  };
  if (batch.imagePresent!.some(Boolean)) {
    const pixels = XRAY_SIZE * XRAY_SIZE * 3;
    const images = new Float32Array(B * pixels);
    items.forEach((item, row) => {
      if (item.xray !== undefined) images.set(xrayRow(item.xray, rng), row * pixels);
    });
    batch.images = tf.tensor4d(images, [B, XRAY_SIZE, XRAY_SIZE, 3]);
  }
  if (batch.ecgPresent!.some(Boolean)) {
    const values = ECG_LEADS * ECG_SAMPLES;
    const ecgs = new Float32Array(B * values);
    items.forEach((item, row) => {
      if (item.ecg !== undefined) ecgs.set(ecgRow(item.ecg, rng), row * values);
    });
    batch.ecgs = tf.tensor3d(ecgs, [B, ECG_LEADS, ECG_SAMPLES]);
  }
  return batch;
}

/** Releases the tensors of a batch. */
export function disposeMoreBatch(batch: MoreBatch): void {
  const tensors: tf.Tensor[] = [batch.inputIds, batch.attentionMask];
  if (batch.images !== undefined) tensors.push(batch.images);
  if (batch.ecgs !== undefined) tensors.push(batch.ecgs);
  tf.dispose(tensors);
}

/** The trainer's view of prepared samples; `augment` turns on training augmentation. */
export class PreparedBatchSource implements BatchSource<MoreBatch> {
  constructor(private readonly items: PreparedSample[], private readonly augment: boolean) {}

  get size(): number {
    return this.items.length;
  }

  loadBatch(indices: number[], rng: Rng): MoreBatch {
    return buildMoreBatch(indices.map((index) => this.items[index]), this.augment ? rng : undefined);
  }

  disposeBatch(batch: MoreBatch): void {
    disposeMoreBatch(batch);
  }
}
