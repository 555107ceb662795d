/**
 * Report encoder benchmark: our RoBERTa with the MoRE LoRA settings against
 * transformers + peft (bench/text.py), in the same run on the same machine.
 *
 * It measures the `tiny` and `roberta-base` architectures (random weights) at
 * batch 8 x 128 tokens, half of the rows padded to 64, in samples per second.
 * Inference is eval mode with masked-mean pooling. A training step is train
 * mode with dropout, backward through the adapters and biases, and an AdamW
 * update. Our figures are measured as compiled graphs (`compileGraph`, one
 * TensorFlow session run per call) and eagerly, one operation at a time.
 * Each line ends in `ratio=X`, ours over PyTorch's.
 * Run with `npm run bench:text`; `--preset tiny` runs one architecture.
 */
import { spawnSync } from 'child_process';
import * as path from 'path';

import { initBackend, tf } from '../src/backend';
import { compileGraph } from '../src/backend/graph';
import { callsPerSecond, INFERENCE_ROUNDS, median } from './timing';
import { REFERENCE_LORA, TransformerTextEncoder, type TextEncoderConfig, textPreset, toHuggingFaceConfig } from '../src/model';
import { AdamW } from '../src/tasks/optim';

const BATCH = 8;
const LENGTH = 128;
const PRESETS = ['tiny', 'roberta-base'] as const;
type BenchPreset = (typeof PRESETS)[number];

interface Timing {
  trainSeconds: number;
  trainIterations: number;
  inferSeconds: number;
  inferIterations: number;
}

// A roberta-base training step takes seconds on two cores, so few iterations are timed.
const TIMING: Record<BenchPreset, Timing> = {
  tiny: { trainSeconds: 5, trainIterations: 5, inferSeconds: 5, inferIterations: 5 },
  'roberta-base': { trainSeconds: 0, trainIterations: 3, inferSeconds: 0, inferIterations: 3 },
};

interface Rates {
  inferBatchesPerSecond: number;
  trainStepsPerSecond: number;
}

/** Our rates run eagerly and as compiled graphs. */
interface OurRates {
  eager: Rates;
  graph: Rates;
}

function settingsFor(preset: BenchPreset): { config: TextEncoderConfig; timing: Timing } {
  return { config: textPreset(preset), timing: TIMING[preset] };
}

/** Builds a [B, T] batch where rows B/2.. have their second half padded. */
function batchFor(config: TextEncoderConfig): { ids: tf.Tensor2D; mask: tf.Tensor2D } {
  const ids = new Int32Array(BATCH * LENGTH);
  const mask = new Int32Array(BATCH * LENGTH);
  for (let row = 0; row < BATCH; row++) {
    for (let column = 0; column < LENGTH; column++) {
      const padded = row >= BATCH / 2 && column >= LENGTH / 2;
      ids[row * LENGTH + column] = padded ? config.padTokenId : 3 + ((row * 131 + column * 17) % (config.vocabSize - 3));
      mask[row * LENGTH + column] = padded ? 0 : 1;
    }
  }
  return { ids: tf.tensor2d(ids, [BATCH, LENGTH], 'int32'), mask: tf.tensor2d(mask, [BATCH, LENGTH], 'int32') };
}

function measureOurs(preset: BenchPreset): OurRates {
  const { config, timing } = settingsFor(preset);
  const encoder = new TransformerTextEncoder(config, { seed: 1 });
  encoder.addLora();
  const { ids, mask } = batchFor(config);
  const weights = tf.randomNormal([BATCH, config.hiddenSize]);
  const variables = encoder.trainableVariables();
  // Keyed by tfjs variable names, which are the keys tf.variableGrads returns.
  const optimizer = new AdamW(variables.map((variable) => ({ name: variable.name, variable })), { lr: 3e-5, weightDecay: 0.1 });

  const infer = (i: tf.Tensor, m: tf.Tensor): tf.Tensor[] => [encoder.forward(i as tf.Tensor2D, m as tf.Tensor2D).pooled];
  const trainStep = (i: tf.Tensor, m: tf.Tensor): tf.Tensor[] => {
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.mul(encoder.forward(i as tf.Tensor2D, m as tf.Tensor2D, { training: true }).pooled, weights)) as tf.Scalar,
      variables,
    );
    optimizer.step(grads);
    tf.dispose(Object.values(grads));
    return [value];
  };
  const compiledInfer = compileGraph(infer, { name: `${preset} text inference`, freezeVariables: true, splitBatch: true });
  const compiledTrain = compileGraph(trainStep, { name: `${preset} text train step` });
  // Reading the result back waits for the whole call on both paths.
  const wait = (tensors: tf.Tensor[]): void => {
    tensors[0].dataSync();
    tf.dispose(tensors);
  };

  // Inference runs first, on the initial weights, in alternating eager and graph
  // rounds so that load changes reach both; training follows.
  wait(compiledInfer.call(ids, mask)); // traces; `callsPerSecond`'s warm-up call covers TensorFlow's first-run optimisation
  const inferEager: number[] = [];
  const inferGraph: number[] = [];
  for (let round = 0; round < INFERENCE_ROUNDS; round++) {
    inferEager.push(callsPerSecond(() => wait(infer(ids, mask)), timing.inferSeconds / INFERENCE_ROUNDS, timing.inferIterations));
    inferGraph.push(callsPerSecond(() => wait(compiledInfer.call(ids, mask)), timing.inferSeconds / INFERENCE_ROUNDS, timing.inferIterations));
  }
  const trainEager = callsPerSecond(() => wait(trainStep(ids, mask)), timing.trainSeconds, timing.trainIterations);
  wait(compiledTrain.call(ids, mask)); // traces
  const trainGraph = callsPerSecond(() => wait(compiledTrain.call(ids, mask)), timing.trainSeconds, timing.trainIterations);
  const eager: Rates = { inferBatchesPerSecond: median(inferEager), trainStepsPerSecond: trainEager };
  const graph: Rates = { inferBatchesPerSecond: median(inferGraph), trainStepsPerSecond: trainGraph };
  compiledInfer.dispose();
  compiledTrain.dispose();
  optimizer.dispose();
  tf.dispose([ids, mask, weights]);
  encoder.dispose();
  return { eager, graph };
}

interface ReferenceRates extends Rates {
  threads: number;
}

function measureReference(preset: BenchPreset): ReferenceRates {
  const { config, timing } = settingsFor(preset);
  const settings = {
    config: { ...toHuggingFaceConfig(config), bos_token_id: 0, eos_token_id: 2 },
    lora: REFERENCE_LORA,
    batch: BATCH,
    length: LENGTH,
    timing,
  };
  delete (settings.config as Record<string, unknown>).architectures;
  delete (settings.config as Record<string, unknown>).model_type;
  const python = path.resolve(__dirname, '..', '.venv', 'bin', 'python');
  const script = path.join(__dirname, 'text.py');
  const result = spawnSync(python, [script, JSON.stringify(settings)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (result.status !== 0) {
    throw new Error(
      `bench/text.py failed (exit ${result.status}): ${result.stderr.trim()}\n` +
        'Install the reference tools with `node scripts/setup/python-env.js --reference`.',
    );
  }
  return JSON.parse(result.stdout.trim().split('\n').pop() as string) as ReferenceRates;
}

function line(label: string, ours: number, reference: number): string {
  return `${label}: ours=${ours.toFixed(2)} samples/s reference=${reference.toFixed(2)} samples/s ratio=${(ours / reference).toFixed(3)}`;
}

function parsePresets(argv: string[]): BenchPreset[] {
  const index = argv.indexOf('--preset');
  if (index === -1) return [...PRESETS];
  const value = argv[index + 1];
  if (!(PRESETS as readonly string[]).includes(value)) {
    throw new Error(`Invalid --preset ${JSON.stringify(value)}: expected one of ${PRESETS.join(', ')}`);
  }
  return [value as BenchPreset];
}

async function main(): Promise<void> {
  const presets = parsePresets(process.argv.slice(2));
  const info = await initBackend();
  console.log(`# tfjs ${tf.version_core} ${info.name} (${info.device}) vs transformers + peft on PyTorch CPU ` +
    '(each PyTorch figure is the faster of its default thread count and one thread)');
  for (const preset of presets) {
    const ours = measureOurs(preset);
    const reference = measureReference(preset);
    const shape = `batch ${BATCH} x ${LENGTH} tokens`;
    for (const mode of ['graph', 'eager'] as const) {
      console.log(line(`${preset} text encoder inference, masked mean (${shape}, ${mode})`,
        ours[mode].inferBatchesPerSecond * BATCH, reference.inferBatchesPerSecond * BATCH));
      console.log(line(`${preset} text train step, LoRA r16 + biases, AdamW (${shape}, ${mode})`,
        ours[mode].trainStepsPerSecond * BATCH, reference.trainStepsPerSecond * BATCH));
    }
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
