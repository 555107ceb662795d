import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';

import { tf } from '../../src/backend';
import { compileGraph } from '../../src/backend/graph';
import { AdamW } from '../../src/tasks/optim';

interface AdamWCase {
  shapes: number[][];
  initial: number[][];
  grads: number[][][];
  missing: [number, number][];
  lrs: number[];
  weightDecay: number;
  betas: [number, number];
  eps: number;
  amsgrad: boolean;
  after: number[][][];
  expAvg: number[][];
  expAvgSq: number[][];
  steps: number[];
}

// Produced by reference/train_optim_schedule.py with torch.optim.AdamW.
const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/tasks/train/optim_schedule.json'), 'utf8')) as {
  adamw: AdamWCase[];
};

function assertClose(actual: ArrayLike<number>, expected: number[], tolerance: number, what: string): void {
  assert.strictEqual(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tolerance, `${what}[${i}]: ${actual[i]} vs torch ${expected[i]}`);
  }
}

function buildRun(run: AdamWCase): { variables: tf.Variable[]; optimizer: AdamW } {
  const variables = run.shapes.map((shape, i) => tf.tidy(() => tf.variable(tf.tensor(run.initial[i], shape))));
  const optimizer = new AdamW(variables.map((variable, i) => ({ name: `p${i}`, variable })), {
    lr: run.lrs[0], betas: run.betas, eps: run.eps, weightDecay: run.weightDecay, amsgrad: run.amsgrad,
  });
  return { variables, optimizer };
}

function stepRun(run: AdamWCase, optimizer: AdamW, step: number): void {
  optimizer.lr = run.lrs[step];
  const gradients = new Map<string, tf.Tensor>();
  run.shapes.forEach((shape, i) => {
    const skipped = run.missing.some(([s, index]) => s === step && index === i);
    if (!skipped) gradients.set(`p${i}`, tf.tensor(run.grads[step][i], shape));
  });
  optimizer.step(gradients);
  tf.dispose([...gradients.values()]);
}

describe('tasks/optim AdamW', () => {
  for (const [caseIndex, run] of fixture.adamw.entries()) {
    const label = `wd=${run.weightDecay} amsgrad=${run.amsgrad}${run.missing.length > 0 ? ' missing gradients' : ''}`;
    it(`matches torch.optim.AdamW, ${label} (case ${caseIndex})`, () => {
      const before = tf.memory().numTensors;
      const { variables, optimizer } = buildRun(run);
      for (let step = 0; step < run.lrs.length; step++) {
        stepRun(run, optimizer, step);
        variables.forEach((variable, i) => {
          assertClose(variable.dataSync(), run.after[step][i], 1e-6, `step ${step + 1} param ${i}`);
        });
      }
      const state = optimizer.getState();
      run.shapes.forEach((_, i) => {
        assertClose(state.tensors[`p${i}.exp_avg`].dataSync(), run.expAvg[i], 1e-6, `exp_avg ${i}`);
        assertClose(state.tensors[`p${i}.exp_avg_sq`].dataSync(), run.expAvgSq[i], 1e-6, `exp_avg_sq ${i}`);
        assert.strictEqual(state.variableSteps[`p${i}`], run.steps[i], `step count of p${i}`);
      });
      tf.dispose(Object.values(state.tensors));
      optimizer.dispose();
      tf.dispose(variables);
      assert.strictEqual(tf.memory().numTensors, before, 'tensors leaked');
    });
  }

  for (const caseIndex of [0, 1]) {
    it(`replays as a graph like torch (case ${caseIndex})`, () => {
      const run = fixture.adamw[caseIndex];
      const { variables, optimizer } = buildRun(run);
      const before = tf.memory().numTensors;
      // The gradients are the inputs. The step size, decay and bias corrections change every step, so the graph must not freeze them.
      const step = compileGraph((...gradients) => {
        optimizer.step(new Map(gradients.map((gradient, i) => [`p${i}`, gradient])));
        return [];
      }, { name: 'AdamW step' });
      for (let index = 0; index < run.lrs.length; index++) {
        optimizer.lr = run.lrs[index];
        const gradients = run.shapes.map((shape, i) => tf.tensor(run.grads[index][i], shape));
        step.call(...gradients);
        tf.dispose(gradients);
        variables.forEach((variable, i) => {
          assertClose(variable.dataSync(), run.after[index][i], 1e-6, `step ${index + 1} param ${i}`);
        });
      }
      assert.strictEqual(step.graphCount, 1);
      assert.strictEqual(optimizer.steps, run.lrs.length);
      assert.strictEqual(tf.memory().numTensors, before, 'the compiled steps leaked tensors');
      step.dispose();
      optimizer.dispose();
      tf.dispose(variables);
    });
  }

  it('continues exactly after a state round trip', () => {
    const run = fixture.adamw[1];
    const { variables, optimizer } = buildRun(run);
    for (let step = 0; step < 2; step++) stepRun(run, optimizer, step);
    const saved = optimizer.getState();
    const snapshot = variables.map((variable) => variable.clone());
    optimizer.dispose();

    const restoredVariables = snapshot.map((tensor) => tf.variable(tensor));
    const restored = new AdamW(restoredVariables.map((variable, i) => ({ name: `p${i}`, variable })), {
      lr: run.lrs[0], betas: run.betas, eps: run.eps, weightDecay: run.weightDecay, amsgrad: run.amsgrad,
    });
    restored.setState(saved);
    tf.dispose(Object.values(saved.tensors));
    assert.strictEqual(restored.steps, 2);
    for (let step = 2; step < run.lrs.length; step++) stepRun(run, restored, step);
    restoredVariables.forEach((variable, i) => {
      assertClose(variable.dataSync(), run.after[run.lrs.length - 1][i], 1e-6, `param ${i} after resume`);
    });
    restored.dispose();
    tf.dispose([...variables, ...snapshot, ...restoredVariables]);
  });

  it('rejects a state for other variables', () => {
    const variable = tf.tidy(() => tf.variable(tf.zeros([2])));
    const other = tf.tidy(() => tf.variable(tf.zeros([3])));
    const first = new AdamW([{ name: 'w', variable }]);
    const second = new AdamW([{ name: 'w', variable: other }]);
    const state = first.getState();
    assert.throws(() => second.setState(state), /"w.exp_avg" has shape \[2\], expected \[3\]/);
    const renamed = new AdamW([{ name: 'v', variable }]);
    assert.throws(() => renamed.setState(state), /missing "v.exp_avg"/);
    tf.dispose(Object.values(state.tensors));
    [first, second, renamed].forEach((optimizer) => optimizer.dispose());
    tf.dispose([variable, other]);
  });

  it('rejects bad options and gradients', () => {
    const variable = tf.variable(tf.zeros([2]));
    assert.throws(() => new AdamW([{ name: 'w', variable }], { lr: -1 }), /Invalid AdamW lr -1/);
    assert.throws(() => new AdamW([{ name: 'w', variable }], { betas: [1, 0.9] }), /Invalid AdamW betas\[0\] 1/);
    assert.throws(() => new AdamW([{ name: 'w', variable }, { name: 'w', variable }]), /Duplicate variable name "w"/);
    const optimizer = new AdamW([{ name: 'w', variable }]);
    const wrong = tf.zeros([3]);
    assert.throws(() => optimizer.step({ w: wrong }), /"w" has shape \[3\], expected \[2\]/);
    assert.throws(() => optimizer.step({ q: wrong }), /unknown variable "q"/);
    optimizer.dispose();
    tf.dispose([variable, wrong]);
  });
});
