/**
 * `npm run paper-tables`: runs the evaluation protocols of MoRE on a
 * main-job checkpoint with whichever datasets are given, prints the figures
 * beside the peers' published ones and writes them as JSON, for example
 * `npm run paper-tables -- --checkpoint runs/X/checkpoint --ptbxl /data/ptb-xl --chexpert /data/CheXpert-v1.0`.
 */
import { parseArgs } from 'util';

import { initBackend } from '../../backend';
import { positiveIntegerOption } from '../../util/args';
import { TerminalProgress } from '../../util/progress';
import { runPaperTables } from './runner';

const USAGE = `usage: npm run paper-tables -- --checkpoint DIR [datasets] [options]
  --checkpoint DIR        main-job checkpoint folder (required)
  --mimic-cxr DIR         MIMIC-CXR-JPG root, reports under files/ too
  --chexpert DIR          folder with CheXpert's train.csv and valid.csv
  --edema DIR             folder with the MIMIC-CXR edema severity CSV files (needs --mimic-cxr)
  --ptbxl DIR             PTB-XL root
  --mimic-ecg DIR         MIMIC-IV-ECG root
  --samples               use the shipped sample data (data/samples) where no dataset is given
  --out FILE              JSON result (default paper-tables.json in the checkpoint folder)
  --limit N               at most N records per split (seeded draw), for a bounded run
  --probe-epochs N        probe epochs (default 20, with early stopping)
  --fine-tune             fine-tune the CheXpert heads (qkv of the last 3 X-ray blocks) instead of linear probes
  --chexpert-policy P     uncertain CheXpert labels as ones or zeros (default zeros)
  --save-scores           keep the scores behind every figure in the JSON
  --seed N                random seed (default 0)`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      checkpoint: { type: 'string' }, 'mimic-cxr': { type: 'string' }, chexpert: { type: 'string' }, edema: { type: 'string' },
      ptbxl: { type: 'string' }, 'mimic-ecg': { type: 'string' }, samples: { type: 'boolean' }, out: { type: 'string' },
      limit: { type: 'string' }, 'probe-epochs': { type: 'string' }, 'chexpert-policy': { type: 'string' },
      'save-scores': { type: 'boolean' }, seed: { type: 'string' }, help: { type: 'boolean' }, 'fine-tune': { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.checkpoint === undefined) throw new Error(`Missing --checkpoint: pass the folder of a main-job checkpoint\n${USAGE}`);
  const policy = values['chexpert-policy'];
  if (policy !== undefined && policy !== 'ones' && policy !== 'zeros') {
    throw new Error(`Invalid --chexpert-policy "${policy}": expected ones or zeros`);
  }
  const seed = values.seed === undefined ? undefined : Number(values.seed);
  if (seed !== undefined && !Number.isInteger(seed)) throw new Error(`Invalid --seed "${values.seed}": expected an integer`);
  const probeEpochs = positiveIntegerOption('probe-epochs', values['probe-epochs']);

  await initBackend();
  const result = await runPaperTables({
    checkpoint: values.checkpoint,
    mimicCxr: values['mimic-cxr'],
    chexpert: values.chexpert,
    edema: values.edema,
    ptbxl: values.ptbxl,
    mimicEcg: values['mimic-ecg'],
    samples: values.samples ?? false,
    out: values.out,
    limit: positiveIntegerOption('limit', values.limit),
    probe: probeEpochs === undefined ? undefined : { maxEpochs: probeEpochs },
    fineTune: values['fine-tune'] ?? false,
    chexpertPolicy: policy as 'ones' | 'zeros' | undefined,
    saveScores: values['save-scores'] ?? false,
    seed,
    progress: new TerminalProgress(),
  });
  console.log(result.table);
  console.log(`Figures written to ${result.file}`);
}

main().catch((error: unknown) => {
  console.error(`paper tables failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
