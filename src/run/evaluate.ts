/**
 * Held-out evaluation of the main job: embeddings of the held-out samples,
 * zero-shot PTB-XL superclass AUROC, report -> ECG and report -> X-ray
 * retrieval beside the chance level, and a linear probe on the frozen ECG
 * encoder beside the same probe on a randomly initialised one.
 */
import * as tf from '@tensorflow/tfjs';

import type { ReportTokenizer } from '../datasets/tokenizer';
import { withInitialisationSeed } from '../model/layers';
import type { MoreModel } from '../model/more';
import type { MultilabelReport } from '../tasks/metrics';
import { ProbeHead, type ProbeSplit, evaluateProbe, trainProbe } from '../tasks/probe';
import { PTBXL_SUPERCLASSES, ecgPromptSets } from '../tasks/prompts';
import { RetrievalIndex, type RetrievalReport } from '../tasks/retrieval';
import { embedPromptSets, evaluateZeroShot, modelPromptEncoder, zeroShotScores, type ZeroShotEvaluation } from '../tasks/zeroshot';
import { silentProgress, type ProgressReporter } from '../util/progress';
import { buildMoreBatch, disposeMoreBatch, type PreparedSample } from './data';

/** Embeddings of a set of samples, row i belonging to `ids[i]`. */
export interface SampleEmbeddings {
  ids: string[];
  /** Shared-space embeddings of each sample's own modality (X-ray or ECG). */
  signal: number[][];
  /** Shared-space embeddings of each sample's report. */
  report: number[][];
  /** Pooled encoder features before the projection head, for probes. */
  features: number[][];
}

/** Embeds samples of one modality in inference mode, `batchSize` at a time. */
export function embedSamples(model: MoreModel, items: PreparedSample[], batchSize = 32): SampleEmbeddings {
  const result: SampleEmbeddings = { ids: [], signal: [], report: [], features: [] };
  for (let start = 0; start < items.length; start += batchSize) {
    const chunk = items.slice(start, start + batchSize);
    const batch = buildMoreBatch(chunk);
    try {
      const [signal, report, features] = tf.tidy(() => {
        const text = model.encodeText(batch.inputIds, batch.attentionMask);
        const own = chunk[0].sample.modality === 'ecg'
          ? model.encodeEcg(batch.ecgs as tf.Tensor3D)
          : model.encodeImage(batch.images as tf.Tensor4D);
        return [own.embedding, text.embedding, own.pooled];
      });
      result.signal.push(...(signal.arraySync() as number[][]));
      result.report.push(...(report.arraySync() as number[][]));
      result.features.push(...(features.arraySync() as number[][]));
      tf.dispose([signal, report, features]);
    } finally {
      disposeMoreBatch(batch);
    }
    result.ids.push(...chunk.map((item) => item.sample.id));
  }
  return result;
}

/** Report -> signal and signal -> report retrieval where each sample's own item is the only match. */
export interface RetrievalFigures {
  reportToSignal: RetrievalReport;
  signalToReport: RetrievalReport;
  /** Recall@K of a random ranking: K / gallery size (capped at 1). */
  chance: Record<number, number>;
}

export function retrievalFigures(embeddings: SampleEmbeddings, modality: 'xray' | 'ecg', ks = [1, 5, 10]): RetrievalFigures {
  const gallery = RetrievalIndex.fromEmbeddings(embeddings.ids, embeddings.signal, modality);
  const reports = RetrievalIndex.fromEmbeddings(embeddings.ids, embeddings.report, 'report');
  const chance: Record<number, number> = {};
  for (const k of ks) chance[k] = Math.min(1, k / embeddings.ids.length);
  return {
    reportToSignal: gallery.evaluate(embeddings.report, embeddings.ids, ks),
    signalToReport: reports.evaluate(embeddings.signal, embeddings.ids, ks),
    chance,
  };
}

/** Zero-shot PTB-XL superclass scores of held-out ECG embeddings with the one-prompt-per-class sets. */
export async function zeroShotEcg(
  model: MoreModel, tokenizer: ReportTokenizer, ecgEmbeddings: number[][], labels: number[][],
): Promise<ZeroShotEvaluation & { prompts: Record<string, string[]>; scores: number[][] }> {
  const prompts = ecgPromptSets();
  const encode = modelPromptEncoder(model, (texts) => {
    const encoded = tokenizer.encodeBatch(texts, { maxLength: 128 });
    const shape: [number, number] = [encoded.batchSize, encoded.sequenceLength];
    return { inputIds: tf.tensor2d(encoded.inputIds, shape, 'int32'), attentionMask: tf.tensor2d(encoded.attentionMask, shape, 'int32') };
  });
  const promptEmbeddings = await embedPromptSets(encode, prompts);
  const scores = zeroShotScores(ecgEmbeddings, promptEmbeddings);
  return { ...evaluateZeroShot(scores.scores, labels, [...PTBXL_SUPERCLASSES]), prompts, scores: scores.scores };
}

export interface ProbeComparison {
  trained: MultilabelReport;
  random: MultilabelReport;
  trainSamples: number;
  testSamples: number;
  epochs: number;
}

function probeSplit(features: number[][], labels: number[][]): ProbeSplit {
  const dim = features[0].length;
  const flat = new Float32Array(features.length * dim);
  features.forEach((row, i) => flat.set(row, i * dim));
  return { features: { ecg: flat }, featureDim: { ecg: dim }, targets: labels };
}

/**
 * Trains the same linear probe (frozen projection head + dropout + linear
 * layer, multi-label BCE) on features of two ECG encoders and scores both on
 * the held-out records. The probe trains a fixed number of epochs with no
 * early stopping, so the held-out records never select a model.
 */
export async function compareEcgProbes(
  trainedModel: MoreModel, randomModel: MoreModel,
  train: { items: PreparedSample[]; labels: number[][] }, test: { items: PreparedSample[]; labels: number[][] },
  options: { epochs: number; seed: number; progress?: ProgressReporter },
): Promise<ProbeComparison> {
  const reports: MultilabelReport[] = [];
  for (const model of [trainedModel, randomModel]) {
    const trainSplit = probeSplit(embedSamples(model, train.items).features, train.labels);
    const testSplit = probeSplit(embedSamples(model, test.items).features, test.labels);
    // Both probes start from the same classifier weights, so only the encoder differs.
    const head = withInitialisationSeed(options.seed, () =>
      new ProbeHead({ kind: 'multilabel', classes: PTBXL_SUPERCLASSES.length, branches: ['ecg'] }, { ecg: model.ecgHead }));
    try {
      await trainProbe(head, { train: trainSplit, validation: testSplit }, {
        lr: 1e-3, batchSize: 32, maxEpochs: options.epochs, patience: options.epochs + 1, restoreBest: false,
        seed: options.seed, dropLast: false, progress: options.progress ?? silentProgress, label: 'linear probe',
      });
      const evaluation = evaluateProbe(head, testSplit, [...PTBXL_SUPERCLASSES]);
      if (evaluation.auroc === undefined) throw new Error('The multi-label probe returned no AUROC');
      reports.push(evaluation.auroc);
    } finally {
      head.dispose();
    }
  }
  return { trained: reports[0], random: reports[1], trainSamples: train.items.length, testSamples: test.items.length, epochs: options.epochs };
}
