import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { tf } from '../../src/backend';
import { MoreModel, type MoreBatch } from '../../src/model';
import { TransformerTextEncoder, textPreset } from '../../src/model/text';
import { BatchSource, fit, moreTrainingModel, TrainOptions } from '../../src/tasks/train';
import { Rng } from '../../src/util/rng';

const SAMPLES = 12;
const TOKENS = 8;

function buildModel(seed: number): MoreModel {
  const text = new TransformerTextEncoder(textPreset('tiny'), { seed });
  text.addLora({}, seed);
  return new MoreModel({ preset: 'tiny', image: { imageSize: 64 }, ecg: { samples: 100 } }, text, { seed });
}

/** Seeded synthetic pairs; samples 5 and 10 lack their ECG, so the masked loss path trains too. */
class SyntheticPairs implements BatchSource<MoreBatch> {
  readonly size = SAMPLES;

  loadBatch(indices: number[]): MoreBatch {
    const images: number[] = [];
    const ecgs: number[] = [];
    const ids: number[][] = [];
    const mask: number[][] = [];
    for (const index of indices) {
      const rng = new Rng(1000 + index);
      for (let i = 0; i < 64 * 64 * 3; i++) images.push(rng.normal());
      for (let i = 0; i < 12 * 100; i++) ecgs.push(rng.uniform() * 2 - 1);
      const length = 4 + rng.int(TOKENS - 4);
      ids.push(Array.from({ length: TOKENS }, (_, t) => (t === 0 ? 0 : t < length - 1 ? 3 + rng.int(900) : t === length - 1 ? 2 : 1)));
      mask.push(Array.from({ length: TOKENS }, (_, t) => (t < length ? 1 : 0)));
    }
    return {
      images: tf.tensor4d(images, [indices.length, 64, 64, 3]),
      ecgs: tf.tensor3d(ecgs, [indices.length, 12, 100]),
      inputIds: tf.tensor2d(ids, undefined, 'int32'),
      attentionMask: tf.tensor2d(mask, undefined, 'int32'),
      ecgPresent: indices.map((index) => index !== 5 && index !== 10),
    };
  }
}

const OPTIONS: TrainOptions = {
  batchSize: 4, accumulationSteps: 2, lr: 1e-3, t0: 2, etaMin: 1e-4, seed: 3, checkpointEveryEpochs: 0, checkpointEverySteps: 1,
};

describe('tasks/train with MoreModel', () => {
  it('resumes tiny MoRE training exactly', async () => {
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'more-ts-train-more-'));
    const data = { train: new SyntheticPairs() };
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
    const data = { train: new SyntheticPairs(), validation: new SyntheticPairs() };
    const before = tf.memory().numTensors;
    const counts: number[] = [];
    await fit(moreTrainingModel(model), data, { ...OPTIONS, checkpointEverySteps: 0, maxEpochs: 4, onEpochEnd: () => counts.push(tf.memory().numTensors) });
    assert.deepStrictEqual(counts, counts.map(() => counts[0]), `tensor count per epoch ${counts}`);
    assert.strictEqual(tf.memory().numTensors, before, 'tensors left after training');
    model.dispose();
  });
});
