/**
 * Training benchmark: pre-training throughput of the tiny reference-layout
 * MoRE model (ViT trunks of width 64, a 2-layer RoBERTa with LoRA, batches of
 * 4 samples, 2 accumulated batches per AdamW step), through `fit` here and
 * through a plain PyTorch loop in the same run (bench/train.py).
 *
 * Prints two lines ending in `ratio=X`, our samples per second over
 * PyTorch's: training steps as compiled TensorFlow graphs (the default),
 * then eager operations. Both leave out each run's first epoch, in which
 * the graphs are traced (1 to 2.5 s for this model on a loaded 2-core machine).
 * Run with `npm run bench:train`.
 */
import { spawnSync } from 'child_process';
import * as path from 'path';

import { initBackend } from '../src/backend';
import { fit, moreTrainingModel } from '../src/tasks/train';
import { buildReferenceTiny, FormulaPairs } from '../test/tasks/more-tiny';

const CONFIG = { min_seconds: 10, min_batches: 20 };

async function measureOurs(graph: boolean): Promise<number> {
  const model = buildReferenceTiny();
  const data = { train: new FormulaPairs() };
  const options = { batchSize: 4, accumulationSteps: 2, lr: 1e-4, shuffle: false, checkpointEveryEpochs: 0, graph };
  // Each fit traces its graphs in its first epoch, so only later epochs are timed.
  // A warm-up run's second epoch sizes the timed part: enough epochs for min_seconds and min_batches.
  let epochStarted = 0;
  let epochSeconds = 0;
  await fit(moreTrainingModel(model), data, {
    ...options,
    maxEpochs: 2,
    onEpochEnd: (record) => {
      if (record.epoch === 1) epochSeconds = (performance.now() - epochStarted) / 1000;
      epochStarted = performance.now();
    },
  });
  const epochs = Math.max(Math.ceil(CONFIG.min_batches / 4), Math.ceil(CONFIG.min_seconds / epochSeconds));
  let samples = 0;
  let started = 0;
  await fit(moreTrainingModel(model), data, {
    ...options,
    maxEpochs: epochs + 1,
    onBatchEnd: (record) => {
      if (record.epoch > 0) samples += 4;
    },
    onEpochEnd: (record) => {
      if (record.epoch === 0) started = performance.now();
    },
  });
  const seconds = (performance.now() - started) / 1000;
  model.dispose();
  return samples / seconds;
}

function measureReference(): { samples_per_second: number } {
  const python = path.resolve(__dirname, '..', '.venv', 'bin', 'python');
  const result = spawnSync(python, [path.join(__dirname, 'train.py'), JSON.stringify(CONFIG)], { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(`bench/train.py failed (exit ${result.status}): ${result.stderr.slice(-2000)}\n` +
      'Install the reference tools with `node scripts/setup/python-env.js --reference`.');
  }
  return JSON.parse(result.stdout.trim().split('\n').pop() as string);
}

async function main(): Promise<void> {
  await initBackend();
  const graph = await measureOurs(true);
  const eager = await measureOurs(false);
  const reference = measureReference();
  for (const [mode, ours] of [['graph', graph], ['eager', eager]] as const) {
    process.stdout.write(`tiny MoRE pre-training (batch 4, accumulation 2, ${mode}): ours=${ours.toFixed(2)} samples/s ` +
      `reference=${reference.samples_per_second.toFixed(2)} samples/s ratio=${(ours / reference.samples_per_second).toFixed(3)}\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
