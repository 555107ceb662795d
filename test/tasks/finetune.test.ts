import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { tf } from '../../src/backend';
import { EcgEncoder, ecgPreset, ProjectionHead, VisionTransformer, vitPreset, type EcgConfig, type VitConfig } from '../../src/model';
import { readSafetensors, type DecodedTensor } from '../../src/model/safetensors';
import {
  encodeForFineTuning, evaluateFineTune, FineTuneArraySource, FineTuneModel, trainFineTune,
  type FineTuneBatch, type FineTuneSplit,
} from '../../src/tasks/finetune';
import type { ProbeBranch, ProbeKind } from '../../src/tasks/probe';
import type { TrainOptions } from '../../src/tasks/train';
import { Rng } from '../../src/util/rng';

interface FineTuneCase {
  name: string;
  branches: ProbeBranch[];
  kind: ProbeKind;
  classes: number;
  losses: number[];
  trainable: string[];
  trainableParameters: number;
}

interface FineTuneFixture {
  settings: {
    trunk: { width: number; depth: number; heads: number; mlpDim: number };
    image: { imageSize: number; patchSize: number; channels: number };
    ecg: { leads: number; samples: number; convChannels: number; conv1Kernel: number; conv1Stride: number; conv2Kernel: number };
    head: { hiddenDim: number; outputDim: number };
    trainableBlocks: number; batch: number; steps: number; snapshotSteps: number[]; lr: number; weightDecay: number; t0: number;
  };
  cases: FineTuneCase[];
}

// Produced by reference/train_finetune.py (timm ViT encoders, PyTorch heads, AdamW, CosineAnnealingWarmRestarts).
const FIXTURE_DIR = path.join(__dirname, '../fixtures/tasks/finetune');
const fixture = JSON.parse(fs.readFileSync(path.join(FIXTURE_DIR, 'finetune.json'), 'utf8')) as FineTuneFixture;
const tensors = readSafetensors(path.join(FIXTURE_DIR, 'finetune.safetensors')).tensors;
const { settings } = fixture;

const VIT: VitConfig = { ...vitPreset('tiny'), ...settings.trunk, ...settings.image, dropKeyRate: 0 };
const ECG: EcgConfig = { ...ecgPreset('tiny'), ...settings.trunk, ...settings.ecg, dropKeyRate: 0 };
const PREFIXES: Record<ProbeBranch, string> = { image: 'xray_model.vit_model.', ecg: 'ecg_model.vit_model.' };

function fixtureTensor(name: string): DecodedTensor {
  const found = tensors.get(name);
  if (found === undefined) throw new Error(`fixture tensor "${name}" is missing`);
  return found;
}

function fixtureInput(name: 'images' | 'ecgs'): tf.Tensor {
  const { data, shape } = fixtureTensor(name);
  return tf.tensor(data, shape);
}

/** Every fixture tensor under `prefix.`, with the prefix removed. */
function fixtureGroup(prefix: string): Map<string, tf.Tensor> {
  const group = new Map<string, tf.Tensor>();
  for (const [name, { shape, data }] of tensors) {
    if (name.startsWith(`${prefix}.`)) group.set(name.slice(prefix.length + 1), tf.tensor(data, shape));
  }
  return group;
}

function loadInto(target: { loadNamedWeights(weights: Map<string, tf.Tensor>): unknown }, prefix: string): void {
  const weights = fixtureGroup(prefix);
  target.loadNamedWeights(weights);
  tf.dispose([...weights.values()]);
}

/** Encoders with the fixture's pre-trained weights; `dropKeyRate` overrides the fixture's 0. */
function buildEncoders(dropKeyRate = 0): { image: VisionTransformer; ecg: EcgEncoder } {
  const image = new VisionTransformer({ ...VIT, dropKeyRate });
  const ecg = new EcgEncoder({ ...ECG, dropKeyRate });
  loadInto(image, 'xray');
  loadInto(ecg, 'ecg');
  return { image, ecg };
}

function buildProjectors(): Record<ProbeBranch, ProjectionHead> {
  const config = { kind: 'nonlinear' as const, inputDim: settings.trunk.width, ...settings.head };
  return { image: new ProjectionHead(config), ecg: new ProjectionHead(config) };
}

function buildModel(
  fineTuneCase: FineTuneCase, encoders: { image: VisionTransformer; ecg: EcgEncoder },
  extra: { dropout?: number; ecgDropProbability?: number } = {},
): FineTuneModel {
  const projectors = buildProjectors();
  const model = new FineTuneModel({
    kind: fineTuneCase.kind, classes: fineTuneCase.classes, branches: fineTuneCase.branches,
    trainableBlocks: settings.trainableBlocks, dropout: 0, ecgDropProbability: 0, ...extra,
  }, encoders, projectors);
  Object.values(projectors).forEach((projector) => projector.dispose());
  loadInto(model.head, `${fineTuneCase.name}.head`);
  return model;
}

function fixtureSplit(fineTuneCase: FineTuneCase): FineTuneSplit {
  const targets = fixtureTensor(`${fineTuneCase.name}.targets`);
  const rows = targets.shape[0];
  return {
    inputs: { image: fixtureTensor('images').data, ecg: fixtureTensor('ecgs').data },
    shapes: { image: fixtureTensor('images').shape.slice(1), ecg: fixtureTensor('ecgs').shape.slice(1) },
    targets: fineTuneCase.kind === 'multilabel'
      ? Array.from({ length: rows }, (_, i) => Array.from(targets.data.subarray(i * fineTuneCase.classes, (i + 1) * fineTuneCase.classes)))
      : Array.from(targets.data),
  };
}

function snapshot(weights: Map<string, tf.Variable>): Map<string, Float32Array> {
  return new Map([...weights].map(([name, variable]) => [name, Float32Array.from(variable.dataSync() as Float32Array)]));
}

function maxDifference(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < expected.length; i++) max = Math.max(max, Math.abs(actual[i] - expected[i]));
  return max;
}

function assertBitwiseEqual(actual: Float32Array, expected: Float32Array, label: string): void {
  assert.strictEqual(actual.length, expected.length, `${label}: length`);
  const changed = actual.findIndex((value, i) => !Object.is(value, expected[i]));
  assert.strictEqual(changed, -1, `${label} changed at index ${changed}: ${actual[changed]} vs ${expected[changed]}`);
}

const PARITY_OPTIONS: TrainOptions = {
  lr: settings.lr, weightDecay: settings.weightDecay, t0: settings.t0, maxEpochs: settings.steps, batchSize: settings.batch,
  shuffle: false, restoreBest: false, patience: 100,
};

/** Seeded random inputs of `n` samples for both branches, with 4-class targets. */
function randomSplit(n: number, seed: number): FineTuneSplit {
  const rng = new Rng(seed);
  const imageShape = [VIT.imageSize, VIT.imageSize, VIT.channels];
  const ecgShape = [ECG.leads, ECG.samples];
  return {
    inputs: {
      image: Float32Array.from({ length: n * imageShape[0] * imageShape[1] * imageShape[2] }, () => rng.normal()),
      ecg: Float32Array.from({ length: n * ecgShape[0] * ecgShape[1] }, () => rng.normal()),
    },
    shapes: { image: imageShape, ecg: ecgShape },
    targets: Array.from({ length: n }, () => rng.int(4)),
  };
}

describe('tasks/finetune', () => {
  for (const fineTuneCase of fixture.cases) {
    it(`${fineTuneCase.name} matches PyTorch after 1 and 3 steps`, async () => {
      const before = tf.memory().numTensors;
      const encoders = buildEncoders();
      const used = fineTuneCase.branches.map((branch) => [branch, encoders[branch]] as const);
      const pretrained = new Map(used.map(([branch, encoder]) => [branch, snapshot(encoder.namedWeights())]));
      const model = buildModel(fineTuneCase, encoders);

      assert.deepStrictEqual(
        [...model.namedWeights()].filter(([, v]) => model.trainableVariables().includes(v)).map(([name]) => name).sort(),
        [...fineTuneCase.trainable].sort(),
        'trainable weights');
      assert.strictEqual(model.parameterCount(), fineTuneCase.trainableParameters, 'trainable parameters, as torch counts them');

      const losses: number[] = [];
      const tensorCounts: number[] = [];
      const steps = new Map<number, Map<string, Float32Array>>();
      const source = new FineTuneArraySource(fixtureSplit(fineTuneCase), fineTuneCase.kind);
      await trainFineTune(model, { train: source }, {
        ...PARITY_OPTIONS,
        onBatchEnd: (record) => {
          losses.push(record.loss);
          tensorCounts.push(tf.memory().numTensors);
          if (settings.snapshotSteps.includes(record.optimizerSteps)) steps.set(record.optimizerSteps, snapshot(model.namedWeights()));
        },
      });

      assert.strictEqual(losses.length, fineTuneCase.losses.length);
      assert.deepStrictEqual(tensorCounts, tensorCounts.map(() => tensorCounts[0]), 'tensor count after each step');
      losses.forEach((loss, i) => assert.ok(Math.abs(loss - fineTuneCase.losses[i]) <= 1e-4, `step ${i + 1} loss ${loss} vs ${fineTuneCase.losses[i]}`));
      for (const step of settings.snapshotSteps) {
        const weights = steps.get(step) as Map<string, Float32Array>;
        for (const name of fineTuneCase.trainable) {
          const expected = fixtureTensor(`${fineTuneCase.name}.step${step}.${name}`).data;
          const difference = maxDifference(weights.get(name) as Float32Array, expected);
          assert.ok(difference <= 1e-4, `${name} after step ${step}: max difference ${difference}`);
        }
      }

      // The parameters moved well beyond the tolerance, so matching them is a real check.
      for (const [branch, encoder] of used) {
        const qkv = `blocks.${settings.trunk.depth - 1}.attn.qkv.weight`;
        const moved = maxDifference(fixtureTensor(`${fineTuneCase.name}.step3.${PREFIXES[branch]}${qkv}`).data, pretrained.get(branch)?.get(qkv) as Float32Array);
        assert.ok(moved > 1e-2, `${branch} ${qkv} moved by ${moved} only`);
        // Every encoder weight and buffer outside the trained qkv weights is bit-for-bit unchanged.
        const trained = new Set(fineTuneCase.trainable.filter((name) => name.startsWith(PREFIXES[branch])).map((name) => name.slice(PREFIXES[branch].length)));
        for (const [name, values] of snapshot(encoder.namedWeights())) {
          if (!trained.has(name)) assertBitwiseEqual(values, pretrained.get(branch)?.get(name) as Float32Array, `${branch} ${name}`);
        }
      }

      const evaluation = await evaluateFineTune(model, source);
      const expectedProbabilities = fixtureTensor(`${fineTuneCase.name}.probabilities`).data;
      const difference = maxDifference(evaluation.probabilities.flat(), expectedProbabilities);
      assert.ok(difference <= 1e-4, `evaluation probabilities: max difference ${difference}`);

      model.dispose();
      for (const [branch, encoder] of used) {
        for (const [name, values] of snapshot(encoder.namedWeights())) {
          assertBitwiseEqual(values, pretrained.get(branch)?.get(name) as Float32Array, `${branch} ${name} after dispose`);
        }
      }
      encoders.image.dispose();
      encoders.ecg.dispose();
      assert.strictEqual(tf.memory().numTensors, before, 'tensors leaked');
    });
  }

  it('encodes as the encoder forward does', () => {
    const encoders = buildEncoders(0.3);
    const images = fixtureInput('images') as tf.Tensor4D;
    const ecgs = fixtureInput('ecgs') as tf.Tensor3D;
    for (const [branch, encoder, input] of [['image', encoders.image, images], ['ecg', encoders.ecg, ecgs]] as const) {
      for (const first of [0, 1, settings.trunk.depth]) {
        const evaluation = tf.tidy(() => {
          const ours = encodeForFineTuning(encoder, input, first, false, 0);
          const theirs = (encoder as VisionTransformer).forward(input as tf.Tensor4D).pooled;
          return tf.max(tf.abs(tf.sub(ours, theirs))).dataSync()[0];
        });
        assert.strictEqual(evaluation, 0, `${branch}, first trainable block ${first}, evaluation mode`);
      }
    }
    // With DropKey on, seed s draws the masks that an encoder whose generator starts at Rng(s) draws.
    const seed = 77;
    const training = tf.tidy(() => {
      const ours = encodeForFineTuning(encoders.image, images, 1, true, seed);
      encoders.image.rng.setState(new Rng(seed).getState());
      const masked = encoders.image.forward(images, { training: true }).pooled;
      const unmasked = encoders.image.forward(images).pooled;
      return [tf.max(tf.abs(tf.sub(ours, masked))).dataSync()[0], tf.max(tf.abs(tf.sub(ours, unmasked))).dataSync()[0]];
    });
    assert.strictEqual(training[0], 0, 'DropKey masks as the encoder draws them');
    assert.ok(training[1] > 1e-3, 'DropKey changed the output');
    tf.dispose([images, ecgs]);
    encoders.image.dispose();
    encoders.ecg.dispose();
  });

  it('qkv gradients equal full-tape gradients', () => {
    const encoders = buildEncoders();
    const images = fixtureInput('images') as tf.Tensor4D;
    const probe = tf.randomNormal([images.shape[0], settings.trunk.width], 0, 1, 'float32', 5);
    const qkv = encoders.image.blocks.slice(1).map((block) => block.attn.qkv.weight as tf.Variable);
    const objective = (pooled: () => tf.Tensor2D) => () => tf.sum(tf.mul(pooled(), probe)) as tf.Scalar;
    const ours = tf.variableGrads(objective(() => encodeForFineTuning(encoders.image, images, 1, false, 0)), qkv);
    const full = tf.variableGrads(objective(() => encoders.image.forward(images).pooled), qkv);
    for (const variable of qkv) {
      const difference = tf.tidy(() => tf.max(tf.abs(tf.sub(ours.grads[variable.name], full.grads[variable.name]))).dataSync()[0]);
      const scale = tf.tidy(() => tf.max(tf.abs(full.grads[variable.name])).dataSync()[0]);
      assert.ok(scale > 1e-3, `gradient of ${variable.name} is ${scale}, too small to compare`);
      assert.ok(difference <= 1e-6 * Math.max(1, scale), `gradient of ${variable.name}: max difference ${difference}`);
    }
    tf.dispose([images, probe, ours.value, full.value, ...Object.values(ours.grads), ...Object.values(full.grads)]);
    encoders.image.dispose();
    encoders.ecg.dispose();
  });

  it('zeroes the ECG branch at the given rate', () => {
    const fineTuneCase = fixture.cases.find((c) => c.branches.length === 2) as FineTuneCase;
    const encoders = buildEncoders();
    const model = buildModel(fineTuneCase, encoders, { ecgDropProbability: 0.3 });
    const n = 300;
    const source = new FineTuneArraySource(randomSplit(n, 11), 'multiclass');
    const batch = source.loadBatch(Array.from({ length: n }, (_, i) => i));
    const otherEcgs: FineTuneBatch = { ...batch, ecgs: tf.mul(batch.ecgs as tf.Tensor3D, -2) as tf.Tensor3D };
    // Rows whose ECG branch was zeroed give the same logits whatever their ECG is.
    const dropped = (seed: number): boolean[] => tf.tidy(() => {
      const first = model.logits(batch, { training: true, seed });
      const second = model.logits(otherEcgs, { training: true, seed });
      return Array.from(tf.sub(first, second).abs().max(1).less(1e-6).dataSync()).map((value) => value === 1);
    });
    const mask = dropped(5);
    const rate = mask.filter(Boolean).length / n;
    assert.ok(rate > 0.22, `dropped fraction ${rate}, expected about 0.3`);
    assert.ok(rate < 0.38, `dropped fraction ${rate}, expected about 0.3`);
    assert.deepStrictEqual(dropped(5), mask, 'same seed, same mask');
    assert.notDeepStrictEqual(dropped(6), mask, 'another seed, another mask');
    const evaluation = tf.tidy(() => tf.sub(model.logits(batch, { training: false, seed: 5 }), model.logits(otherEcgs, { training: false, seed: 5 }))
      .abs().max(1).less(1e-6).sum().dataSync()[0]);
    assert.strictEqual(evaluation, 0, 'evaluation keeps every ECG branch');
    tf.dispose([batch as unknown as tf.TensorContainer, otherEcgs.ecgs as tf.Tensor]);
    model.dispose();
    encoders.image.dispose();
    encoders.ecg.dispose();
  });

  it('resumes from a checkpoint exactly', async () => {
    const fineTuneCase = fixture.cases.find((c) => c.branches.length === 2) as FineTuneCase;
    const train = randomSplit(10, 21);
    const validation = randomSplit(6, 22);
    const options: TrainOptions = { lr: 1e-3, batchSize: 4, maxEpochs: 3, seed: 9, checkpointEveryEpochs: 1 };
    const before = tf.memory().numTensors;
    const run = async (runDir: string, maxEpochs: number): Promise<{ losses: number[]; weights: Map<string, Float32Array>; best: number | null }> => {
      // A fresh model on freshly loaded encoders, as in a new process.
      const encoders = buildEncoders(0.3);
      const model = buildModel(fineTuneCase, encoders, { dropout: 0.2, ecgDropProbability: 0.3 });
      const losses: number[] = [];
      try {
        const result = await trainFineTune(model, {
          train: new FineTuneArraySource(train, 'multiclass'), validation: new FineTuneArraySource(validation, 'multiclass'),
        }, { ...options, runDir, maxEpochs, onBatchEnd: (record) => losses.push(record.loss) });
        return { losses, weights: snapshot(model.namedWeights()), best: result.bestValidationLoss };
      } finally {
        model.dispose();
        encoders.image.dispose();
        encoders.ecg.dispose();
      }
    };
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'finetune-resume-'));
    try {
      const whole = await run(path.join(root, 'whole'), 3);
      const first = await run(path.join(root, 'split'), 1);
      const rest = await run(path.join(root, 'split'), 3);
      assert.strictEqual(whole.losses.length, 9, '3 epochs of 3 batches (the last batch of 2 kept)');
      assert.deepStrictEqual([...first.losses, ...rest.losses], whole.losses, 'losses of the resumed run');
      assert.strictEqual(rest.best, whole.best, 'best validation loss');
      for (const [name, values] of whole.weights) assertBitwiseEqual(rest.weights.get(name) as Float32Array, values, name);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
    assert.strictEqual(tf.memory().numTensors, before, 'tensors leaked over three runs');
  });

  it('rejects invalid set-ups', () => {
    const encoders = buildEncoders();
    const projectors = buildProjectors();
    const build = (trainableBlocks: number, branches: ProbeBranch[] = ['image'], encoderSubset: Partial<typeof encoders> = encoders) =>
      new FineTuneModel({ kind: 'multilabel', classes: 2, branches, trainableBlocks }, encoderSubset, projectors);
    assert.throws(() => build(settings.trunk.depth + 1), /Invalid trainableBlocks 5: expected an integer in \[0, 4\]/);
    assert.throws(() => build(3, ['ecg'], { image: encoders.image }), /No encoder given for the ecg branch/);

    const first = build(3);
    assert.throws(() => build(2), /already attached to a fine-tuning model/);
    const images = tf.zeros([2, 16, 16, 3]) as tf.Tensor4D;
    const targets = tf.zeros([2, 2]);
    assert.throws(() => first.batchLoss({ images, targets }, { training: true, seed: 0 }), /expected NHWC images \[B, 32, 32, 3\], got \[2, 16, 16, 3\]/);
    assert.throws(() => first.batchLoss({ targets }, { training: true, seed: 0 }), /batch has no images/);
    first.dispose();
    assert.throws(() => first.probabilities({ images, targets }), /was disposed/);
    const second = build(settings.trunk.depth);
    assert.strictEqual(second.trainableVariables().length, settings.trunk.depth + 8, 'every qkv weight, 6 projector and 2 classifier weights');
    second.dispose();
    const frozen = build(0);
    assert.strictEqual(frozen.trainableVariables().length, 8, 'the head alone');
    frozen.dispose();

    tf.dispose([images, targets]);
    Object.values(projectors).forEach((projector) => projector.dispose());
    encoders.image.dispose();
    encoders.ecg.dispose();
  });
});
