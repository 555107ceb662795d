/**
 * MoRE model benchmark: our X-ray and ECG towers against the same PyTorch
 * modules (reference/model_vision.py), in the same run on the same machine.
 *
 * It measures the `tiny` and `base` presets at batch 8 on the CPU, in samples
 * per second, one tower at a time so a base run fits in memory. The training
 * figure is one step of a tower: the encoder in training mode with DropKey,
 * its nonlinear head, symmetric InfoNCE against fixed target embeddings, the
 * backward pass and an Adam update. The inference figure is the encoder in
 * eval mode. Each figure is measured twice on our side: as a compiled graph
 * (`compileGraph`, one TensorFlow session run per call, as the library runs
 * them on the native backend) and eagerly, one TensorFlow.js operation at a
 * time. Each line ends in `ratio=X`, ours over PyTorch's.
 * Run with `npm run bench:model`; `--preset tiny` runs one preset and
 * `--tower ecg` one tower (`image` or `ecg`).
 */
import { spawnSync } from 'child_process';
import * as path from 'path';

import { initBackend, tf } from '../src/backend';
import { compileGraph } from '../src/backend/graph';
import { callsPerSecond, INFERENCE_ROUNDS, median } from './timing';
import {
  EcgEncoder,
  type EncoderOutput,
  ProjectionHead,
  VisionTransformer,
  ecgPreset,
  headPreset,
  infoNce,
  vitPreset,
} from '../src/model';

const BATCH = 8;
const PRESETS = ['tiny', 'base'] as const;
type BenchPreset = (typeof PRESETS)[number];
const TOWERS = ['image', 'ecg'] as const;
type Tower = (typeof TOWERS)[number];

interface Timing {
  trainSeconds: number;
  trainIterations: number;
  inferSeconds: number;
  inferIterations: number;
}

// A base training step takes tens of seconds on two cores, so it is timed over two steps.
const TIMING: Record<BenchPreset, Timing> = {
  tiny: { trainSeconds: 5, trainIterations: 5, inferSeconds: 5, inferIterations: 5 },
  base: { trainSeconds: 0, trainIterations: 2, inferSeconds: 10, inferIterations: 2 },
};

interface Rates {
  trainStepsPerSecond: number;
  inferBatchesPerSecond: number;
}

/** Our rates run eagerly and as compiled graphs. */
interface OurRates {
  eager: Rates;
  graph: Rates;
}

function settingsFor(preset: BenchPreset, tower: Tower) {
  return {
    tower,
    image: vitPreset(preset),
    ecg: ecgPreset(preset),
    head: headPreset(preset),
    batch: BATCH,
    timing: TIMING[preset],
  };
}

function measureOurs(preset: BenchPreset, tower: Tower): OurRates {
  const settings = settingsFor(preset, tower);
  const timing = settings.timing;
  const head = new ProjectionHead(settings.head);
  let encoder: VisionTransformer | EcgEncoder;
  let input: tf.Tensor;
  if (tower === 'image') {
    const { imageSize, channels } = settings.image;
    encoder = new VisionTransformer(settings.image, { seed: 1 });
    input = tf.randomNormal([BATCH, imageSize, imageSize, channels]);
  } else {
    encoder = new EcgEncoder(settings.ecg, { seed: 2 });
    input = tf.randomNormal([BATCH, settings.ecg.leads, settings.ecg.samples]);
  }
  const run = (x: tf.Tensor, training: boolean): EncoderOutput =>
    encoder instanceof VisionTransformer
      ? encoder.forward(x as tf.Tensor4D, { training })
      : encoder.forward(x as tf.Tensor3D, { training });
  const targets = tf.randomNormal([BATCH, settings.head.outputDim]) as tf.Tensor2D;
  const variables = [...encoder.trainableVariables(), ...head.trainableVariables()];
  const optimizer = tf.train.adam(3e-5);

  const trainStep = (x: tf.Tensor, y: tf.Tensor): tf.Scalar[] => {
    const { value, grads } = tf.variableGrads(() => infoNce(head.apply(run(x, true).pooled, true), y as tf.Tensor2D, 0.02), variables);
    optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
    tf.dispose(Object.values(grads));
    return [value];
  };
  const inferStep = (x: tf.Tensor): tf.Tensor2D[] => [run(x, false).pooled];
  const compiledTrain = compileGraph(trainStep, { name: `${preset} ${tower} train step` });
  const compiledInfer = compileGraph(inferStep, { name: `${preset} ${tower} inference`, freezeVariables: true, splitBatch: true });
  // Reading the result back waits for the whole step on both paths.
  const wait = (tensors: tf.Tensor[]): void => {
    tensors[0].dataSync();
    tf.dispose(tensors);
  };

  // Inference runs first, on the initial weights, then training; each figure
  // alternates eager and graph rounds so that load changes reach both.
  wait(compiledInfer.call(input)); // traces; `callsPerSecond`'s warm-up call covers TensorFlow's first-run optimisation
  const inferEager: number[] = [];
  const inferGraph: number[] = [];
  for (let round = 0; round < INFERENCE_ROUNDS; round++) {
    inferEager.push(callsPerSecond(() => wait(inferStep(input)), timing.inferSeconds / INFERENCE_ROUNDS, timing.inferIterations));
    inferGraph.push(callsPerSecond(() => wait(compiledInfer.call(input)), timing.inferSeconds / INFERENCE_ROUNDS, timing.inferIterations));
  }
  const trainEager = callsPerSecond(() => wait(trainStep(input, targets)), timing.trainSeconds, timing.trainIterations);
  // The eager steps created Adam's slots, so this call traces.
  wait(compiledTrain.call(input, targets));
  const trainGraph = callsPerSecond(() => wait(compiledTrain.call(input, targets)), timing.trainSeconds, timing.trainIterations);
  const eager: Rates = { trainStepsPerSecond: trainEager, inferBatchesPerSecond: median(inferEager) };
  const graph: Rates = { trainStepsPerSecond: trainGraph, inferBatchesPerSecond: median(inferGraph) };
  compiledTrain.dispose();
  compiledInfer.dispose();
  optimizer.dispose();
  tf.dispose([input, targets]);
  encoder.dispose();
  head.dispose();
  return { eager, graph };
}

interface ReferenceRates {
  torch: string;
  /** Thread count behind each figure: the faster of torch's default and one thread. */
  threads: Record<string, number>;
  train_steps_per_second: number;
  infer_batches_per_second: number;
}

function measureReference(preset: BenchPreset, tower: Tower): ReferenceRates {
  const python = path.resolve(__dirname, '..', '.venv', 'bin', 'python');
  const script = path.join(__dirname, 'model.py');
  const result = spawnSync(python, [script, JSON.stringify(settingsFor(preset, tower))], { encoding: 'utf8', maxBuffer: 1 << 24 });
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

/** Returns the values of `--flag` (all choices when absent), rejecting any other value. */
function parseChoice<T extends string>(argv: string[], flag: string, choices: readonly T[]): T[] {
  const index = argv.indexOf(flag);
  if (index === -1) return [...choices];
  const value = argv[index + 1];
  if (!(choices as readonly string[]).includes(value)) {
    throw new Error(`Invalid ${flag} ${JSON.stringify(value)}: expected one of ${choices.join(', ')}`);
  }
  return [value as T];
}

async function main(): Promise<void> {
  const presets = parseChoice(process.argv.slice(2), '--preset', PRESETS);
  const towers = parseChoice(process.argv.slice(2), '--tower', TOWERS);
  const info = await initBackend();
  let header = false;
  for (const preset of presets) {
    for (const tower of towers) {
      const ours = measureOurs(preset, tower);
      const reference = measureReference(preset, tower);
      if (!header) {
        console.log(`# tfjs ${tf.version_core} ${info.name} (${info.device}) vs PyTorch ${reference.torch} CPU ` +
          '(each PyTorch figure is the faster of its default thread count and one thread)');
        header = true;
      }
      const name = tower === 'image' ? 'X-ray' : 'ECG';
      console.log(`# ${preset} ${name}: PyTorch threads ${JSON.stringify(reference.threads)}`);
      for (const mode of ['graph', 'eager'] as const) {
        console.log(line(`${preset} ${name} train step: encoder, head, InfoNCE, Adam (batch ${BATCH}, ${mode})`,
          ours[mode].trainStepsPerSecond * BATCH, reference.train_steps_per_second * BATCH));
        console.log(line(`${preset} ${name} encoder inference (batch ${BATCH}, ${mode})`,
          ours[mode].inferBatchesPerSecond * BATCH, reference.infer_batches_per_second * BATCH));
      }
    }
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
