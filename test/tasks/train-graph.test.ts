import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { tf } from '../../src/backend';
import { MoreModel, type MoreBatch } from '../../src/model';
import { TransformerTextEncoder, textPreset } from '../../src/model/text';
import { AdamW } from '../../src/tasks/optim';
import { BatchSource, batchLayout, EpochRecord, fit, moreTrainingModel, TrainOptions } from '../../src/tasks/train';
import { TrainingSteps } from '../../src/tasks/train/steps';
import { SyntheticPairs } from './synthetic-pairs';

const SAMPLES = 11;
const TOKENS = 8;

/** Builds the tiny MoRE model (DropKey at its default rate of 0.3, LoRA on the text encoder). */
function buildModel(seed: number): MoreModel {
  const text = new TransformerTextEncoder(textPreset('tiny'), { seed });
  text.addLora({}, seed);
  return new MoreModel({ preset: 'tiny', image: { imageSize: 32, patchSize: 16 }, ecg: { samples: 100 } }, text, { seed });
}

/** Builds a model with the weights of `source` and its own generator seeds. */
function copyModel(source: MoreModel, seed: number): MoreModel {
  const model = buildModel(seed);
  model.loadNamedWeights(new Map([...source.namedWeights()].map(([name, variable]) => [name, variable as tf.Tensor])));
  return model;
}

/** Seeded pairs; sample 3 lacks its X-ray and sample 7 its ECG, so batches have several layouts. */
function mixedPairs(): SyntheticPairs {
  return new SyntheticPairs({ samples: SAMPLES, tokens: TOKENS, imageSize: 32, seed: 500, hasImage: (index) => index !== 3, hasEcg: (index) => index !== 7 });
}

// Batches of 4, 4 and 3 samples, two of them per optimiser step, in a new order every epoch.
const OPTIONS: TrainOptions = {
  batchSize: 4, dropLast: false, accumulationSteps: 2, lr: 1e-3, t0: 2, etaMin: 1e-4, seed: 5,
  scheduleStep: 'batch', checkpointEveryEpochs: 0, maxEpochs: 3,
};

interface Run {
  losses: number[];
  epochs: EpochRecord[];
}

async function train(model: MoreModel, options: TrainOptions): Promise<Run> {
  const run: Run = { losses: [], epochs: [] };
  await fit(moreTrainingModel(model), { train: mixedPairs(), validation: mixedPairs() }, {
    ...OPTIONS, ...options, onBatchEnd: (record) => run.losses.push(record.loss), onEpochEnd: (record) => run.epochs.push(record),
  });
  return run;
}

/** Asserts each value is within `tolerance` of the expected one, relative to it when it exceeds 1. */
function assertClose(actual: number[], expected: number[], tolerance: number, label: string): void {
  assert.strictEqual(actual.length, expected.length, `${label}: count`);
  actual.forEach((value, i) => {
    assert.ok(Math.abs(value - expected[i]) <= tolerance * Math.max(1, Math.abs(expected[i])), `${label} ${i}: ${value} vs ${expected[i]}`);
  });
}

function maxWeightDifference(a: MoreModel, b: MoreModel): { name: string; difference: number } {
  const expected = b.namedWeights();
  let worst = { name: '', difference: 0 };
  for (const [name, variable] of a.namedWeights()) {
    const difference = tf.tidy(() => tf.max(tf.abs(tf.sub(variable, expected.get(name) as tf.Variable))).dataSync()[0]);
    if (difference > worst.difference) worst = { name, difference };
  }
  return worst;
}

describe('tasks/train compiled graphs', () => {
  it('trains like eager MoRE training', async () => {
    const eager = buildModel(1);
    const graph = copyModel(eager, 1);
    const limited = copyModel(eager, 1);
    // TensorFlow's graph optimiser rounds some sums differently from eager operations. Adam's first steps
    // move a weight by about lr whatever the size of its gradient, so a weight whose gradient is rounding
    // noise (a bias that BatchNorm cancels) moves by +-lr in either run. A small lr keeps that below 1e-5.
    const options: TrainOptions = { lr: 1e-6, etaMin: 1e-7, maxEpochs: 2 };
    const eagerRun = await train(eager, { ...options, graph: false });
    const graphRun = await train(graph, { ...options, graph: true });
    // One graph only: batches of the other layouts train eagerly in between.
    const limitedRun = await train(limited, { ...options, graph: true, maxGraphs: 1 });

    assert.strictEqual(eagerRun.losses.length, 6);
    assert.ok(new Set(eagerRun.losses).size > 1, 'the loss changes while training');
    for (const [label, run] of [['graph', graphRun], ['one graph', limitedRun]] as const) {
      assertClose(run.losses, eagerRun.losses, 1e-5, `${label} batch loss`);
      assertClose(run.epochs.map((e) => e.validationLoss as number), eagerRun.epochs.map((e) => e.validationLoss as number), 1e-5, `${label} validation loss`);
      assertClose(run.epochs.map((e) => e.lr), eagerRun.epochs.map((e) => e.lr), 0, `${label} learning rate`);
    }
    for (const model of [graph, limited]) {
      const { name, difference } = maxWeightDifference(model, eager);
      assert.ok(difference <= 1e-5, `${name} differs from eager training by ${difference}`);
    }
    for (const model of [eager, graph, limited]) model.dispose();
  });

  it('resumes graph training exactly', async () => {
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'more-ts-train-graph-'));
    try {
      const straight = buildModel(2);
      const first = copyModel(straight, 2);
      const straightRun = await train(straight, { checkpointEverySteps: 1 });
      const firstRun = await train(first, { runDir, maxEpochs: 2, checkpointEverySteps: 1 });
      first.dispose();
      // Other weights and generator seeds: everything must come from the checkpoint.
      const resumed = buildModel(3);
      const laterRun = await train(resumed, { runDir, checkpointEverySteps: 1 });

      assertClose([...firstRun.losses, ...laterRun.losses], straightRun.losses, 1e-6, 'batch loss');
      const { name, difference } = maxWeightDifference(resumed, straight);
      assert.ok(difference <= 1e-6, `${name} differs by ${difference}`);
      straight.dispose();
      resumed.dispose();
    } finally {
      fs.rmSync(runDir, { recursive: true, force: true });
    }
  });

  it('keeps the tensor count flat', async () => {
    const model = buildModel(4);
    const before = tf.memory().numTensors;
    const counts: number[] = [];
    await fit(moreTrainingModel(model), { train: mixedPairs() }, {
      ...OPTIONS, maxEpochs: 4, onEpochEnd: () => counts.push(tf.memory().numTensors),
    });
    assert.deepStrictEqual(counts, counts.map(() => counts[0]), `tensor count per epoch ${counts}`);
    assert.strictEqual(tf.memory().numTensors, before, 'tensors left after training');
    model.dispose();
  });

  it('computes the MoRE loss as MoreModel does', () => {
    const model = buildModel(6);
    const trainer = moreTrainingModel(model);
    const batch = mixedPairs().loadBatch([3, 0, 7, 1, 2]);
    for (const training of [true, false]) {
      const context = { training, seed: 17 };
      const [ours] = tf.tidy(() => trainer.batchLoss(batch, context)).dataSync();
      trainer.prepareBatch?.(context, batch);
      const [expected] = tf.tidy(() => model.loss(model.forward(batch, { training }))).dataSync();
      assert.strictEqual(ours, expected, `training=${training}`);
    }
    tf.dispose(batch as unknown as tf.TensorContainer);
    model.dispose();
  });

  it('feeds each batch its rows', () => {
    const model = buildModel(7);
    const trainer = moreTrainingModel(model);
    const trainables = model.trainableVariables().map((variable, i) => ({ name: `v${i}`, variable }));
    const optimizer = new AdamW(trainables);
    const steps = new TrainingSteps(trainables, optimizer, {
      graph: true, maxGraphs: 8, accumulation: 'sum', stateVariables: [...model.namedWeights().values()],
    });
    // The X-ray of sample 3 is missing in the first row, then in the third: one layout, other rows.
    const source = mixedPairs();
    for (const [seed, indices] of [[1, [3, 0, 1, 2]], [2, [0, 1, 3, 2]], [3, [4, 5, 3, 6]]] as const) {
      const batch = source.loadBatch([...indices]);
      const context = { training: true, seed };
      const graphTensor = steps.accumulate(batch, {
        prepare: () => trainer.prepareBatch?.(context, batch),
        loss: () => trainer.batchLoss(batch, context),
        layout: () => trainer.batchLayout?.(batch),
      });
      const [graphLoss] = graphTensor.dataSync();
      graphTensor.dispose();
      const [eagerLoss] = tf.tidy(() => trainer.batchLoss(batch, context)).dataSync();
      assert.ok(Math.abs(graphLoss - eagerLoss) <= 1e-5 * Math.abs(eagerLoss), `rows ${indices}: graph ${graphLoss}, eager ${eagerLoss}`);
      tf.dispose(batch as unknown as tf.TensorContainer);
    }
    assert.strictEqual(steps.graphCount, 1);
    steps.dispose();
    optimizer.dispose();
    model.dispose();
  });

  it('bounds the graphs per step kind', () => {
    const weight = tf.variable(tf.tensor1d([0.5, -0.25]), true, 'train_graph_weight');
    const optimizer = new AdamW([{ name: 'w', variable: weight }], { lr: 0.1 });
    const steps = new TrainingSteps([{ name: 'w', variable: weight }], optimizer, {
      graph: true, maxGraphs: 2, accumulation: 'sum', stateVariables: [],
    });
    const before = tf.memory().numTensors;
    for (const rows of [1, 2, 3, 1, 2, 3]) {
      const inputs = tf.ones([rows, 2]);
      const loss = steps.accumulate({ inputs }, {
        prepare: () => undefined,
        loss: () => tf.sum(tf.square(tf.matMul(inputs, weight.reshape([2, 1])))),
      });
      steps.apply();
      tf.dispose([inputs, loss]);
    }
    // Two batch graphs (1 and 2 rows) and one optimiser graph; the 3-row batches ran eagerly.
    assert.strictEqual(steps.graphCount, 3);
    assert.strictEqual(optimizer.steps, 6);
    assert.strictEqual(tf.memory().numTensors, before, 'the steps leaked tensors');
    steps.dispose();
    optimizer.dispose();
    weight.dispose();
  });

  it('trains eagerly after a trace error', () => {
    // A complex64 constant has no graph form here, so tracing the step fails.
    const phase = tf.complex([1, 2], [0.5, -1]);
    const results = [false, true].map((graph) => {
      const weight = tf.variable(tf.tensor1d([0.5, -0.25]));
      const optimizer = new AdamW([{ name: 'w', variable: weight }], { lr: 0.1 });
      const steps = new TrainingSteps([{ name: 'w', variable: weight }], optimizer, {
        graph, maxGraphs: 8, accumulation: 'sum', stateVariables: [],
      });
      const losses: number[] = [];
      for (let step = 0; step < 3; step++) {
        const loss = steps.accumulate({}, { prepare: () => undefined, loss: () => tf.sum(tf.square(tf.mul(tf.real(phase), weight))) });
        losses.push(loss.dataSync()[0]);
        loss.dispose();
        steps.apply();
      }
      const count = steps.graphCount;
      const weights = Array.from(weight.dataSync());
      steps.dispose();
      optimizer.dispose();
      weight.dispose();
      return { losses, weights, count };
    });
    assert.deepStrictEqual(results[1].losses, results[0].losses);
    assert.deepStrictEqual(results[1].weights, results[0].weights);
    assert.strictEqual(results[1].count, 0);
    phase.dispose();
  });

  it('describes batch layouts', () => {
    const ids = tf.zeros([2, 3], 'int32');
    const layout = batchLayout({ ids, present: [true, false], note: 'x', missing: undefined });
    assert.deepStrictEqual(layout?.tensors, [ids]);
    assert.strictEqual(layout?.key, '{"ids":int32[2,3],"missing":undefined,"note":"x","present":[true,false]}');
    assert.strictEqual(batchLayout({ ids, buffer: new Float32Array(2) }), undefined);
    ids.dispose();
  });
});
