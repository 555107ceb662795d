/**
 * Fine-tuned X-ray heads for the paper-tables protocols: the X-ray files of
 * each split are read and preprocessed batch by batch, and each label
 * fraction fine-tunes a fresh {@link FineTuneModel} on the model's X-ray
 * encoder (the qkv weights of its last three blocks with the probe head).
 */
import * as tf from '@tensorflow/tfjs';

import { preprocessXrayFile } from '../../datasets/xray/preprocess';
import type { MoreModel } from '../../model/more';
import { getLogger } from '../../util/log';
import type { ProgressReporter } from '../../util/progress';
import { DEFAULT_TRAINABLE_BLOCKS, evaluateFineTune, FineTuneModel, trainFineTune, type FineTuneBatch } from '../finetune';
import { sampleLabelFraction, type ProbeEvaluation, type ProbeKind } from '../probe';
import type { BatchSource, TrainOptions } from '../train';
import type { LabelledSet } from './data';

const log = getLogger('tasks.paper');

/** Blocks whose qkv weights train: the protocol's three, or every block of a shallower encoder. */
export function xrayTrainableBlocks(model: MoreModel): number {
  return Math.min(DEFAULT_TRAINABLE_BLOCKS, model.config.image.depth);
}

/**
 * Serves X-ray files with their labels as fine-tuning batches, optionally
 * through a subset of rows. Each batch reads and preprocesses its files again.
 * NOTE: nothing is cached, so every epoch repeats the decoding and CLAHE of
 * every image. The encoder's forward and backward passes usually cost more.
 */
export class XrayFileSource implements BatchSource<FineTuneBatch> {
  readonly size: number;
  private readonly rows: number[];

  constructor(private readonly set: LabelledSet, private readonly kind: ProbeKind, private readonly imageSize: number, rows?: number[]) {
    if (set.labels.length !== set.files.length) {
      throw new Error(`X-ray set has ${set.files.length} files but ${set.labels.length} labels; expected one label entry per file`);
    }
    this.rows = rows ?? set.files.map((_, i) => i);
    this.size = this.rows.length;
  }

  async loadBatch(indices: number[]): Promise<FineTuneBatch> {
    const rows = indices.map((i) => this.rows[i]);
    const pixels = this.imageSize * this.imageSize * 3;
    const data = new Float32Array(rows.length * pixels);
    for (const [k, row] of rows.entries()) data.set(await preprocessXrayFile(this.set.files[row], { size: this.imageSize }), k * pixels);
    const targets = this.kind === 'multilabel'
      ? tf.tensor2d(rows.map((row) => (this.set.labels as number[][])[row]))
      : tf.tensor1d(rows.map((row) => (this.set.labels as number[])[row]), 'int32');
    return { images: tf.tensor4d(data, [rows.length, this.imageSize, this.imageSize, 3]), targets };
  }
}

/** Options of {@link fineTuneXrayFractions}. */
export interface XrayFineTuneOptions {
  seed: number;
  progress: ProgressReporter;
  /** Overrides of the fine-tuning options (defaults: the probe's). */
  train?: TrainOptions;
  /** Formats a fraction for the progress label, for example `10%`. */
  fractionLabel(fraction: number): string;
}

/**
 * Fine-tunes one head per label fraction on `model`'s X-ray encoder (the
 * fraction's training rows drawn with `options.seed`), with early stopping
 * on the validation split, and scores each on the test split. Each model is
 * disposed after scoring, which puts the pre-trained encoder weights back.
 */
export async function fineTuneXrayFractions(
  model: MoreModel, kind: ProbeKind, labels: string[],
  sets: Record<'train' | 'validation' | 'test', LabelledSet>, fractions: readonly number[], options: XrayFineTuneOptions,
): Promise<{ fraction: number; trainRows: number; evaluation: ProbeEvaluation }[]> {
  const size = model.config.image.imageSize;
  const trainableBlocks = xrayTrainableBlocks(model);
  if (trainableBlocks < DEFAULT_TRAINABLE_BLOCKS) {
    log.warn(`the X-ray encoder has ${trainableBlocks} blocks, fewer than the protocol's ${DEFAULT_TRAINABLE_BLOCKS}, so the qkv weights of all of them train`);
  }
  const validation = new XrayFileSource(sets.validation, kind, size);
  const test = new XrayFileSource(sets.test, kind, size);
  const evaluations = [];
  for (const fraction of fractions) {
    const rows = sampleLabelFraction(sets.train.files.length, fraction, options.seed);
    const fineTune = FineTuneModel.fromMoreModel(model, { kind, classes: labels.length, branches: ['image'], trainableBlocks });
    try {
      await trainFineTune(fineTune, { train: new XrayFileSource(sets.train, kind, size, rows), validation }, {
        seed: options.seed, progress: options.progress, label: `fine-tune ${options.fractionLabel(fraction)}`, ...options.train,
      });
      evaluations.push({ fraction, trainRows: rows.length, evaluation: await evaluateFineTune(fineTune, test, labels) });
    } finally {
      fineTune.dispose();
    }
  }
  return evaluations;
}
