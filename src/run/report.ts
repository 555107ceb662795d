/**
 * The report notebook of a main-job run: written into the run folder,
 * executed through the more-ts kernel over the Jupyter protocol, and exported
 * to HTML. It shows the figures table, the training curves, the zero-shot ROC
 * curves, an embedding map, one X-ray and one ECG explanation and one
 * retrieval view. The last three are the JupyterLab extension's bundles, with
 * text and PNG forms for other viewers.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import type { TrainingRecord } from '../viz/specs';
import type { EpochRecord } from '../tasks/train';
import { writeFileAtomic } from '../util/atomic';
import { repositoryRoot } from '../util/repository';

const REPOSITORY = repositoryRoot();
const EXECUTOR = path.join(REPOSITORY, 'scripts', 'notebook', 'execute.py');
const VENV_PYTHON = path.join(REPOSITORY, '.venv', 'bin', 'python');

/**
 * Turns an epoch history into the records the training-curve plots take.
 * An epoch record stores the learning rate after that epoch's schedule step,
 * so the rate an epoch trained at is the previous record's, or `peakLr` for
 * the first epoch.
 */
export function historyToTrainingRecords(history: EpochRecord[], peakLr: number): TrainingRecord[] {
  const records: TrainingRecord[] = [];
  history.forEach((epoch, index) => {
    const step = epoch.epoch + 1;
    const learningRate = index === 0 ? peakLr : history[index - 1].lr;
    records.push({ step, split: 'train', loss: epoch.trainLoss, learningRate });
    if (epoch.validationLoss !== null) records.push({ step, split: 'held-out', loss: epoch.validationLoss });
  });
  return records;
}

type Cell = { kind: 'markdown' | 'code'; source: string };

const CELLS: Cell[] = [
  {
    kind: 'markdown',
    source: `# MoRE main job: report

This notebook belongs to one run of \`npm start\`. It reads the run's \`summary.json\` and \`checkpoint/\`
(the run folder is \`MORE_TS_RUN_DIR\`, or this notebook's folder) and shows what the run measured.
Every figure comes from the small sample data shipped with more-ts, with its data size beside it;
none is comparable to figures measured on the full datasets.`,
  },
  {
    kind: 'code',
    source: `import * as fs from 'fs';
import * as path from 'path';
import * as more from 'more-ts';
import * as nb from 'more-ts/kernel';

const runDir = process.env.MORE_TS_RUN_DIR ?? process.cwd();
const summary = JSON.parse(fs.readFileSync(path.join(runDir, 'summary.json'), 'utf8')) as more.run.MainJobSummary;
console.log(more.run.formatSummaryTable(summary));`,
  },
  {
    kind: 'markdown',
    source: `## Training curves

Contrastive loss per epoch on the training samples and on the held-out samples, and the learning rate of the cosine schedule.`,
  },
  {
    kind: 'code',
    source: `nb.showVegaLite(more.viz.trainingCurvesSpec(more.run.historyToTrainingRecords(summary.training.epochs, summary.settings.lr), { title: 'Pre-training' }));`,
  },
  {
    kind: 'markdown',
    source: `## Zero-shot ECG classification

ROC curves of the z-scored cosine similarity between each held-out ECG and the prompt of each PTB-XL superclass.`,
  },
  {
    kind: 'code',
    source: `const zeroShot = summary.zeroShotEcg;
nb.showVegaLite(more.viz.rocCurveSpec(zeroShot.labels, zeroShot.scores, {
  labels: zeroShot.classes,
  title: \`Zero-shot PTB-XL superclasses, \${zeroShot.records} held-out records\`,
}));`,
  },
  {
    kind: 'markdown',
    source: `## The trained model on held-out samples

The checkpoint is self-contained: it carries the model config, the LoRA settings and the tokenizer.`,
  },
  {
    kind: 'code',
    source: `const { model, tokenizer, config } = more.run.loadMainJobCheckpoint(path.join(runDir, 'checkpoint'));
const corpus = more.run.buildSampleCorpus({
  root: summary.settings.dataRoot, ecgReportStyle: summary.settings.ecgReportStyle, seed: summary.settings.seed,
});
const heldOut = (modality: 'ecg' | 'xray') => corpus.samples
  .filter((sample) => sample.split === 'heldout' && sample.modality === modality)
  .slice(0, summary.settings.limit > 0 ? summary.settings.limit : undefined);
const progress = new nb.NotebookProgress();
const xrays = (await more.run.prepareSamples(heldOut('xray'), tokenizer, { maxTextLength: config.maxTextLength, progress })).prepared;
const ecgs = (await more.run.prepareSamples(heldOut('ecg'), tokenizer, { maxTextLength: config.maxTextLength, progress })).prepared;`,
  },
  {
    kind: 'markdown',
    source: `### Embedding map

t-SNE of the held-out ECG embeddings in the shared space, coloured by each record's first superclass.`,
  },
  {
    kind: 'code',
    source: `const ecgEmbeddings = more.run.embedSamples(model, ecgs);
const superclass = ecgs.map((item) => {
  const labels = item.sample.modality === 'ecg' ? item.sample.ecg.labels : [];
  const first = labels.findIndex((value) => value === 1);
  return first < 0 ? 'none' : more.run.PTBXL_SUPERCLASSES[first];
});
nb.showVegaLite(more.viz.embeddingMapSpec(ecgEmbeddings.signal, superclass, {
  method: 'tsne', ids: ecgEmbeddings.ids, title: 'Held-out ECGs in the shared space',
}));`,
  },
  {
    kind: 'markdown',
    source: `### Explanations

Gradient-weighted attention relevance (Chefer et al., CVPR 2021) towards the similarity of each image or signal
to its report: a heatmap over the X-ray patches, relevance over time for the ECG, relevance per report token.`,
  },
  {
    kind: 'code',
    source: `await nb.showExplanation(more.run.explanationBundle(model, tokenizer, xrays[0]));
await nb.showExplanation(more.run.explanationBundle(model, tokenizer, ecgs[0]));`,
  },
  {
    kind: 'markdown',
    source: `### Retrieval

The report of the first held-out X-ray as the query, ranked against every held-out X-ray.`,
  },
  {
    kind: 'code',
    source: `nb.showRetrieval(more.run.retrievalBundle(model, xrays, 0, 5));
model.dispose();
console.log(\`tensors left after disposing the model: \${more.tf.memory().numTensors}\`);`,
  },
];

function notebookJson(): string {
  const cells = CELLS.map((cell) => {
    const lines = cell.source.split('\n').map((line, index, all) => (index < all.length - 1 ? `${line}\n` : line));
    return cell.kind === 'markdown'
      ? { cell_type: 'markdown', metadata: {}, source: lines }
      : { cell_type: 'code', execution_count: null, metadata: {}, outputs: [], source: lines };
  });
  const notebook = {
    cells,
    metadata: {
      kernelspec: { display_name: 'MoRE (TypeScript)', language: 'typescript', name: 'more-ts' },
      language_info: { name: 'typescript' },
    },
    nbformat: 4,
    nbformat_minor: 5,
  };
  return `${JSON.stringify(notebook, null, 1)}\n`;
}

/** Writes `report.ipynb` (not yet executed) into the run folder and returns its path. */
export function writeReportNotebook(runDir: string): string {
  const file = path.join(runDir, 'report.ipynb');
  writeFileAtomic(file, notebookJson());
  return file;
}

export interface ExecutedReport {
  notebook: string;
  html: string;
  seconds: number;
}

/**
 * Writes the report notebook into `runDir`, executes it through the more-ts
 * kernel with the project's Jupyter environment and exports it to HTML.
 */
export function executeReportNotebook(runDir: string, options: { timeoutSeconds?: number } = {}): ExecutedReport {
  if (!fs.existsSync(VENV_PYTHON)) {
    throw new Error(`The Jupyter environment ${VENV_PYTHON} is missing: run \`npm ci\` to create it`);
  }
  const notebook = writeReportNotebook(runDir);
  const html = path.join(runDir, 'report.html');
  const started = Date.now();
  const result = spawnSync(VENV_PYTHON, [EXECUTOR, notebook, '--html', html, '--timeout', String(options.timeoutSeconds ?? 900)], {
    cwd: runDir,
    encoding: 'utf8',
    env: { ...process.env, MORE_TS_RUN_DIR: path.resolve(runDir) },
  });
  if (result.error) throw new Error(`Could not start the notebook executor: ${result.error.message}`);
  if (result.status !== 0) {
    const tail = `${result.stderr}`.trim().split('\n').slice(-25).join('\n');
    throw new Error(`Executing ${notebook} failed (exit ${result.status}):\n${tail}`);
  }
  return { notebook, html, seconds: (Date.now() - started) / 1000 };
}
