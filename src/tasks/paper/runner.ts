/**
 * The paper-tables runner. It loads a main-job checkpoint and runs every
 * protocol of the MoRE evaluation that it has data for (probes, zero-shot
 * classification, retrieval). Each protocol without data is listed with its
 * reason. The figures are written as JSON, with a Markdown table that sets
 * them next to the peers' published figures.
 */
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import type { EdemaLabelSource } from '../../datasets/cxr/edema';
import { CHEXPERT_COMPETITION } from '../../datasets/cxr/labels';
import type { ReportTokenizer } from '../../datasets/tokenizer';
import type { MoreModel } from '../../model/more';
import { TransformerTextEncoder } from '../../model/text/encoder';
import { loadMainJobCheckpoint } from '../../run/checkpoint';
import { DEFAULT_SAMPLE_ROOT } from '../../run/corpus';
import { retrievalFigures } from '../../run/evaluate';
import { writeFileAtomic } from '../../util/atomic';
import { getLogger } from '../../util/log';
import { silentProgress, type ProgressReporter } from '../../util/progress';
import type { MetricResult, MultilabelReport } from '../metrics';
import { evaluateProbe, LABEL_FRACTIONS, ProbeHead, PROBE_TASKS, sampleLabelFraction, trainProbe, type ProbeBranch, type ProbeEvaluation, type ProbeKind, type ProbeSplit } from '../probe';
import { chexpertPromptSets, ecgPromptSets, PTBXL_SUPERCLASSES } from '../prompts';
import { formatPaperTables, paperTables, type MeasuredFigure, type PaperTask } from '../tables';
import type { TrainOptions } from '../train';
import { embedPromptSets, evaluateEcgZeroShot, evaluateZeroShot, zeroShotScores, type PromptEncoder } from '../zeroshot';
import {
  chexpertProbeSets, chexpertZeroShotSet, edemaSets, limitRows, mimicCxrProbeSets, mimicCxrRetrievalSet, mimicEcgRetrievalSet,
  MIMIC_CXR_PROBE_LABELS, ptbxlSets, sampleXrayRetrievalSet, sampleXrayZeroShotSet, type LabelledSet, type SkipCounts,
} from './data';
import { embedTexts, ModalityEncoder, type EncodedSet } from './embed';
import { fineTuneXrayFractions, xrayTrainableBlocks } from './finetune';

const log = getLogger('tasks.paper');

export const PROTOCOLS = {
  'mimic-cxr-probe': 'X-ray multi-label probe, MIMIC-CXR (4 labels)',
  'chexpert-probe': 'X-ray multi-label probe, CheXpert (5 labels)',
  'edema-probe': 'Edema severity probe, MIMIC-CXR (4 classes)',
  'ptbxl-probe': 'ECG superclass linear probe, PTB-XL (5 labels)',
  'zero-shot-xray': 'Zero-shot X-ray classification (CheXpert 5x200 style)',
  'zero-shot-ecg': 'Zero-shot ECG classification, PTB-XL fold 10',
  'retrieval-xray': 'Retrieval: report -> X-ray and X-ray -> report',
  'retrieval-ecg': 'Retrieval: report -> ECG and ECG -> report',
} as const;

export type ProtocolId = keyof typeof PROTOCOLS;

export const NO_DATA = 'not run: no data given';

export interface PaperTablesOptions {
  /** Main-job checkpoint folder (see `saveMainJobCheckpoint`). */
  checkpoint: string;
  /** MIMIC-CXR-JPG root (tables, `files/`, and the reports under `files/` too). */
  mimicCxr?: string;
  /** Folder with CheXpert's `train.csv` and `valid.csv`. */
  chexpert?: string;
  /** Folder with the MIMIC-CXR edema severity CSV files (needs `mimicCxr` for the images). */
  edema?: string;
  /** PTB-XL root (`ptbxl_database.csv`, `scp_statements.csv`, `records100/`). */
  ptbxl?: string;
  /** MIMIC-IV-ECG root (`record_list.csv`, `machine_measurements.csv`, `files/`). */
  mimicEcg?: string;
  /** Use the shipped sample data (true: `data/samples`, or a folder of the same layout) where no dataset is given. */
  samples?: boolean | string;
  /** JSON result file (default `paper-tables.json` in the checkpoint folder). */
  out?: string;
  /** Label fractions of the probes (default 1%, 10%, 100%). */
  fractions?: readonly number[];
  /** Overrides of the probe training options (defaults: the protocol's, see `PROBE_TRAIN_DEFAULTS`). */
  probe?: TrainOptions;
  /**
   * Fine-tune the CheXpert heads instead of training linear probes: the qkv
   * weights of the last three X-ray encoder blocks train with the head, on
   * images read for every batch. The `probe` overrides apply. Default false.
   */
  fineTune?: boolean;
  /** Uncertain CheXpert labels become 1 (`ones`) or 0 (`zeros`, the default). */
  chexpertPolicy?: 'ones' | 'zeros';
  /** Edema severity labels (default `consensus`). */
  edemaSource?: EdemaLabelSource;
  /** Images per class of the zero-shot X-ray set (default 200). */
  zeroShotPerClass?: number;
  /** Keep at most this many records per split (a seeded draw), to bound the run time on the full datasets. */
  limit?: number;
  /** Store the scores and labels behind every figure in the JSON (default false). */
  saveScores?: boolean;
  seed?: number;
  progress?: ProgressReporter;
}

/** Origin and size of the data behind a protocol's figures. */
export interface ProtocolData {
  kind: 'sample' | 'full';
  description: string;
  trainSize?: number;
  validationSize?: number;
  testSize: number;
  /** Rows left out while reading, by reason. */
  skipped?: SkipCounts;
}

export interface ProtocolFigure {
  name: string;
  /** A fraction in [0, 1], or null when the metric is undefined on this data. */
  value: number | null;
  reason?: string;
}

/** Scores and labels behind the figures of one evaluation, when `saveScores` is on. */
export interface SavedScores {
  name: string;
  scores: number[][];
  labels: number[][] | number[];
}

export interface ProtocolResult {
  id: ProtocolId;
  title: string;
  status: 'run' | 'not run';
  /** Why a protocol did not run ("not run: no data given", or the error). */
  reason?: string;
  data?: ProtocolData;
  figures: ProtocolFigure[];
  scores?: SavedScores[];
}

export interface PaperTablesResult {
  createdAt: string;
  checkpoint: string;
  seed: number;
  /** True when any figure comes from the shipped sample data. */
  sampleData: boolean;
  /** Plain statement about sample-data figures, or null. */
  notice: string | null;
  protocols: ProtocolResult[];
  /** The figures placed beside the published ones. */
  measured: MeasuredFigure[];
  /** The Markdown printed by the CLI. */
  table: string;
  file: string;
}

export const SAMPLE_NOTICE = 'SAMPLE DATA: figures marked "sample" come from the small shipped sample data ' +
  '(data/samples), not from the full datasets; they show that the pipeline runs, not how well the model performs.';

function metricFigure(name: string, metric: MetricResult): ProtocolFigure {
  return metric.value === null ? { name, value: null, reason: metric.reason } : { name, value: metric.value };
}

/** Macro, micro and (when `perLabel`) per-label figures of a report, named `<prefix>macro AUROC<suffix>` and so on. */
function reportFigures(report: MultilabelReport, perLabel: boolean, prefix = '', suffix = ''): ProtocolFigure[] {
  const figures = [
    metricFigure(`${prefix}macro AUROC${suffix}`, report.macro),
    metricFigure(`${prefix}micro AUROC${suffix}`, report.micro),
  ];
  if (perLabel) {
    for (const entry of report.perLabel) {
      const name = `${prefix}AUROC ${entry.label}${suffix}`;
      figures.push(entry.value === null ? { name, value: null, reason: entry.reason } : { name, value: entry.value });
    }
  }
  return figures;
}

function fractionLabel(fraction: number): string {
  return `${Number((fraction * 100).toPrecision(6))}%`;
}

interface RunContext {
  model: MoreModel;
  tokenizer: ReportTokenizer;
  maxTextLength: number;
  encoder: ModalityEncoder;
  options: PaperTablesOptions;
  seed: number;
  progress: ProgressReporter;
}

function probeSplit(encoded: EncodedSet, branch: ProbeBranch, labels: number[][] | number[]): ProbeSplit {
  return { features: { [branch]: encoded.features }, featureDim: { [branch]: encoded.featureDim }, targets: labels };
}

/** Limits each split of a set to `limit` rows (seeded), keeping files, labels and texts aligned. */
function limitSet(set: LabelledSet, limit: number | undefined, seed: number): LabelledSet {
  const rows = limitRows(set.files.map((_, i) => i), limit, seed);
  if (rows.length === set.files.length) return set;
  const out: LabelledSet = { files: rows.map((i) => set.files[i]), labels: rows.map((i) => set.labels[i]) as number[][] | number[] };
  if (set.texts !== undefined) out.texts = rows.map((i) => (set.texts as string[])[i]);
  return out;
}

/**
 * Trains one probe per label fraction on frozen features (the rows of each
 * fraction drawn with the run's seed) and scores it on the test split.
 */
async function runProbes(
  context: RunContext, kind: ProbeKind, branch: ProbeBranch, labels: string[],
  sets: Record<'train' | 'validation' | 'test', LabelledSet>, fractions: readonly number[],
): Promise<{ evaluations: { fraction: number; trainRows: number; evaluation: ProbeEvaluation }[] }> {
  const encode = (set: LabelledSet, split: string) => (branch === 'image'
    ? context.encoder.xrays(set.files, `encoding ${split} X-rays`)
    : context.encoder.ecgs(set.files, `encoding ${split} ECGs`));
  const train = probeSplit(await encode(sets.train, 'training'), branch, sets.train.labels);
  const validation = probeSplit(await encode(sets.validation, 'validation'), branch, sets.validation.labels);
  const test = probeSplit(await encode(sets.test, 'test'), branch, sets.test.labels);
  const projector = branch === 'image' ? context.model.imageHead : context.model.ecgHead;
  const evaluations = [];
  for (const fraction of fractions) {
    const rows = sampleLabelFraction(sets.train.files.length, fraction, context.seed);
    const head = new ProbeHead({ kind, classes: labels.length, branches: [branch] }, { [branch]: projector });
    try {
      await trainProbe(head, { train, validation, trainRows: rows }, {
        seed: context.seed, progress: context.progress, label: `probe ${fractionLabel(fraction)}`, ...context.options.probe,
      });
      evaluations.push({ fraction, trainRows: rows.length, evaluation: evaluateProbe(head, test, labels) });
    } finally {
      head.dispose();
    }
  }
  return { evaluations };
}

function requireSplits(sets: Record<'train' | 'validation' | 'test', LabelledSet>): void {
  for (const split of ['train', 'validation', 'test'] as const) {
    if (sets[split].files.length === 0) throw new Error(`the ${split} split has no records; expected at least one in each split`);
  }
}

async function multilabelProbeProtocol(
  context: RunContext, result: ProtocolResult, branch: ProbeBranch, labels: string[],
  sets: Record<'train' | 'validation' | 'test', LabelledSet>, data: Omit<ProtocolData, 'trainSize' | 'validationSize' | 'testSize'>,
  fineTune = false,
): Promise<void> {
  requireSplits(sets);
  result.data = { ...data, trainSize: sets.train.files.length, validationSize: sets.validation.files.length, testSize: sets.test.files.length };
  const fractions = context.options.fractions ?? LABEL_FRACTIONS;
  if (fineTune && branch !== 'image') throw new Error(`fine-tuning is offered for the X-ray protocols, not the ${branch} branch`);
  const evaluations = fineTune
    ? await fineTuneXrayFractions(context.model, 'multilabel', labels, sets, fractions, {
      seed: context.seed, progress: context.progress, train: context.options.probe, fractionLabel,
    })
    : (await runProbes(context, 'multilabel', branch, labels, sets, fractions)).evaluations;
  for (const { fraction, trainRows, evaluation } of evaluations) {
    const at = ` @ ${fractionLabel(fraction)} (${trainRows} train)`;
    result.figures.push(...reportFigures(evaluation.auroc as MultilabelReport, fraction === 1, '', at));
    result.figures.push(metricFigure(`mAP${at}`, (evaluation.averagePrecision as MultilabelReport).macro));
    if (context.options.saveScores) {
      result.scores?.push({ name: fractionLabel(fraction), scores: evaluation.probabilities, labels: sets.test.labels });
    }
  }
}

function promptEncoder(context: RunContext, maxLength: number): PromptEncoder {
  return (prompts) => embedTexts(context.model, context.tokenizer, prompts, maxLength);
}

interface Sources {
  mimicCxr?: string;
  chexpert?: string;
  edema?: string;
  ptbxl?: string;
  mimicEcg?: string;
  samples?: string;
}

function isInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

/** Runs the protocols and writes the JSON result; the model is loaded from the checkpoint and disposed at the end. */
export async function runPaperTables(options: PaperTablesOptions): Promise<PaperTablesResult> {
  const seed = options.seed ?? 0;
  const progress = options.progress ?? silentProgress;
  const sampleRoot = options.samples === undefined || options.samples === false
    ? undefined
    : path.resolve(options.samples === true ? DEFAULT_SAMPLE_ROOT : options.samples);
  const sources: Sources = {};
  for (const key of ['mimicCxr', 'chexpert', 'edema', 'ptbxl', 'mimicEcg'] as const) {
    if (options[key] !== undefined) sources[key] = path.resolve(options[key] as string);
  }
  if (sampleRoot !== undefined) sources.samples = sampleRoot;
  const sampleFolders = [DEFAULT_SAMPLE_ROOT, ...(sampleRoot === undefined ? [] : [sampleRoot])];
  const kindOf = (folder: string): 'sample' | 'full' => (sampleFolders.some((root) => isInside(folder, root)) ? 'sample' : 'full');

  const loaded = loadMainJobCheckpoint(options.checkpoint);
  const context: RunContext = {
    model: loaded.model,
    tokenizer: loaded.tokenizer,
    maxTextLength: loaded.config.maxTextLength,
    encoder: new ModalityEncoder(loaded.model, { progress }),
    options,
    seed,
    progress,
  };
  const protocols: ProtocolResult[] = [];
  const measured: MeasuredFigure[] = [];
  const tensorsBefore = tf.memory().numTensors;

  const run = async (id: ProtocolId, missing: string | null, body: (result: ProtocolResult) => Promise<void>): Promise<void> => {
    const result: ProtocolResult = { id, title: PROTOCOLS[id], status: 'run', figures: [] };
    if (options.saveScores) result.scores = [];
    if (missing !== null) {
      protocols.push({ id, title: PROTOCOLS[id], status: 'not run', reason: missing, figures: [] });
      log.info(`${id}: ${missing}`);
      return;
    }
    log.info(`${id}: running`);
    try {
      await body(result);
    } catch (error) {
      const reason = `not run: ${(error as Error).message}`;
      log.error(`${id}: ${reason}`);
      protocols.push({ id, title: PROTOCOLS[id], status: 'not run', reason, figures: [], ...(result.data === undefined ? {} : { data: result.data }) });
      return;
    }
    protocols.push(result);
  };
  const measure = (task: PaperTask, column: string, value: number | null, data: ProtocolData | undefined): void => {
    if (value === null || data === undefined) return;
    measured.push({ task, column, value, data: { kind: data.kind, description: data.description, trainSize: data.trainSize, testSize: data.testSize } });
  };
  const limit = (set: LabelledSet, salt: number) => limitSet(set, options.limit, seed + salt);
  const limitAll = (sets: Record<'train' | 'validation' | 'test', LabelledSet>) => ({
    train: limit(sets.train, 1), validation: limit(sets.validation, 2), test: limit(sets.test, 3),
  });
  const limitNote = options.limit === undefined ? '' : `, at most ${options.limit} per split (seeded draw)`;

  try {
    // MIMIC-CXR probe (and its records for edema and retrieval).
    let mimicRecords: ReturnType<typeof mimicCxrProbeSets>['records'] | undefined;
    const mimicSkipped: SkipCounts = {};
    let mimicSets: ReturnType<typeof mimicCxrProbeSets>['splits'] | undefined;
    if (sources.mimicCxr !== undefined) {
      try {
        const read = mimicCxrProbeSets(sources.mimicCxr, mimicSkipped);
        mimicRecords = read.records;
        mimicSets = read.splits;
      } catch (error) {
        log.error(`MIMIC-CXR: ${(error as Error).message}`);
      }
    }
    await run('mimic-cxr-probe', sources.mimicCxr === undefined ? NO_DATA : null, async (result) => {
      if (mimicSets === undefined) mimicSets = mimicCxrProbeSets(sources.mimicCxr as string, mimicSkipped).splits;
      await multilabelProbeProtocol(context, result, 'image', [...MIMIC_CXR_PROBE_LABELS], limitAll(mimicSets), {
        kind: kindOf(sources.mimicCxr as string), description: `MIMIC-CXR-JPG official splits${limitNote}`, skipped: mimicSkipped,
      });
    });

    // CheXpert probe: its figures go beside the CheXpert rows of the peers.
    await run('chexpert-probe', sources.chexpert === undefined ? NO_DATA : null, async (result) => {
      const policy = options.chexpertPolicy ?? 'zeros';
      const skipped: SkipCounts = {};
      const sets = limitAll(chexpertProbeSets(sources.chexpert as string, policy, seed, skipped));
      const head = options.fineTune
        ? `fine-tuned (qkv of the last ${xrayTrainableBlocks(context.model)} X-ray blocks train with the head)` : 'linear probe';
      await multilabelProbeProtocol(context, result, 'image', [...CHEXPERT_COMPETITION], sets, {
        kind: kindOf(sources.chexpert as string), skipped,
        description: `CheXpert train (a seeded tenth held out) / valid, uncertain as ${policy === 'ones' ? '1' : '0'}, ${head}${limitNote}`,
      }, options.fineTune ?? false);
      for (const fraction of options.fractions ?? LABEL_FRACTIONS) {
        const figure = result.figures.find((f) => f.name.startsWith(`macro AUROC @ ${fractionLabel(fraction)} `));
        if (['1%', '10%', '100%'].includes(fractionLabel(fraction))) measure('chexpertFineTune', fractionLabel(fraction), figure?.value ?? null, result.data);
      }
    });

    // Edema severity: four classes, all training labels.
    const edemaMissing = sources.edema === undefined ? NO_DATA
      : sources.mimicCxr === undefined ? 'not run: the edema labels need --mimic-cxr for the images' : null;
    await run('edema-probe', edemaMissing, async (result) => {
      if (mimicRecords === undefined) throw new Error('the MIMIC-CXR tables could not be read');
      const skipped: SkipCounts = {};
      const sets = limitAll(edemaSets(sources.edema as string, options.edemaSource ?? 'consensus', mimicRecords, skipped));
      requireSplits(sets);
      const labels = [...PROBE_TASKS.edemaSeverity.labels];
      result.data = {
        kind: kindOf(sources.edema as string),
        description: `MIMIC-CXR edema severity (${options.edemaSource ?? 'consensus'} labels), MIMIC-CXR splits${limitNote}`,
        trainSize: sets.train.files.length, validationSize: sets.validation.files.length, testSize: sets.test.files.length, skipped,
      };
      const { evaluations } = await runProbes(context, 'multiclass', 'image', labels, sets, [1]);
      const { evaluation } = evaluations[0];
      result.figures.push({ name: 'accuracy', value: evaluation.accuracy as number });
      result.figures.push(metricFigure('macro AUROC (one vs rest)', evaluation.macroAuroc as MetricResult));
      if (options.saveScores) result.scores?.push({ name: 'test', scores: evaluation.probabilities, labels: sets.test.labels });
    });

    // PTB-XL probe, from the dataset or from the samples.
    const ptbxlRoot = sources.ptbxl ?? (sources.samples === undefined ? undefined : path.join(sources.samples, 'ptbxl'));
    let ptbxl: Record<'train' | 'validation' | 'test', LabelledSet> | undefined;
    const ptbxlSkipped: SkipCounts = {};
    const readPtbxl = () => {
      if (ptbxl === undefined) ptbxl = limitAll(ptbxlSets(ptbxlRoot as string, ptbxlSkipped));
      return ptbxl;
    };
    await run('ptbxl-probe', ptbxlRoot === undefined ? NO_DATA : null, async (result) => {
      await multilabelProbeProtocol(context, result, 'ecg', [...PTBXL_SUPERCLASSES], readPtbxl(), {
        kind: kindOf(ptbxlRoot as string), description: `PTB-XL 100 Hz, folds 1-8 / 9 / 10${limitNote}`, skipped: ptbxlSkipped,
      });
      for (const fraction of options.fractions ?? LABEL_FRACTIONS) {
        const figure = result.figures.find((f) => f.name.startsWith(`macro AUROC @ ${fractionLabel(fraction)} `));
        if (['1%', '10%', '100%'].includes(fractionLabel(fraction))) measure('ptbxlLinearProbe', fractionLabel(fraction), figure?.value ?? null, result.data);
      }
    });

    // Zero-shot X-ray: CheXpert 5x200, or the NIH samples' labels.
    const xrayZeroShotSource = sources.chexpert ?? sources.samples;
    await run('zero-shot-xray', xrayZeroShotSource === undefined ? NO_DATA : null, async (result) => {
      let set: LabelledSet;
      let description: string;
      const skipped: SkipCounts = {};
      if (sources.chexpert !== undefined) {
        const perClass = options.zeroShotPerClass ?? 200;
        set = chexpertZeroShotSet(sources.chexpert, perClass, seed);
        description = `CheXpert train, up to ${perClass} images with exactly one positive competition label per class`;
      } else {
        set = sampleXrayZeroShotSet(sources.samples as string, skipped);
        // NOTE: the sample X-rays are not split here, so these include images a main-job checkpoint trained on.
        description = 'NIH ChestX-ray14 sample images, their finding labels as the competition labels; ' +
          'includes images the main job trains on, so the figure is not a held-out one';
      }
      if (set.files.length === 0) throw new Error('no X-ray with a usable label');
      result.data = { kind: kindOf(sources.chexpert ?? (sources.samples as string)), description, testSize: set.files.length, skipped };
      const embeddings = (await context.encoder.xrays(set.files)).embeddings;
      const prompts = chexpertPromptSets(5, seed);
      const promptEmbeddings = await embedPromptSets(promptEncoder(context, context.maxTextLength), prompts);
      const scores = zeroShotScores(embeddings, promptEmbeddings).scores;
      const evaluation = evaluateZeroShot(scores, set.labels as number[][], [...CHEXPERT_COMPETITION]);
      result.figures.push(...reportFigures(evaluation.auroc, true));
      if (options.saveScores) result.scores?.push({ name: 'z-scored similarities', scores, labels: set.labels });
      measure('chexpertZeroShot', 'AUROC', evaluation.auroc.macro.value, result.data);
    });

    // Zero-shot ECG on PTB-XL fold 10.
    await run('zero-shot-ecg', ptbxlRoot === undefined ? NO_DATA : null, async (result) => {
      const test = readPtbxl().test;
      if (test.files.length === 0) throw new Error('PTB-XL fold 10 has no records');
      result.data = {
        kind: kindOf(ptbxlRoot as string), description: `PTB-XL 100 Hz fold 10${limitNote}`, testSize: test.files.length, skipped: ptbxlSkipped,
      };
      const embeddings = (await context.encoder.ecgs(test.files)).embeddings;
      const text = context.model.text;
      // The protocol pads ECG prompts to 128 tokens; a smaller text encoder caps them at its own length.
      const maxLength = text instanceof TransformerTextEncoder ? Math.min(128, text.config.maxPositionEmbeddings) : 128;
      const promptEmbeddings = await embedPromptSets(promptEncoder(context, maxLength), ecgPromptSets());
      const scores = zeroShotScores(embeddings, promptEmbeddings).scores;
      const evaluation = evaluateEcgZeroShot(scores, test.labels as number[][], [...PTBXL_SUPERCLASSES]);
      result.figures.push(...reportFigures(evaluation.multiLabel.auroc, true, 'multi-label '));
      result.figures.push(metricFigure('single-label (priority NORM > STTC > MI > HYP > CD) macro AUROC', evaluation.singleLabel.auroc.macro));
      result.figures.push({ name: 'single-label accuracy', value: evaluation.singleLabel.accuracy });
      if (options.saveScores) result.scores?.push({ name: 'z-scored similarities', scores, labels: test.labels });
      measure('ecgZeroShot', 'AUROC', evaluation.multiLabel.auroc.macro.value, result.data);
    });

    // Retrieval.
    const retrieval = async (result: ProtocolResult, modality: 'xray' | 'ecg', set: LabelledSet, data: Omit<ProtocolData, 'testSize'>): Promise<void> => {
      if (set.files.length === 0) throw new Error('no record with a report');
      result.data = { ...data, testSize: set.files.length };
      const signal = modality === 'xray' ? (await context.encoder.xrays(set.files)).embeddings : (await context.encoder.ecgs(set.files)).embeddings;
      const report = embedTexts(context.model, context.tokenizer, set.texts as string[], context.maxTextLength);
      const figures = retrievalFigures({ ids: set.files, signal, report, features: [] }, modality);
      const name = modality === 'xray' ? 'X-ray' : 'ECG';
      for (const k of [1, 5, 10]) result.figures.push({ name: `report -> ${name} Recall@${k}`, value: figures.reportToSignal.recallAtK[k] });
      for (const k of [1, 5, 10]) result.figures.push({ name: `${name} -> report Recall@${k}`, value: figures.signalToReport.recallAtK[k] });
      for (const k of [1, 5, 10]) result.figures.push({ name: `chance Recall@${k}`, value: figures.chance[k] });
    };
    await run('retrieval-xray', sources.mimicCxr === undefined && sources.samples === undefined ? NO_DATA : null, async (result) => {
      if (sources.mimicCxr !== undefined) {
        if (mimicRecords === undefined) throw new Error('the MIMIC-CXR tables could not be read');
        const skipped: SkipCounts = {};
        const set = limit(mimicCxrRetrievalSet(mimicRecords, skipped), 4);
        await retrieval(result, 'xray', set, {
          kind: kindOf(sources.mimicCxr), description: `MIMIC-CXR test split, one image per study${limitNote}`, skipped,
        });
      } else {
        const skipped: SkipCounts = {};
        const set = limit(sampleXrayRetrievalSet(sources.samples as string, skipped), 4);
        await retrieval(result, 'xray', set, {
          kind: kindOf(sources.samples as string), description: 'NIH and Hannover sample X-rays with notes written from their labels; includes images the main job ' +
            `trains on, so the figure is not a held-out one${limitNote}`, skipped,
        });
      }
    });
    await run('retrieval-ecg', sources.mimicEcg === undefined && ptbxlRoot === undefined ? NO_DATA : null, async (result) => {
      if (sources.mimicEcg !== undefined) {
        const skipped: SkipCounts = {};
        const set = limit(mimicEcgRetrievalSet(sources.mimicEcg, skipped), 5);
        await retrieval(result, 'ecg', set, { kind: kindOf(sources.mimicEcg), description: `MIMIC-IV-ECG records with machine reports${limitNote}`, skipped });
      } else {
        await retrieval(result, 'ecg', readPtbxl().test, {
          kind: kindOf(ptbxlRoot as string), description: `PTB-XL fold 10 with reports written from the SCP statements${limitNote}`, skipped: ptbxlSkipped,
        });
      }
    });
  } finally {
    loaded.model.dispose();
  }
  if (tf.memory().numTensors > tensorsBefore) log.warn(`${tf.memory().numTensors - tensorsBefore} tensors left after the run`);

  const sampleData = protocols.some((protocol) => protocol.data?.kind === 'sample');
  const file = path.resolve(options.out ?? path.join(options.checkpoint, 'paper-tables.json'));
  const partial = { createdAt: new Date().toISOString(), checkpoint: path.resolve(options.checkpoint), seed, sampleData, notice: sampleData ? SAMPLE_NOTICE : null, protocols, measured };
  const result: PaperTablesResult = { ...partial, table: formatPaperTablesReport(partial), file };
  writeFileAtomic(file, `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

/** Formats a figure in percent with one decimal, or the reason it is undefined. */
export function formatFigure(figure: ProtocolFigure): string {
  return figure.value === null ? `undefined (${figure.reason ?? 'no reason given'})` : (figure.value * 100).toFixed(1);
}

function sizes(data: ProtocolData): string {
  const parts: string[] = [];
  if (data.trainSize !== undefined) parts.push(`${data.trainSize} train`);
  if (data.validationSize !== undefined) parts.push(`${data.validationSize} validation`);
  parts.push(`${data.testSize} test`);
  const skipped = Object.entries(data.skipped ?? {}).map(([reason, count]) => `${count} ${reason}`);
  const left = skipped.length === 0 ? '' : ` (left out: ${skipped.join(', ')})`;
  return `${data.kind === 'sample' ? 'sample' : 'full'}: ${parts.join(' / ')}${left}`;
}

/**
 * Formats the result as Markdown: the sample-data notice first when it
 * applies, one row per figure of each protocol with its data and sizes (or
 * the reason the protocol did not run), then the tables beside the peers'
 * published figures.
 */
export function formatPaperTablesReport(result: Pick<PaperTablesResult, 'sampleData' | 'notice' | 'protocols' | 'measured' | 'checkpoint'>): string {
  const lines: string[] = [];
  lines.push(result.sampleData ? '# Paper tables (SAMPLE DATA)' : '# Paper tables', '');
  if (result.notice !== null) lines.push(`**${result.notice}**`, '');
  lines.push(`Checkpoint: ${result.checkpoint}`, '', '## Our protocols', '', '| protocol | figure | value (%) | data |', '| --- | --- | ---: | --- |');
  for (const protocol of result.protocols) {
    if (protocol.status === 'not run') {
      lines.push(`| ${protocol.title} | - | - | ${protocol.reason ?? NO_DATA} |`);
      continue;
    }
    const data = protocol.data as ProtocolData;
    for (const figure of protocol.figures) {
      lines.push(`| ${protocol.title} | ${figure.name} | ${formatFigure(figure)} | ${sizes(data)}; ${data.description} |`);
    }
  }
  lines.push('', '## Beside published figures', '', formatPaperTables(paperTables(result.measured)));
  return lines.join('\n');
}
