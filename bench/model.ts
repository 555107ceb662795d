/**
 * MoRE model benchmark: our X-ray and ECG towers against the same PyTorch
 * modules (reference/model_vision.py), in the same run on the same machine.
 *
 * It measures the `tiny` and `base` presets at batch 8 on the CPU, in samples
 * per second. The training figure is one step: both encoders in training mode
 * with DropKey, both nonlinear heads, symmetric InfoNCE, the backward pass and
 * an Adam update. The inference figures are each encoder in eval mode. Each line ends in `ratio=X`, ours over PyTorch's.
 * Run with `npm run bench:model`; `--preset tiny` runs one preset.
 */
import { spawnSync } from 'child_process';
import * as path from 'path';

import { initBackend, tf } from '../src/backend';
import {
  EcgEncoder,
  type PresetName,
  ProjectionHead,
  VisionTransformer,
  ecgPreset,
  headPreset,
  infoNce,
  vitPreset,
} from '../src/model';

const BATCH = 8;

interface Timing {
  trainSeconds: number;
  trainIterations: number;
  inferSeconds: number;
  inferIterations: number;
}

// A base training step takes tens of seconds on two cores, so it is timed over two steps.
const TIMING: Record<'tiny' | 'base', Timing> = {
  tiny: { trainSeconds: 5, trainIterations: 5, inferSeconds: 5, inferIterations: 5 },
  base: { trainSeconds: 0, trainIterations: 2, inferSeconds: 10, inferIterations: 2 },
};

interface Rates {
  trainStepsPerSecond: number;
  imageBatchesPerSecond: number;
  ecgBatchesPerSecond: number;
}

/** Returns calls per second of `step` after one warm-up call. `step` must wait for its result. */
function rate(step: () => void, minSeconds: number, minIterations: number): number {
  step();
  let iterations = 0;
  const started = process.hrtime.bigint();
  const elapsed = (): number => Number(process.hrtime.bigint() - started) / 1e9;
  while (iterations < minIterations || elapsed() < minSeconds) {
    step();
    iterations += 1;
  }
  return iterations / elapsed();
}

function settingsFor(preset: 'tiny' | 'base') {
  return {
    image: vitPreset(preset),
    ecg: ecgPreset(preset),
    head: headPreset(preset),
    batch: BATCH,
    timing: TIMING[preset],
  };
}

function measureOurs(preset: 'tiny' | 'base'): Rates {
  const settings = settingsFor(preset);
  const timing = settings.timing;
  const image = new VisionTransformer(settings.image, { seed: 1 });
  const ecg = new EcgEncoder(settings.ecg, { seed: 2 });
  const heads = [new ProjectionHead(settings.head), new ProjectionHead(settings.head)];
  const { imageSize, channels } = settings.image;
  const images = tf.randomNormal([BATCH, imageSize, imageSize, channels]) as tf.Tensor4D;
  const signals = tf.randomNormal([BATCH, settings.ecg.leads, settings.ecg.samples]) as tf.Tensor3D;
  const variables = [image, ecg, ...heads].flatMap((part) => part.trainableVariables());
  const optimizer = tf.train.adam(3e-5);

  const trainStep = (): void => {
    const { value, grads } = tf.variableGrads(() => {
      const imageEmbedding = heads[0].apply(image.forward(images, { training: true }).pooled, true);
      const ecgEmbedding = heads[1].apply(ecg.forward(signals, { training: true }).pooled, true);
      return infoNce(imageEmbedding, ecgEmbedding, 0.02);
    }, variables);
    optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
    // The native backend runs ops eagerly, so reading the loss back waits for the whole step.
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
  const infer = (run: () => tf.Tensor) => (): void => {
    const pooled = run();
    pooled.dataSync();
    pooled.dispose();
  };

  const rates: Rates = {
    trainStepsPerSecond: rate(trainStep, timing.trainSeconds, timing.trainIterations),
    imageBatchesPerSecond: rate(infer(() => image.forward(images).pooled), timing.inferSeconds, timing.inferIterations),
    ecgBatchesPerSecond: rate(infer(() => ecg.forward(signals).pooled), timing.inferSeconds, timing.inferIterations),
  };
  optimizer.dispose();
  tf.dispose([images, signals]);
  for (const part of [image, ecg, ...heads]) part.dispose();
  return rates;
}

interface ReferenceRates {
  torch: string;
  /** Thread count behind each figure: the faster of torch's default and one thread. */
  threads: Record<string, number>;
  train_steps_per_second: number;
  image_batches_per_second: number;
  ecg_batches_per_second: number;
}

function measureReference(preset: 'tiny' | 'base'): ReferenceRates {
  const python = path.resolve(__dirname, '..', '.venv', 'bin', 'python');
  const script = path.join(__dirname, 'model.py');
  const result = spawnSync(python, [script, JSON.stringify(settingsFor(preset))], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (result.status !== 0) {
    throw new Error(
      `bench/model.py failed (exit ${result.status}): ${result.stderr.trim()}\n` +
        'Install the reference tools with `node scripts/setup/python-env.js --reference`.',
    );
  }
  return JSON.parse(result.stdout.trim().split('\n').pop() as string) as ReferenceRates;
}

function line(label: string, ours: number, reference: number): string {
  return `${label}: ours=${ours.toFixed(2)} samples/s reference=${reference.toFixed(2)} samples/s ratio=${(ours / reference).toFixed(3)}`;
}

function parsePresets(argv: string[]): ('tiny' | 'base')[] {
  const index = argv.indexOf('--preset');
  if (index === -1) return ['tiny', 'base'];
  const value = argv[index + 1] as PresetName;
  if (value !== 'tiny' && value !== 'base') {
    throw new Error(`Invalid --preset ${JSON.stringify(value)}: expected tiny or base`);
  }
  return [value];
}

async function main(): Promise<void> {
  const presets = parsePresets(process.argv.slice(2));
  const info = await initBackend();
  let header = false;
  for (const preset of presets) {
    const ours = measureOurs(preset);
    const reference = measureReference(preset);
    if (!header) {
      console.log(`# tfjs ${tf.version_core} ${info.name} (${info.device}) vs PyTorch ${reference.torch} CPU ` +
        '(each PyTorch figure is the faster of its default thread count and one thread)');
      header = true;
    }
    console.log(`# ${preset}: PyTorch threads ${JSON.stringify(reference.threads)}`);
    console.log(line(`${preset} train step X-ray+ECG towers, heads, InfoNCE, Adam (batch ${BATCH})`,
      ours.trainStepsPerSecond * BATCH, reference.train_steps_per_second * BATCH));
    console.log(line(`${preset} X-ray encoder inference (batch ${BATCH})`,
      ours.imageBatchesPerSecond * BATCH, reference.image_batches_per_second * BATCH));
    console.log(line(`${preset} ECG encoder inference (batch ${BATCH})`,
      ours.ecgBatchesPerSecond * BATCH, reference.ecg_batches_per_second * BATCH));
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
