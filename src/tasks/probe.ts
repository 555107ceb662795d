/**
 * Linear-probe and fine-tuning heads on frozen MoRE encoders, as the MoRE
 * downstream protocol defines them: the frozen encoder's pooled features go
 * through the modality's projection head (768 -> 768 -> 128 for the base
 * model, initialised from the pre-trained head), dropout and one linear
 * layer. Multi-label tasks use sigmoid outputs with binary cross-entropy, the
 * edema-severity task a 4-class softmax. An X-ray + ECG head concatenates both
 * projected branches and, during training, zeroes a sample's ECG branch with
 * probability 0.3 so the head also works when the ECG is missing.
 *
 * Probes train on features computed once with {@link extractFeatures}, which
 * makes every epoch a few matrix products. Training goes through {@link fit}
 * with the probe defaults of the protocol: AdamW lr 3e-5, weight decay 0.02,
 * batch 64, up to 20 epochs, cosine restarts with T_0 = 5, early stopping with
 * patience 3, and the best validation epoch's weights restored at the end.
 *
 * Probes keep the encoders wholly frozen, because precomputed features cannot
 * train them. Fine-tuning as the PyTorch reference does it, with the qkv
 * weights of the last three encoder blocks training along with this head,
 * is `FineTuneModel` in `finetune.ts`, which runs the encoders on every batch.
 */
import * as tf from '@tensorflow/tfjs';

import { ProjectionHead } from '../model/heads';
import { Linear } from '../model/layers';
import { Module } from '../model/module';
import { getLogger } from '../util/log';
import { ProgressReporter, silentProgress } from '../util/progress';
import { Rng } from '../util/rng';
import {
  accuracy, argmaxRows, MetricResult, multiclassAurocOvr, multilabelAuroc, multilabelAveragePrecision, MultilabelReport,
} from './metrics';
import { BatchContext, BatchSource, fit, TrainableModel, TrainOptions, TrainResult } from './train';

const log = getLogger('tasks.probe');

export type ProbeKind = 'multilabel' | 'multiclass';
export type ProbeBranch = 'image' | 'ecg';

/** A downstream task: its labels, how they are scored and which encoders feed it. */
export interface ProbeTask {
  name: string;
  kind: ProbeKind;
  /** Label (multi-label) or class (multi-class) names, in output order. */
  labels: string[];
  branches: ProbeBranch[];
}

/** The downstream tasks of the MoRE evaluation. */
export const PROBE_TASKS = {
  mimicCxr: {
    name: 'MIMIC-CXR', kind: 'multilabel', branches: ['image'],
    labels: ['Atelectasis', 'Cardiomegaly', 'Edema', 'Pleural Effusion'],
  },
  chexpert: {
    name: 'CheXpert', kind: 'multilabel', branches: ['image'],
    labels: ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Pleural Effusion'],
  },
  edemaSeverity: {
    name: 'Edema severity', kind: 'multiclass', branches: ['image'],
    labels: ['0 none', '1 vascular congestion', '2 interstitial edema', '3 alveolar edema'],
  },
  ptbxlSuperclass: {
    name: 'PTB-XL superclasses', kind: 'multilabel', branches: ['ecg'],
    labels: ['NORM', 'MI', 'STTC', 'CD', 'HYP'],
  },
} as const satisfies Record<string, ProbeTask>;

/** The label fractions of the protocol. */
export const LABEL_FRACTIONS = [0.01, 0.1, 1] as const;

export interface ProbeHeadConfig {
  kind: ProbeKind;
  classes: number;
  /** Branches in concatenation order; each needs its projection head. */
  branches: ProbeBranch[];
  /** Dropout rate before the linear layer. Default 0.2 (the reference does not state its rate). */
  dropout?: number;
  /**
   * With both branches, the probability of zeroing a sample's ECG branch in training. Default 0.3.
   * NOTE: the reference's `MultiModalHead` (`utils/build_model.py`) draws once per batch and then
   * zeroes the ECG branch of the whole batch, whereas this head draws for each sample.
   */
  ecgDropProbability?: number;
  /** Train the projection heads too (fine-tuning) instead of the linear layer only (linear probe). Default false. */
  trainProjector?: boolean;
}

/** A batch of precomputed encoder features with its targets. */
export interface ProbeBatch {
  /** [B, featureDim] pooled encoder features per branch. */
  features: Partial<Record<ProbeBranch, tf.Tensor2D>>;
  /** [B, classes] 0/1 targets (multi-label) or [B] int32 class indices (multi-class). */
  targets: tf.Tensor;
}

/** Projection heads + dropout + linear layer, with weight names `projector_<branch>.*` and `classifier.*`. */
export class ProbeHead extends Module implements TrainableModel<ProbeBatch> {
  readonly config: Required<ProbeHeadConfig>;
  readonly projectors = new Map<ProbeBranch, ProjectionHead>();
  readonly classifier: Linear;

  /**
   * Builds the head around copies of the pre-trained projection heads
   * (`projectors` must have one per branch), so training never changes the
   * pre-trained model.
   */
  constructor(config: ProbeHeadConfig, projectors: Partial<Record<ProbeBranch, ProjectionHead>>) {
    super();
    this.config = { dropout: 0.2, ecgDropProbability: 0.3, trainProjector: false, ...config };
    const { kind, classes, branches, dropout, ecgDropProbability } = this.config;
    if (kind !== 'multilabel' && kind !== 'multiclass') {
      throw new Error(`Invalid probe kind "${kind}": expected "multilabel" or "multiclass"`);
    }
    if (!Number.isInteger(classes) || classes < (kind === 'multiclass' ? 2 : 1)) {
      throw new Error(`Invalid number of classes ${classes} for a ${kind} probe`);
    }
    if (branches.length === 0 || new Set(branches).size !== branches.length || branches.some((b) => b !== 'image' && b !== 'ecg')) {
      throw new Error(`Invalid probe branches [${branches.join(', ')}]: expected "image", "ecg" or both, each once`);
    }
    for (const [name, rate] of [['dropout', dropout], ['ecgDropProbability', ecgDropProbability]] as const) {
      if (!(rate >= 0 && rate < 1)) throw new Error(`Invalid ${name} ${rate}: expected a number in [0, 1)`);
    }

    let width = 0;
    for (const branch of branches) {
      const pretrained = projectors[branch];
      if (pretrained === undefined) throw new Error(`No projection head given for the ${branch} branch`);
      const copy = this.addChild(`projector_${branch}`, new ProjectionHead(pretrained.config));
      tf.tidy(() => {
        copy.loadNamedWeights(new Map([...pretrained.namedWeights()].map(([name, variable]) => [name, variable as tf.Tensor])));
      });
      this.projectors.set(branch, copy);
      width += pretrained.config.outputDim;
    }
    this.classifier = this.addChild('classifier', new Linear(width, classes, true));
  }

  override trainableVariables(): tf.Variable[] {
    if (this.config.trainProjector) return super.trainableVariables();
    return this.classifier.trainableVariables();
  }

  /** Returns the logits [B, classes]. `context.seed` seeds the dropout and the ECG-branch mask in training. */
  logits(batch: ProbeBatch, context: BatchContext): tf.Tensor2D {
    const { branches, dropout, ecgDropProbability, trainProjector } = this.config;
    const rng = new Rng(context.seed);
    const maskSeed = rng.nextUint32();
    const dropoutSeed = rng.nextUint32();
    return tf.tidy(() => {
      const parts = branches.map((branch) => {
        const features = batch.features[branch];
        if (features === undefined) throw new Error(`Probe batch has no ${branch} features; the head needs [${branches.join(', ')}]`);
        // A frozen projector normalises with its running statistics, as in evaluation.
        let projected = (this.projectors.get(branch) as ProjectionHead).apply(features, context.training && trainProjector);
        if (branch === 'ecg' && branches.length > 1 && context.training && ecgDropProbability > 0) {
          projected = tf.mul(projected, ecgKeepMask(projected.shape[0], ecgDropProbability, maskSeed));
        }
        return projected;
      });
      let joined = parts.length === 1 ? parts[0] : (tf.concat(parts, 1) as tf.Tensor2D); // [B, sum of widths]
      if (context.training && dropout > 0) joined = tf.dropout(joined, dropout, undefined, dropoutSeed) as tf.Tensor2D;
      return this.classifier.apply(joined);
    });
  }

  /** Mean binary cross-entropy over all labels (multi-label) or mean softmax cross-entropy (multi-class). */
  batchLoss(batch: ProbeBatch, context: BatchContext): tf.Scalar {
    return tf.tidy(() => probeLoss(this.config.kind, this.logits(batch, context), batch.targets));
  }

  /** Returns sigmoid (multi-label) or softmax (multi-class) probabilities [B, classes]. */
  probabilities(batch: ProbeBatch): tf.Tensor2D {
    return tf.tidy(() => {
      const logits = this.logits(batch, { training: false, seed: 0 });
      return this.config.kind === 'multilabel' ? tf.sigmoid(logits) : tf.softmax(logits);
    });
  }
}

/** [B, 1] column of 1 (keep) and 0 (drop the ECG branch), each sample dropped with probability `p`. */
function ecgKeepMask(rows: number, p: number, seed: number): tf.Tensor2D {
  const rng = new Rng(seed);
  return tf.tensor2d(Array.from({ length: rows }, () => [rng.uniform() < p ? 0 : 1]));
}

/** Numerically stable BCE with logits (mean) or softmax cross-entropy with class indices (mean). */
export function probeLoss(kind: ProbeKind, logits: tf.Tensor2D, targets: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    if (kind === 'multilabel') {
      if (!arraysEqual(targets.shape, logits.shape)) {
        throw new Error(`Multi-label targets have shape [${targets.shape}], expected [${logits.shape}]`);
      }
      const y = targets.toFloat();
      // max(x, 0) - x * y + log(1 + exp(-|x|)), as torch.nn.BCEWithLogitsLoss.
      const perEntry = tf.relu(logits).sub(logits.mul(y)).add(tf.log1p(tf.exp(tf.neg(tf.abs(logits)))));
      return tf.mean(perEntry) as tf.Scalar;
    }
    if (targets.rank !== 1 || targets.shape[0] !== logits.shape[0]) {
      throw new Error(`Multi-class targets have shape [${targets.shape}], expected [${logits.shape[0]}] class indices`);
    }
    const logProbabilities = tf.logSoftmax(logits);
    const picked = tf.sum(tf.mul(logProbabilities, tf.oneHot(targets.toInt(), logits.shape[1])), 1);
    return tf.neg(tf.mean(picked)) as tf.Scalar;
  });
}

function arraysEqual(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

/** Precomputed features and targets of one split, row-aligned. */
export interface ProbeSplit {
  features: Partial<Record<ProbeBranch, Float32Array>>;
  /** Width of each branch's features. */
  featureDim: Partial<Record<ProbeBranch, number>>;
  /** Multi-label: one 0/1 row per sample. Multi-class: one class index per sample. */
  targets: number[][] | number[];
}

/** Serves rows of a {@link ProbeSplit} as probe batches, optionally through a subset of row indices. */
export class ProbeFeatureSource implements BatchSource<ProbeBatch> {
  readonly size: number;
  private readonly rows: number[];

  constructor(private readonly split: ProbeSplit, private readonly kind: ProbeKind, rows?: number[]) {
    const total = split.targets.length;
    for (const [branch, values] of Object.entries(split.features) as [ProbeBranch, Float32Array][]) {
      const dim = split.featureDim[branch];
      if (dim === undefined || values.length !== total * dim) {
        throw new Error(`Probe split: ${branch} features have ${values.length} values, expected ${total} samples x ${dim}`);
      }
    }
    this.rows = rows ?? Array.from({ length: total }, (_, i) => i);
    for (const row of this.rows) {
      if (!Number.isInteger(row) || row < 0 || row >= total) throw new Error(`Probe split: row ${row} is outside [0, ${total})`);
    }
    this.size = this.rows.length;
  }

  loadBatch(indices: number[]): ProbeBatch {
    const rows = indices.map((i) => this.rows[i]);
    const features: Partial<Record<ProbeBranch, tf.Tensor2D>> = {};
    for (const [branch, values] of Object.entries(this.split.features) as [ProbeBranch, Float32Array][]) {
      const dim = this.split.featureDim[branch] as number;
      const data = new Float32Array(rows.length * dim);
      rows.forEach((row, k) => data.set(values.subarray(row * dim, (row + 1) * dim), k * dim));
      features[branch] = tf.tensor2d(data, [rows.length, dim]);
    }
    const targets = this.kind === 'multilabel'
      ? tf.tensor2d(rows.map((row) => (this.split.targets as number[][])[row]))
      : tf.tensor1d(rows.map((row) => (this.split.targets as number[])[row]), 'int32');
    return { features, targets };
  }
}

/**
 * Draws the training rows of a label fraction: `round(fraction * n)` rows
 * (at least one) chosen uniformly without replacement by a generator seeded
 * with `seed`, returned in ascending order. Fraction 1 returns every row.
 */
export function sampleLabelFraction(n: number, fraction: number, seed: number): number[] {
  if (!Number.isInteger(n) || n < 1) throw new Error(`Invalid number of samples ${n}: expected a positive integer`);
  if (!(fraction > 0 && fraction <= 1)) throw new Error(`Invalid label fraction ${fraction}: expected a number in (0, 1]`);
  const all = Array.from({ length: n }, (_, i) => i);
  if (fraction === 1) return all;
  const count = Math.max(1, Math.round(fraction * n));
  return new Rng(seed).shuffle(all).slice(0, count).sort((a, b) => a - b);
}

/**
 * Runs `encode` over every batch of `source` (features of a frozen encoder,
 * for example `(b) => model.image.forward(b.images).pooled`) and returns the
 * rows as one Float32Array [size x dim], in sample order.
 */
export async function extractFeatures<B>(
  source: BatchSource<B>,
  encode: (batch: B) => tf.Tensor2D,
  options: { batchSize?: number; progress?: ProgressReporter } = {},
): Promise<{ features: Float32Array; dim: number }> {
  const batchSize = options.batchSize ?? 64;
  const progress = options.progress ?? silentProgress;
  const rng = new Rng(0);
  let out: Float32Array | undefined;
  let dim = 0;
  progress.start('extracting features', source.size, 'sample');
  for (let start = 0; start < source.size; start += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, source.size - start) }, (_, k) => start + k);
    const batch = await source.loadBatch(indices, rng);
    let features: tf.Tensor2D;
    try {
      features = tf.tidy(() => encode(batch));
    } finally {
      if (source.disposeBatch !== undefined) source.disposeBatch(batch);
      else tf.dispose(batch as unknown as tf.TensorContainer);
    }
    if (features.rank !== 2 || features.shape[0] !== indices.length) {
      const shape = features.shape.join(', ');
      features.dispose();
      throw new Error(`extractFeatures: encode returned shape [${shape}], expected [${indices.length}, dim]`);
    }
    if (out === undefined) {
      dim = features.shape[1];
      out = new Float32Array(source.size * dim);
    }
    out.set(await features.data() as Float32Array, start * dim);
    features.dispose();
    progress.update({ done: start + indices.length });
  }
  progress.end();
  if (out === undefined) throw new Error('extractFeatures: the source has no samples');
  return { features: out, dim };
}

/** Probe training defaults of the protocol; any {@link TrainOptions} field overrides them. */
export const PROBE_TRAIN_DEFAULTS: TrainOptions = {
  lr: 3e-5, weightDecay: 0.02, batchSize: 64, maxEpochs: 20, t0: 5, etaMin: 0, patience: 3,
  accumulationSteps: 1, checkpointEveryEpochs: 0, restoreBest: true, label: 'probe',
};

/**
 * Trains `head` on the training split (or the rows of `trainRows`, for a
 * label fraction) with early stopping on the validation split. The weights of
 * the best validation epoch are in `head` afterwards.
 */
export async function trainProbe(
  head: ProbeHead,
  data: { train: ProbeSplit; validation: ProbeSplit; trainRows?: number[] },
  options: TrainOptions = {},
): Promise<TrainResult> {
  const { kind, trainProjector } = head.config;
  const train = new ProbeFeatureSource(data.train, kind, data.trainRows);
  const validation = new ProbeFeatureSource(data.validation, kind);
  // Training BatchNorm needs at least two samples, so a trained projector drops a last batch of one.
  const dropLast = trainProjector && train.size % (options.batchSize ?? 64) === 1;
  log.info(`training ${kind} probe on ${train.size} samples, validating on ${validation.size}`);
  return fit(head, { train, validation }, { ...PROBE_TRAIN_DEFAULTS, dropLast, ...options });
}

/** Scores of a probe on one split. */
export interface ProbeEvaluation {
  /** [N][classes] predicted probabilities. */
  probabilities: number[][];
  /** Multi-label: per-label AUROC with macro and micro averages. */
  auroc?: MultilabelReport;
  /** Multi-label: per-label average precision; its macro value is the mean average precision. */
  averagePrecision?: MultilabelReport;
  /** Multi-class: accuracy of the arg-max class. */
  accuracy?: number;
  /** Multi-class: one-vs-rest AUROC averaged over classes. */
  macroAuroc?: MetricResult;
}

/** Predicts every sample of `split` and scores the predictions with the metrics of the task's kind. */
export function evaluateProbe(head: ProbeHead, split: ProbeSplit, labels?: string[], batchSize = 256): ProbeEvaluation {
  const { kind } = head.config;
  const source = new ProbeFeatureSource(split, kind);
  const probabilities: number[][] = [];
  for (let start = 0; start < source.size; start += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, source.size - start) }, (_, k) => start + k);
    const batch = source.loadBatch(indices);
    const predicted = head.probabilities(batch);
    tf.dispose(batch as unknown as tf.TensorContainer);
    const values = predicted.arraySync();
    predicted.dispose();
    probabilities.push(...values);
  }
  return scoreProbabilities(kind, probabilities, split.targets, labels);
}

/**
 * Scores predicted probabilities [N][classes] against the targets: AUROC and
 * average precision per label for a multi-label task, accuracy and
 * one-vs-rest macro AUROC for a multi-class one.
 */
export function scoreProbabilities(
  kind: ProbeKind, probabilities: number[][], targets: number[][] | number[], labels?: string[],
): ProbeEvaluation {
  if (kind === 'multilabel') {
    const rows = targets as number[][];
    return {
      probabilities,
      auroc: multilabelAuroc(rows, probabilities, { labels }),
      averagePrecision: multilabelAveragePrecision(rows, probabilities, { labels }),
    };
  }
  const classes = targets as number[];
  return {
    probabilities,
    accuracy: accuracy(classes, argmaxRows(probabilities)),
    macroAuroc: multiclassAurocOvr(classes, probabilities),
  };
}

/** Result of one label fraction in {@link runLabelFractions}. */
export interface LabelFractionResult {
  fraction: number;
  /** Training samples the fraction kept. */
  trainSamples: number;
  training: TrainResult;
  /** Scores on the test split. */
  evaluation: ProbeEvaluation;
}

/**
 * Runs the label-fraction protocol: for each fraction (1%, 10% and 100% by
 * default) it builds a fresh head with `buildHead`, trains it on the
 * fraction's rows of the training split (drawn with `seed`), validates on the
 * full validation split and scores it on the test split. Each head is
 * disposed after scoring.
 */
export async function runLabelFractions(
  buildHead: () => ProbeHead,
  data: { train: ProbeSplit; validation: ProbeSplit; test: ProbeSplit },
  options: { fractions?: readonly number[]; seed?: number; labels?: string[]; train?: TrainOptions } = {},
): Promise<LabelFractionResult[]> {
  const { fractions = LABEL_FRACTIONS, seed = 0, labels, train = {} } = options;
  const results: LabelFractionResult[] = [];
  for (const fraction of fractions) {
    const trainRows = sampleLabelFraction(data.train.targets.length, fraction, seed);
    const head = buildHead();
    try {
      const training = await trainProbe(head, { train: data.train, validation: data.validation, trainRows },
        { label: `probe ${fraction * 100}%`, ...train });
      const evaluation = evaluateProbe(head, data.test, labels);
      results.push({ fraction, trainSamples: trainRows.length, training, evaluation });
    } finally {
      head.dispose();
    }
  }
  return results;
}
