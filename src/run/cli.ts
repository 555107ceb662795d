/**
 * `npm start`: runs the main job on the shipped samples and prints its
 * figures as a table. Options scale the run up, for example
 * `npm start -- --epochs 20 --batch-size 64 --text-model /path/to/RoBERTa-base-PM-M3`.
 */
import * as path from 'path';
import { parseArgs } from 'util';

import { positiveIntegerOption } from '../util/args';
import { requestInterrupt } from '../util/interrupt';
import { ECG_REPORT_STYLES, type EcgReportStyle } from './ecg_samples';
import { runMainJob, type MainJobSummary } from './main';
import { executeReportNotebook } from './report';
import { formatSummaryTable } from './table';

const USAGE = `usage: npm start -- [options]
  --out DIR               run folder (default runs/<UTC time>)
  --data DIR              sample data folder (default data/samples)
  --text-model DIR        Hugging Face BERT/RoBERTa folder (default all-MiniLM-L6-v2 from the set-up)
  --ecg-reports STYLE     statements (English, from SCP statements) or free-text (PTB-XL reports)
  --epochs N              pre-training epochs (default 12)
  --batch-size N          samples per batch (default 32)
  --lr X                  peak learning rate (default 3e-4)
  --max-text-length N     tokens per report (default 64)
  --probe-epochs N        linear-probe epochs (default 30)
  --limit N               at most N samples per modality and split, for a quick smoke run
  --seed N                random seed (default 0)
  --eager                 pre-train with eager operations instead of compiled
                          TensorFlow graphs (slower, for comparison and debugging)
Ctrl-C stops training after the current step and keeps the last finished
epoch's checkpoint; run again with the same --out to resume from it.
  --no-notebook           skip the executed report notebook`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' }, data: { type: 'string' }, 'text-model': { type: 'string' },
      'ecg-reports': { type: 'string' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' },
      lr: { type: 'string' }, 'max-text-length': { type: 'string' }, 'probe-epochs': { type: 'string' },
      seed: { type: 'string' }, limit: { type: 'string' }, 'no-notebook': { type: 'boolean' }, help: { type: 'boolean' },
      eager: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const style = values['ecg-reports'];
  if (style !== undefined && !(ECG_REPORT_STYLES as readonly string[]).includes(style)) {
    throw new Error(`Invalid --ecg-reports "${style}": expected one of ${ECG_REPORT_STYLES.join(', ')}`);
  }
  const lr = values.lr === undefined ? undefined : Number(values.lr);
  if (lr !== undefined && !(lr > 0)) throw new Error(`Invalid --lr "${values.lr}": expected a positive number`);
  const seed = values.seed === undefined ? undefined : Number(values.seed);
  if (seed !== undefined && !Number.isInteger(seed)) throw new Error(`Invalid --seed "${values.seed}": expected an integer`);

  // Ctrl-C stops training at the next step boundary, keeping the last
  // checkpoint for a resume; a second Ctrl-C exits at once.
  process.once('SIGINT', () => {
    console.error('\ninterrupt: stopping at the next training step (press Ctrl-C again to exit now)');
    requestInterrupt();
    process.once('SIGINT', () => process.exit(130));
  });
  const summary: MainJobSummary = await runMainJob({
    outDir: values.out,
    dataRoot: values.data,
    textModel: values['text-model'],
    ecgReportStyle: style as EcgReportStyle | undefined,
    epochs: positiveIntegerOption('epochs', values.epochs),
    batchSize: positiveIntegerOption('batch-size', values['batch-size']),
    lr,
    maxTextLength: positiveIntegerOption('max-text-length', values['max-text-length']),
    probeEpochs: positiveIntegerOption('probe-epochs', values['probe-epochs']),
    limit: positiveIntegerOption('limit', values.limit),
    seed,
    graph: values.eager !== true,
  });
  console.log(formatSummaryTable(summary));
  if (values['no-notebook']) return;
  const runDir = path.dirname(summary.files.summary);
  console.error(`executing the report notebook through the more-ts kernel in ${runDir}...`);
  const report = executeReportNotebook(runDir);
  console.log(`report: ${report.notebook} (executed in ${report.seconds.toFixed(0)} s), ${report.html}`);
}

main().catch((error: unknown) => {
  console.error(`more-ts main job failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
