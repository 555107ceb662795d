/**
 * Zero-shot classification with a contrastive text encoder. Each class is a
 * set of prompts. A sample's class score is its cosine similarity to the
 * class's prompts, reduced by max (the GLoRIA/MGCA protocol) or mean, and
 * each class's scores are then z-scored over the samples. Alternatively each class has
 * a positive and a negative prompt, and the class probability is the softmax
 * over the pair.
 *
 * The functions take embeddings, or a callback that encodes prompts, so they
 * run without a trained model; {@link modelPromptEncoder} wires the MoRE
 * model's `encodeText`.
 */
import * as tf from '@tensorflow/tfjs';

import type { MoreModelApi } from '../model/types';
import { getLogger } from '../util/log';
import { type MultilabelReport, accuracy, argmaxRows, multilabelAuroc } from './metrics';
import { type PromptPair, promptPair } from './prompts';
import type { EmbeddingMatrix } from './retrieval';

const log = getLogger('tasks.zeroshot');

/** Encodes prompts into [prompts, dim] shared-space embeddings. */
export type PromptEncoder = (prompts: string[]) => EmbeddingMatrix | Promise<EmbeddingMatrix>;

export type PromptReduction = 'max' | 'mean';

export interface ZeroShotOptions {
  /** Reduction of a class's prompt similarities to one score (default `max`). */
  reduction?: PromptReduction;
  /** Z-score each class over the samples (default true). */
  standardize?: boolean;
}

/** Class scores of every sample. */
export interface ZeroShotScores {
  classes: string[];
  /** [samples][classes] cosine similarity after the prompt reduction. */
  similarity: number[][];
  /** [samples][classes] scores used for ranking: `similarity` z-scored per class, or equal to it. */
  scores: number[][];
}

/** Copies an embedding matrix to host rows, L2-normalised, checking its width. */
function unitRows(matrix: EmbeddingMatrix, what: string, dim?: number): number[][] {
  const rows = matrix instanceof tf.Tensor ? (matrix.arraySync() as number[][]) : matrix.map((row) => Array.from(row));
  if (rows.length === 0) throw new Error(`${what}: no embeddings; expected at least one row`);
  const width = dim ?? rows[0].length;
  return rows.map((row, i) => {
    if (row.length !== width) throw new Error(`${what}: row ${i} has ${row.length} values; expected ${width}`);
    const norm = Math.sqrt(row.reduce((sum, v) => sum + v * v, 0));
    if (!Number.isFinite(norm) || norm === 0) throw new Error(`${what}: row ${i} has norm ${norm}; expected a finite non-zero vector`);
    return row.map((v) => v / norm);
  });
}

function dot(a: number[], b: number[]): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

/**
 * Z-scores each column over the rows, (x - mean) / std with the population
 * standard deviation (numpy's default, ddof 0). A constant column becomes
 * zeros and is logged, because it carries no ranking.
 */
export function zScoreColumns(values: number[][], classes?: string[]): number[][] {
  const n = values.length;
  const width = n === 0 ? 0 : values[0].length;
  const out = values.map((row) => [...row]);
  for (let c = 0; c < width; c++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += values[i][c];
    mean /= n;
    let variance = 0;
    for (let i = 0; i < n; i++) variance += (values[i][c] - mean) ** 2;
    const std = Math.sqrt(variance / n);
    if (std === 0) log.warn(`class ${classes?.[c] ?? c}: every sample has the same score, so its z-scores are all 0`);
    for (let i = 0; i < n; i++) out[i][c] = std === 0 ? 0 : (values[i][c] - mean) / std;
  }
  return out;
}

/**
 * Scores samples against per-class prompt embeddings. `prompts` maps each
 * class to the [prompts, dim] embeddings of its prompts, in the class order wanted.
 */
export function zeroShotScores(
  samples: EmbeddingMatrix, prompts: Record<string, EmbeddingMatrix>, options: ZeroShotOptions = {},
): ZeroShotScores {
  const reduction = options.reduction ?? 'max';
  if (reduction !== 'max' && reduction !== 'mean') {
    throw new Error(`zeroShotScores: reduction "${reduction as string}"; expected max or mean`);
  }
  const sampleRows = unitRows(samples, 'zeroShotScores samples');
  const dim = sampleRows[0].length;
  const classes = Object.keys(prompts);
  if (classes.length === 0) throw new Error('zeroShotScores: no classes; expected at least one prompt set');
  const promptRows = classes.map((name) => unitRows(prompts[name], `zeroShotScores prompts of "${name}"`, dim));

  const similarity = sampleRows.map((sample) => promptRows.map((rows) => {
    const cosines = rows.map((prompt) => dot(sample, prompt));
    return reduction === 'max' ? Math.max(...cosines) : cosines.reduce((a, b) => a + b, 0) / cosines.length;
  }));
  const scores = (options.standardize ?? true) ? zScoreColumns(similarity, classes) : similarity.map((row) => [...row]);
  return { classes, similarity, scores };
}

/**
 * Scores samples with one positive and one negative prompt embedding per
 * class: the probability of the positive is softmax(cos+ / t, cos- / t)
 * taken at the positive. Returns [samples][classes] probabilities.
 */
export function pairedPromptProbabilities(
  samples: EmbeddingMatrix,
  pairs: Record<string, { positive: ArrayLike<number>; negative: ArrayLike<number> }>,
  temperature = 1,
): { classes: string[]; probabilities: number[][] } {
  if (!(temperature > 0)) throw new Error(`pairedPromptProbabilities: temperature ${temperature}; expected a positive number`);
  const sampleRows = unitRows(samples, 'pairedPromptProbabilities samples');
  const dim = sampleRows[0].length;
  const classes = Object.keys(pairs);
  const unitPairs = classes.map((name) => {
    const [positive, negative] = unitRows([pairs[name].positive, pairs[name].negative], `prompt pair of "${name}"`, dim);
    return { positive, negative };
  });
  const probabilities = sampleRows.map((sample) => unitPairs.map(({ positive, negative }) => {
    // softmax over two logits equals the logistic function of their difference.
    const difference = (dot(sample, positive) - dot(sample, negative)) / temperature;
    return 1 / (1 + Math.exp(-difference));
  }));
  return { classes, probabilities };
}

/** AUROC of zero-shot scores with classes flagged whose AUROC is below 0.5. */
export interface ZeroShotEvaluation {
  auroc: MultilabelReport;
  /** Classes ranked worse than chance, most likely a prompt with the wrong polarity. */
  polarityWarnings: { label: string; auroc: number; message: string }[];
}

/**
 * Scores zero-shot predictions against 0/1 labels ([samples][classes]) with
 * per-class, macro and micro AUROC. A class whose AUROC is below 0.5 is
 * flagged, because a prompt that reads as the class's opposite inverts it.
 */
export function evaluateZeroShot(
  scores: number[][], labels: ArrayLike<number>[], classes: string[], mask?: ArrayLike<boolean>[],
): ZeroShotEvaluation {
  const auroc = multilabelAuroc(labels, scores, { labels: classes, mask });
  const polarityWarnings = auroc.perLabel
    .filter((entry) => entry.value !== null && entry.value < 0.5)
    .map((entry) => {
      const value = entry.value as number;
      const message = `class ${entry.label}: AUROC ${value.toFixed(4)} is below 0.5, so its prompts likely have the ` +
        'opposite polarity (for example a negated phrase); check the prompt set';
      log.warn(message);
      return { label: entry.label, auroc: value, message };
    });
  return { auroc, polarityWarnings };
}

/**
 * Reduces a multi-label row to one class by a priority order, as the MoRE
 * reference does for PTB-XL (NORM > STTC > MI > HYP > CD). Returns the index
 * in `classes` of the first positive class in `priority`, or -1 when none is
 * positive.
 */
export function singleLabelByPriority(row: ArrayLike<number>, classes: readonly string[], priority: readonly string[]): number {
  for (const name of priority) {
    const index = classes.indexOf(name);
    if (index < 0) throw new Error(`singleLabelByPriority: priority class "${name}" is not among ${classes.join(', ')}`);
    if (row[index] === 1) return index;
  }
  return -1;
}

/** The reference's PTB-XL priority for reducing a record to one superclass. */
export const PTBXL_LABEL_PRIORITY = ['NORM', 'STTC', 'MI', 'HYP', 'CD'] as const;

/** ECG zero-shot figures in both of the reference's readings. */
export interface EcgZeroShotEvaluation {
  /** AUROC against the multi-hot superclass labels. */
  multiLabel: ZeroShotEvaluation;
  /** AUROC and argmax accuracy after reducing each record to one superclass by priority. */
  singleLabel: { auroc: MultilabelReport; accuracy: number; records: number };
  /** Records left out of the single-label figures because no superclass is positive. */
  withoutLabel: number;
}

/**
 * Scores ECG zero-shot predictions as the reference does, one label per
 * record chosen by `priority`, and also against the multi-hot labels.
 * `classes` names the columns of `scores` and `labels`.
 */
export function evaluateEcgZeroShot(
  scores: number[][], labels: ArrayLike<number>[], classes: string[], priority: readonly string[] = PTBXL_LABEL_PRIORITY,
): EcgZeroShotEvaluation {
  const multiLabel = evaluateZeroShot(scores, labels, classes);
  const single = labels.map((row) => singleLabelByPriority(row, classes, priority));
  const kept = single.flatMap((label, i) => (label >= 0 ? [i] : []));
  if (kept.length === 0) throw new Error('evaluateEcgZeroShot: no record has a positive superclass');
  const keptScores = kept.map((i) => scores[i]);
  const keptLabels = kept.map((i) => single[i]);
  const oneHot = keptLabels.map((label) => classes.map((_, c) => (c === label ? 1 : 0)));
  return {
    multiLabel,
    singleLabel: {
      auroc: multilabelAuroc(oneHot, keptScores, { labels: classes }),
      accuracy: accuracy(keptLabels, argmaxRows(keptScores)),
      records: kept.length,
    },
    withoutLabel: labels.length - kept.length,
  };
}

/** Embeds every class's prompts with one call to `encode` and splits the result per class. */
export async function embedPromptSets(
  encode: PromptEncoder, promptSets: Record<string, string[]>,
): Promise<Record<string, number[][]>> {
  const classes = Object.keys(promptSets);
  const flat = classes.flatMap((name) => promptSets[name]);
  const encoded = await encode(flat);
  const rows = encoded instanceof tf.Tensor ? (encoded.arraySync() as number[][]) : encoded.map((row) => Array.from(row));
  if (rows.length !== flat.length) {
    throw new Error(`embedPromptSets: the encoder returned ${rows.length} embeddings for ${flat.length} prompts`);
  }
  const result: Record<string, number[][]> = {};
  let offset = 0;
  for (const name of classes) {
    result[name] = rows.slice(offset, offset + promptSets[name].length);
    offset += promptSets[name].length;
  }
  return result;
}

/** Embeds the positive/negative pair of each class (see {@link promptPair}). */
export async function embedPromptPairs(
  encode: PromptEncoder, classes: Record<string, string>,
): Promise<{ pairs: Record<string, PromptPair>; embeddings: Record<string, { positive: number[]; negative: number[] }> }> {
  const pairs: Record<string, PromptPair> = {};
  for (const [name, positive] of Object.entries(classes)) pairs[name] = promptPair(name, positive);
  const sets: Record<string, string[]> = {};
  for (const [name, pair] of Object.entries(pairs)) sets[name] = [pair.positive, pair.negative];
  const embedded = await embedPromptSets(encode, sets);
  const embeddings: Record<string, { positive: number[]; negative: number[] }> = {};
  for (const name of Object.keys(pairs)) embeddings[name] = { positive: embedded[name][0], negative: embedded[name][1] };
  return { pairs, embeddings };
}

/** Token ids and attention mask of a batch of texts, each [B, T] int32. */
export interface TokenizedBatch {
  inputIds: tf.Tensor2D;
  attentionMask: tf.Tensor2D;
}

/**
 * Returns a prompt encoder backed by the MoRE model: `tokenize` turns prompts
 * into ids and mask (the reference pads ECG prompts to 128 tokens), and the
 * model's `encodeText` embeds them in inference mode.
 */
export function modelPromptEncoder(
  model: Pick<MoreModelApi, 'encodeText'>, tokenize: (texts: string[]) => TokenizedBatch,
): PromptEncoder {
  return (prompts: string[]) => {
    const batch = tokenize(prompts);
    try {
      const embedding = tf.tidy(() => model.encodeText(batch.inputIds, batch.attentionMask, { training: false }).embedding);
      const rows = embedding.arraySync();
      embedding.dispose();
      return rows;
    } finally {
      tf.dispose([batch.inputIds, batch.attentionMask]);
    }
  };
}
