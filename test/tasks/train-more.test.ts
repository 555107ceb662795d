import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { tf } from '../../src/backend';
import { MoreModel, type MoreBatch } from '../../src/model';
import { mapReferenceMoreKey } from '../../src/model/checkpoint';
import { TransformerTextEncoder, textPreset } from '../../src/model/text';
import { BatchSource, fit, moreBatchFromPipeline, moreTrainingModel, TokenizedTexts, TrainOptions } from '../../src/tasks/train';
import type { Batch } from '../../src/datasets/pipeline';
import { SyntheticPairs } from './synthetic-pairs';
import { buildReferenceTiny, FormulaPairs, PARITY } from './more-tiny';

const SAMPLES = 12;
const TOKENS = 8;

function buildModel(seed: number): MoreModel {
  const text = new TransformerTextEncoder(textPreset('tiny'), { seed });
  text.addLora({}, seed);
  return new MoreModel({ preset: 'tiny', image: { imageSize: 64 }, ecg: { samples: 100 } }, text, { seed });
}

/** Seeded synthetic pairs; samples 5 and 10 lack their ECG, so the masked loss path trains too. */
function syntheticPairs(): SyntheticPairs {
  return new SyntheticPairs({ samples: SAMPLES, tokens: TOKENS, imageSize: 64, seed: 1000, hasEcg: (index) => index !== 5 && index !== 10 });
}

/**
 * Weights whose gradient is zero in exact arithmetic. The softmax cancels a shift shared by all
 * keys, so attention key biases get none. The projection heads' BatchNorm subtracts the batch mean
 * in training, which cancels the biases of each encoder's last norm.
 */
const ZERO_GRADIENT_WEIGHTS = /attention\.self\.key\.bias$|vit_model\.norm\.bias$|encoder\.layer\.1\.output\.LayerNorm\.bias$/;

function summarise(values: Float32Array | Int32Array | Uint8Array): { sum: number; absSum: number } {
  let sum = 0;
  let absSum = 0;
  for (const value of values) {
    sum += value;
    absSum += Math.abs(value);
  }
  return { sum, absSum };
}

const OPTIONS: TrainOptions = {
  batchSize: 4, accumulationSteps: 2, lr: 1e-3, t0: 2, etaMin: 1e-4, seed: 3, checkpointEveryEpochs: 0, checkpointEverySteps: 1,
};

describe('tasks/train with MoreModel', () => {
  it('matches PyTorch on the tiny reference model', async () => {
    const model = buildReferenceTiny();
    const { settings } = PARITY;
    const losses: number[] = [];
    const snapshots: Record<string, Map<string, Float32Array>> = {};
    await fit(moreTrainingModel(model), { train: new FormulaPairs() }, {
      batchSize: settings.batchSize, accumulationSteps: settings.accumulationSteps, maxEpochs: settings.epochs,
      lr: settings.lr, eps: settings.eps, weightDecay: settings.weightDecay, t0: settings.t0, etaMin: settings.etaMin,
      shuffle: false, checkpointEveryEpochs: 0,
      onBatchEnd: (record) => {
        losses.push(record.loss);
        const key = String(record.optimizerSteps);
        if (key in PARITY.snapshots && snapshots[key] === undefined) {
          snapshots[key] = new Map([...model.namedWeights()].map(([name, variable]) => [name, variable.dataSync() as Float32Array]));
        }
      },
    });

    assert.strictEqual(losses.length, PARITY.losses.length);
    losses.forEach((loss, i) => assert.ok(Math.abs(loss - PARITY.losses[i]) <= 1e-4, `batch ${i} loss ${loss} vs torch ${PARITY.losses[i]}`));
    for (const [step, expected] of Object.entries(PARITY.snapshots)) {
      let compared = 0;
      for (const [torchName, summary] of Object.entries(expected)) {
        const name = mapReferenceMoreKey(torchName);
        if (name === null) continue;
        const values = snapshots[step].get(name);
        assert.ok(values !== undefined, `step ${step}: ${name} (torch ${torchName}) not in the model`);
        assert.strictEqual(values.length, summary.size, `step ${step}: ${name} size`);
        // Weights whose exact gradient is zero get float32 noise as gradient, and Adam moves each of them
        // by up to lr per step in the noise's direction, which differs between frameworks.
        const noiseOnly = ZERO_GRADIENT_WEIGHTS.test(name);
        const tolerance = noiseOnly ? 2 * settings.lr * Number(step) : 1e-4;
        summary.head.forEach((value, i) => {
          assert.ok(Math.abs(values[i] - value) <= tolerance, `step ${step}: ${name}[${i}] ${values[i]} vs torch ${value}`);
        });
        // Sums of many float32 values: allow rounding drift that grows with the square root of the size.
        const { sum, absSum } = summarise(values);
        const sumTolerance = noiseOnly ? tolerance * summary.size : 1e-4 * Math.sqrt(summary.size) + 1e-4;
        assert.ok(Math.abs(sum - summary.sum) <= sumTolerance, `step ${step}: ${name} sum ${sum} vs torch ${summary.sum}`);
        assert.ok(Math.abs(absSum - summary.absSum) <= sumTolerance, `step ${step}: ${name} abs sum ${absSum} vs torch ${summary.absSum}`);
        compared += 1;
      }
      assert.ok(compared > 100, `step ${step}: compared ${compared} tensors`);
    }
    model.dispose();
  });

  it('resumes tiny MoRE training exactly', async () => {
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'more-ts-train-more-'));
    const data = { train: syntheticPairs() };
    try {
      const straight = buildModel(1);
      // Weight initialisation is not seeded, so the second copy takes the first one's weights.
      const first = buildModel(1);
      first.loadNamedWeights(new Map([...straight.namedWeights()].map(([name, variable]) => [name, variable as tf.Tensor])));
      const straightLosses: number[] = [];
      await fit(moreTrainingModel(straight), data, { ...OPTIONS, maxEpochs: 2, onBatchEnd: (r) => straightLosses.push(r.loss) });

      const firstLosses: number[] = [];
      await fit(moreTrainingModel(first), data, { ...OPTIONS, runDir, maxEpochs: 1, onBatchEnd: (r) => firstLosses.push(r.loss) });
      first.dispose();
      // Other initial weights and generator seeds: everything must come from the checkpoint.
      const resumed = buildModel(2);
      const laterLosses: number[] = [];
      await fit(moreTrainingModel(resumed), data, { ...OPTIONS, runDir, maxEpochs: 2, onBatchEnd: (r) => laterLosses.push(r.loss) });

      const losses = [...firstLosses, ...laterLosses];
      assert.strictEqual(losses.length, straightLosses.length);
      losses.forEach((loss, i) => assert.ok(Math.abs(loss - straightLosses[i]) <= 1e-6, `batch ${i}: ${loss} vs ${straightLosses[i]}`));
      assert.ok(new Set(straightLosses).size > 1, 'the loss changes while training');
      const expected = straight.namedWeights();
      for (const [name, variable] of resumed.namedWeights()) {
        const difference = tf.tidy(() => tf.max(tf.abs(tf.sub(variable, expected.get(name) as tf.Variable))).dataSync()[0]);
        assert.ok(difference <= 1e-6, `${name} differs by ${difference}`);
      }
      straight.dispose();
      resumed.dispose();
    } finally {
      fs.rmSync(runDir, { recursive: true, force: true });
    }
  });

  it('keeps the tensor count flat', async () => {
    const model = buildModel(4);
    const data = { train: syntheticPairs(), validation: syntheticPairs() };
    const before = tf.memory().numTensors;
    const counts: number[] = [];
    await fit(moreTrainingModel(model), data, { ...OPTIONS, checkpointEverySteps: 0, maxEpochs: 4, onEpochEnd: () => counts.push(tf.memory().numTensors) });
    assert.deepStrictEqual(counts, counts.map(() => counts[0]), `tensor count per epoch ${counts}`);
    assert.strictEqual(tf.memory().numTensors, before, 'tensors left after training');
    model.dispose();
  });

  it('builds model batches from pipeline batches', () => {
    const B = 4;
    const xray = new Float32Array(B * 64 * 64 * 3).map((_, i) => Math.sin(i));
    const ecg = new Float32Array(B * 12 * 100).map((_, i) => Math.cos(i));
    const pipelineBatch: Batch = {
      ids: ['a', 'b', 'c', 'd'], texts: ['one', 'two words', 'three more words', 'four'],
      xray, xrayShape: [B, 64, 64, 3], xrayMask: Uint8Array.of(1, 1, 0, 1),
      ecg, ecgShape: [B, 12, 100], ecgMask: Uint8Array.of(1, 1, 1, 1),
    };
    // Word-level ids padded to the longest text: <s> (0), words, </s> (2), padding (1).
    const tokenize = (texts: string[]): TokenizedTexts => {
      const rows = texts.map((text) => [0, ...text.split(' ').map((word) => 3 + word.length), 2]);
      const length = Math.max(...rows.map((row) => row.length));
      const inputIds = new Int32Array(texts.length * length).fill(1);
      const attentionMask = new Int32Array(texts.length * length);
      rows.forEach((row, i) => row.forEach((id, t) => { inputIds[i * length + t] = id; attentionMask[i * length + t] = 1; }));
      return { inputIds, attentionMask, batchSize: texts.length, sequenceLength: length };
    };
    const before = tf.memory().numTensors;
    const batch = moreBatchFromPipeline(pipelineBatch, tokenize);
    assert.deepStrictEqual(batch.images?.shape, [4, 64, 64, 3]);
    assert.deepStrictEqual(batch.ecgs?.shape, [4, 12, 100]);
    assert.deepStrictEqual(batch.inputIds.shape, [4, 5]);
    assert.deepStrictEqual(batch.imagePresent, [true, true, false, true]);
    assert.deepStrictEqual(Array.from(batch.attentionMask.dataSync().slice(0, 5)), [1, 1, 1, 0, 0]);
    assert.strictEqual(batch.images!.dataSync()[5], xray[5]);

    const model = buildModel(9);
    const loss = moreTrainingModel(model).batchLoss(batch, { training: false, seed: 0 });
    assert.ok(Number.isFinite(loss.dataSync()[0]), 'finite loss');
    loss.dispose();
    model.dispose();
    tf.dispose(batch as unknown as tf.TensorContainer);
    assert.strictEqual(tf.memory().numTensors, before, 'tensors leaked');

    const withoutEcg = moreBatchFromPipeline({ ...pipelineBatch, ecgMask: new Uint8Array(B) }, tokenize);
    assert.strictEqual(withoutEcg.ecgs, undefined, 'an ECG no sample has is left out');
    tf.dispose(withoutEcg as unknown as tf.TensorContainer);
    assert.throws(() => moreBatchFromPipeline({ ...pipelineBatch, ids: ['a'] }, tokenize), /for a batch of 1; expected 1 rows/);
  });
});
