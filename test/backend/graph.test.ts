import * as assert from 'assert';
import * as os from 'os';
import * as path from 'path';

import { tf } from '../../src/backend';
import { compileGraph, GraphFunction, TraceError } from '../../src/backend/graph';
import {
  type EcgConfig,
  EcgEncoder,
  ecgPreset,
  infoNce,
  ProjectionHead,
  type VitConfig,
  VisionTransformer,
  vitPreset,
  withInitialisationSeed,
} from '../../src/model';
import { loadTextEncoder } from '../../src/model/text';
import { expected, fixtureTensor, fixtureWeights, maxAbsDiff, readFixture } from '../model/vision-fixtures';

// Must match VIT and ECG in reference/model_vision.py, as in test/model/vision.test.ts.
const VIT: VitConfig = { ...vitPreset('tiny'), imageSize: 32, patchSize: 8, width: 32, depth: 2, heads: 4, mlpDim: 64 };
const ECG: EcgConfig = { ...ecgPreset('tiny'), samples: 100, convChannels: 16, width: 32, depth: 2, heads: 4, mlpDim: 64 };
const TEXT_FIXTURES = path.join(__dirname, '..', 'fixtures', 'model', 'text');

function loadEncoder(kind: 'vit' | 'ecg'): VisionTransformer | EcgEncoder {
  const encoder = kind === 'vit' ? new VisionTransformer(VIT) : new EcgEncoder(ECG);
  const weights = fixtureWeights(readFixture(`${kind}_weights.safetensors`));
  encoder.loadNamedWeights(weights, { strict: true });
  tf.dispose([...weights.values()]);
  return encoder;
}

function pooled(encoder: VisionTransformer | EcgEncoder, input: tf.Tensor, training: boolean): tf.Tensor2D {
  return encoder instanceof VisionTransformer
    ? encoder.forward(input as tf.Tensor4D, { training }).pooled
    : encoder.forward(input as tf.Tensor3D, { training }).pooled;
}

function readScalar(tensor: tf.Tensor): number {
  const value = tensor.dataSync()[0];
  tensor.dispose();
  return value;
}

describe('compiled graphs', () => {
  for (const kind of ['vit', 'ecg'] as const) {
    it(`replays the ${kind} encoder like timm`, () => {
      const io = readFixture(`${kind}_io.safetensors`);
      const encoder = loadEncoder(kind);
      const forward = compileGraph((input) => [pooled(encoder, input, false)], { name: `${kind} forward` });
      const input = fixtureTensor(io, 'input');
      const [traced] = forward.call(input);
      const before = tf.memory().numTensors;
      const [replayed] = forward.call(input);
      assert.strictEqual(forward.graphCount, 1);
      const error = maxAbsDiff(replayed, expected(io, 'pooled'));
      assert.ok(error < 1e-4, `replayed output differs from timm by ${error}`);
      assert.ok(maxAbsDiff(replayed, traced) < 1e-5, 'the replay differs from the traced call');
      replayed.dispose();
      assert.strictEqual(tf.memory().numTensors, before, 'a replay leaked tensors');
      tf.dispose([traced, input]);
      forward.dispose();
      encoder.dispose();
    });
  }

  it('replays the LoRA text encoder like peft', () => {
    const folder = path.join(TEXT_FIXTURES, 'roberta-tiny');
    const fixture = readFixture(path.join('..', 'text', 'roberta-tiny', 'expected.safetensors'));
    const { encoder } = loadTextEncoder(folder, { adapter: path.join(folder, 'adapter') });
    const ids = tf.cast(fixtureTensor(fixture, 'input_ids'), 'int32') as tf.Tensor2D;
    const mask = tf.cast(fixtureTensor(fixture, 'attention_mask'), 'int32') as tf.Tensor2D;
    const types = tf.cast(fixtureTensor(fixture, 'token_type_ids'), 'int32') as tf.Tensor2D;
    const forward = compileGraph((i, m, t) => [encoder.forward(i as tf.Tensor2D, m as tf.Tensor2D, { tokenTypeIds: t as tf.Tensor2D }).pooled]);
    tf.dispose(forward.call(ids, mask, types));
    const [replayed] = forward.call(ids, mask, types);
    const error = maxAbsDiff(replayed, expected(fixture, 'lora.pooled_masked'));
    assert.ok(error < 1e-4, `replayed pooled output differs from peft by ${error}`);
    tf.dispose([replayed, ids, mask, types]);
    forward.dispose();
    encoder.dispose();
  });

  it('replays DropKey and Adam steps exactly', () => {
    const runs = ['eager', 'graph'].map((mode) => {
      const { encoder, head } = withInitialisationSeed(11, () => ({
        encoder: new VisionTransformer(VIT, { seed: 5 }),
        head: new ProjectionHead({ kind: 'nonlinear', inputDim: VIT.width, hiddenDim: VIT.width, outputDim: 8 }),
      }));
      const variables = [...encoder.trainableVariables(), ...head.trainableVariables()];
      const optimizer = tf.train.adam(1e-2);
      const step = compileGraph(
        (images, targets) => {
          const { value, grads } = tf.variableGrads(
            () => infoNce(head.apply(pooled(encoder, images, true)), targets as tf.Tensor2D, 0.1),
            variables,
          );
          optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
          tf.dispose(Object.values(grads));
          return [value];
        },
        { name: 'train step', eager: mode === 'eager' },
      );
      return { encoder, head, optimizer, step };
    });
    const images = tf.randomNormal([4, VIT.imageSize, VIT.imageSize, 3], 0, 1, 'float32', 1);
    const targets = tf.randomNormal([4, 8], 0, 1, 'float32', 2);
    const losses = runs.map(({ step }) => Array.from({ length: 5 }, () => readScalar(step.call(images, targets)[0])));
    // The first graph call creates Adam's slots, the second traces and the rest replay.
    assert.strictEqual(runs[1].step.graphCount, 1);
    losses[0].forEach((loss, index) => {
      assert.ok(Math.abs(loss - losses[1][index]) < 1e-5 * Math.max(1, Math.abs(loss)), `step ${index}: eager ${loss}, graph ${losses[1][index]}`);
    });
    assert.ok(losses[0][4] < losses[0][0], `the loss did not fall: ${losses[0]}`);
    const [eager, graph] = runs.map(({ encoder }) => encoder.namedWeights());
    for (const [name, weight] of eager) {
      const error = maxAbsDiff(graph.get(name) as tf.Tensor, weight);
      assert.ok(error < 1e-5, `${name} differs by ${error} after five steps`);
    }
    assert.deepStrictEqual(runs[1].encoder.rng.getState(), runs[0].encoder.rng.getState(), 'the DropKey generators drifted apart');

    const before = tf.memory().numTensors;
    for (let index = 0; index < 10; index++) runs[1].step.call(images, targets)[0].dispose();
    assert.strictEqual(tf.memory().numTensors, before, 'replayed steps leaked tensors');
    for (const run of runs) {
      run.step.dispose();
      run.optimizer.dispose();
      run.encoder.dispose();
      run.head.dispose();
    }
    tf.dispose([images, targets]);
  });

  it('replays LoRA dropout masks exactly', () => {
    const folder = path.join(TEXT_FIXTURES, 'roberta-tiny');
    const fixture = readFixture(path.join('..', 'text', 'roberta-tiny', 'expected.safetensors'));
    const ids = tf.cast(fixtureTensor(fixture, 'input_ids'), 'int32') as tf.Tensor2D;
    const mask = tf.cast(fixtureTensor(fixture, 'attention_mask'), 'int32') as tf.Tensor2D;
    const weights = fixtureTensor(fixture, 'loss_weights');
    const runs = ['eager', 'graph'].map((mode) => {
      const { encoder } = loadTextEncoder(folder, { adapter: path.join(folder, 'adapter'), seed: 3 });
      assert.ok((encoder.lora?.dropout ?? 0) > 0, 'the fixture adapter should use dropout');
      const optimizer = tf.train.sgd(0.5);
      const step = compileGraph(
        (i, m) => {
          const loss = (): tf.Scalar => tf.sum(tf.mul(encoder.forward(i as tf.Tensor2D, m as tf.Tensor2D, { training: true }).pooled, weights));
          const { value, grads } = tf.variableGrads(loss, encoder.trainableVariables());
          optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
          tf.dispose(Object.values(grads));
          return [value];
        },
        { eager: mode === 'eager' },
      );
      return { encoder, optimizer, step };
    });
    const losses = runs.map(({ step }) => Array.from({ length: 4 }, () => readScalar(step.call(ids, mask)[0])));
    losses[0].forEach((loss, index) => {
      assert.ok(Math.abs(loss - losses[1][index]) < 1e-5 * Math.max(1, Math.abs(loss)), `step ${index}: eager ${loss}, graph ${losses[1][index]}`);
    });
    assert.ok(new Set(losses[0].map((loss) => loss.toFixed(6))).size > 1, 'the steps should differ');
    for (const run of runs) {
      run.step.dispose();
      run.optimizer.dispose();
      run.encoder.dispose();
    }
    tf.dispose([ids, mask, weights]);
  });

  it('traces one graph per input shape', () => {
    const scale = tf.variable(tf.scalar(3));
    const triple = compileGraph((x) => [tf.mul(x, scale)]);
    for (const size of [2, 5, 2, 5]) {
      const input = tf.range(0, size);
      const [out] = triple.call(input);
      assert.deepStrictEqual(Array.from(out.dataSync()), Array.from({ length: size }, (_, i) => 3 * i));
      tf.dispose([input, out]);
    }
    assert.strictEqual(triple.graphCount, 2);
    // A replay reads the variable's current value.
    scale.assign(tf.scalar(-1));
    const input = tf.tensor1d([1, 2]);
    const [out] = triple.call(input);
    assert.deepStrictEqual(Array.from(out.dataSync()), [-1, -2]);
    tf.dispose([input, out, scale]);
    triple.dispose();
  });

  it('runs shapes beyond maxGraphs eagerly', () => {
    const offset = tf.variable(tf.scalar(1));
    const shifted = compileGraph((x) => [tf.add(x, offset)], { maxGraphs: 1 });
    for (const size of [3, 4, 3, 4]) {
      const input = tf.zeros([size]);
      const [out] = shifted.call(input);
      assert.deepStrictEqual(Array.from(out.dataSync()), new Array(size).fill(1));
      tf.dispose([input, out]);
    }
    assert.strictEqual(shifted.graphCount, 1);
    assert.throws(() => compileGraph((x) => [x], { maxGraphs: -1 }), /Invalid maxGraphs -1/);
    tf.dispose(offset);
    shifted.dispose();
  });

  it('retraces after a frozen variable changes', () => {
    const scale = tf.variable(tf.scalar(2));
    const scaled = compileGraph((x) => [tf.mul(x, scale)], { freezeVariables: true });
    const input = tf.tensor1d([1, 2]);
    const outputs: number[][] = [];
    for (const value of [2, 2, 5, 5]) {
      scale.assign(tf.scalar(value));
      const [out] = scaled.call(input);
      outputs.push(Array.from(out.dataSync()));
      out.dispose();
    }
    assert.deepStrictEqual(outputs, [[2, 4], [2, 4], [5, 10], [5, 10]]);
    assert.strictEqual(scaled.graphCount, 1);
    tf.dispose([input, scale]);
    scaled.dispose();
  });

  it('freezes a JavaScript tensor as a constant', () => {
    const mixed = compileGraph((x) => [tf.add(x, 1), tf.tensor1d([1, 2, 3])]);
    for (const value of [1, 5]) {
      const input = tf.tensor1d([value]);
      const [sum, constant] = mixed.call(input);
      assert.deepStrictEqual(Array.from(sum.dataSync()), [value + 1]);
      assert.deepStrictEqual(Array.from(constant.dataSync()), [1, 2, 3]);
      tf.dispose([input, sum, constant]);
    }
    assert.strictEqual(mixed.graphCount, 1);
    mixed.dispose();
  });

  it('returns fed tensors through the graph', () => {
    const scale = tf.variable(tf.scalar(2));
    const echo = compileGraph((x) => [x, scale, tf.mul(x, scale)]);
    for (const value of [1, 4]) {
      const input = tf.tensor1d([value]);
      const [same, read, product] = echo.call(input);
      assert.deepStrictEqual([same, read, product].map((tensor) => tensor.dataSync()[0]), [value, 2, 2 * value]);
      // The eager first call returns the input and the variable themselves.
      tf.dispose([input, same, read, product].filter((tensor) => tensor !== scale));
    }
    tf.dispose(scale);
    echo.dispose();
  });

  it('keys graphs by repeated inputs', () => {
    const difference = compileGraph((a, b) => [tf.sub(a, b)]);
    const x = tf.tensor1d([3, 4]);
    tf.dispose(difference.call(x, x));
    const [a, b] = [tf.tensor1d([10, 20]), tf.tensor1d([1, 1])];
    const [out] = difference.call(a, b);
    assert.deepStrictEqual(Array.from(out.dataSync()), [9, 19]);
    assert.strictEqual(difference.graphCount, 2);
    tf.dispose([x, a, b, out]);
    difference.dispose();
  });

  it('feeds variables that share a buffer', () => {
    const first = tf.variable(tf.tensor1d([1, 1]));
    const second = tf.variable(tf.tensor1d([0, 0]));
    second.assign(first); // tfjs shares the buffer rather than copying it
    for (const freezeVariables of [false, true]) {
      const shifted = compileGraph((x) => [tf.add(x, second)], { freezeVariables });
      const input = tf.tensor1d([10, 20]);
      tf.dispose(shifted.call(input));
      second.assign(tf.tensor1d([5, 5]));
      const [out] = shifted.call(input);
      assert.deepStrictEqual(Array.from(out.dataSync()), [15, 25], `freezeVariables ${freezeVariables}`);
      second.assign(first);
      tf.dispose([input, out]);
      shifted.dispose();
    }
    tf.dispose([first, second]);
  });

  it('records nested compiled calls', () => {
    const inner = compileGraph((x) => [tf.mul(x, 2)]);
    const outer = compileGraph((x) => [tf.add(inner.call(x)[0], 1)]);
    const warm = tf.tensor1d([0]);
    tf.dispose(inner.call(warm)); // the inner graph exists before the outer trace
    for (const value of [1, 7, 9]) {
      const input = tf.tensor1d([value]);
      const [out] = outer.call(input);
      assert.strictEqual(out.dataSync()[0], 2 * value + 1);
      tf.dispose([input, out]);
    }
    tf.dispose(warm);
    inner.dispose();
    outer.dispose();
  });

  it('runs under tf.grad on every call', () => {
    const square = compileGraph((x) => [tf.sum(tf.square(x))]);
    for (let call = 0; call < 3; call++) {
      const input = tf.tensor1d([1, 2]);
      const gradient = tf.grad((x: tf.Tensor) => square.call(x)[0] as tf.Scalar)(input);
      assert.deepStrictEqual(Array.from(gradient.dataSync()), [2, 4]);
      tf.dispose([input, gradient]);
    }
    square.dispose();
  });

  it('falls back to eager when a graph cannot be built', () => {
    const counter = tf.variable(tf.scalar(0));
    const frozen = compileGraph((x) => {
      counter.assign(tf.add(counter, 1));
      return [tf.mul(x, counter)];
    }, { freezeVariables: true, name: 'counting step' });
    const input = tf.scalar(1);
    for (let call = 1; call <= 3; call++) {
      const [out] = frozen.call(input);
      assert.strictEqual(out.dataSync()[0], call);
      out.dispose();
    }
    assert.strictEqual(counter.dataSync()[0], 3, 'each call ran its step once');
    assert.strictEqual(frozen.graphCount, 0);
    assert.match(frozen.buildFailure?.message ?? '', /Cannot freeze variable \S+ of shape \[\]: the function assigns it/);
    assert.throws(() => compileGraph((x) => tf.add(x, 1) as unknown as tf.Tensor[], { name: 'single' }).call(input), /single must synchronously return an array of tensors/);
    tf.dispose([input, counter]);
  });

  it('runs a complex input eagerly', () => {
    const real = compileGraph((x) => [tf.real(x)], { name: 'real part' });
    const input = tf.complex([1, 2], [3, 4]);
    for (let call = 0; call < 2; call++) {
      const [out] = real.call(input);
      assert.deepStrictEqual(Array.from(out.dataSync()), [1, 2]);
      out.dispose();
    }
    assert.strictEqual(real.graphCount, 0);
    input.dispose();
  });

  it('names a disposed variable', () => {
    const weight = tf.variable(tf.tensor1d([2, 2]), true, 'graph_test_weight');
    const scaled = compileGraph((x) => [tf.mul(x, weight)], { name: 'scaled' });
    const input = tf.tensor1d([1, 3]);
    scaled.call(input)[0].dispose();
    weight.dispose();
    assert.throws(() => scaled.call(input), /scaled: variable graph_test_weight of shape \[2\] was disposed/);
    input.dispose();
    scaled.dispose();
  });

  it('splits a batch into slices that match timm', () => {
    const io = readFixture('vit_io.safetensors');
    const encoder = loadEncoder('vit');
    const single = fixtureTensor(io, 'input');
    // Four copies of the fixture batch, so that every core gets rows.
    const input = tf.concat([single, single, single, single], 0);
    const forward = compileGraph((x) => [pooled(encoder, x, false)], { name: 'sliced vit', freezeVariables: true, splitBatch: true });
    tf.dispose(forward.call(input));
    const [replayed] = forward.call(input);
    const cores = Math.min(os.availableParallelism(), input.shape[0]);
    assert.deepStrictEqual(forward.sliceCounts, [cores]);
    const reference = fixtureTensor(io, 'pooled');
    const repeated = tf.concat([reference, reference, reference, reference], 0);
    const error = maxAbsDiff(replayed, repeated);
    assert.ok(error < 1e-4, `sliced output differs from timm by ${error}`);
    tf.dispose([replayed, repeated, reference, single, input]);
    forward.dispose();
    encoder.dispose();
  });

  it('splits odd batches and keeps single rows whole', () => {
    const weight = tf.variable(tf.tensor2d([[1, -2, 0.5], [3, 0.25, -1]]));
    const rowwise = compileGraph((x) => [tf.softmax(tf.matMul(x as tf.Tensor2D, weight)), tf.sum(x, 1)], { splitBatch: true });
    for (const rows of [5, 1]) {
      const input = tf.tensor2d(Array.from({ length: rows * 2 }, (_, i) => (i % 7) - 3), [rows, 2]);
      const [eagerProbabilities, eagerSums] = tf.tidy(() => [tf.softmax(tf.matMul(input, weight)), tf.sum(input, 1)]);
      tf.dispose(rowwise.call(input));
      const [probabilities, sums] = rowwise.call(input);
      assert.deepStrictEqual(probabilities.shape, [rows, 3]);
      assert.ok(maxAbsDiff(probabilities, eagerProbabilities) < 1e-6);
      assert.deepStrictEqual(Array.from(sums.dataSync()), Array.from(eagerSums.dataSync()));
      tf.dispose([input, eagerProbabilities, eagerSums, probabilities, sums]);
    }
    const slices = Math.min(os.availableParallelism(), 5);
    assert.deepStrictEqual(rowwise.sliceCounts, [slices, 1]);
    tf.dispose(weight);
    rowwise.dispose();
  });

  it('refuses splitBatch for an output without the batch first', function () {
    if (os.availableParallelism() < 2) this.skip(); // one core: nothing is split
    const total = compileGraph((x) => [tf.sum(x)], { name: 'the total', splitBatch: true });
    const input = tf.ones([4, 2]);
    assert.throws(() => total.call(input), (error: Error) =>
      error instanceof TraceError && /the total was compiled with splitBatch, but an output of shape \[\] does not have the batch/.test(error.message));
    assert.strictEqual(total.graphCount, 0);
    input.dispose();
    total.dispose();
  });

  it('runs eagerly on the CPU backend', async () => {
    const previous = tf.getBackend();
    await tf.setBackend('cpu');
    try {
      const double: GraphFunction<tf.Tensor[]> = compileGraph((x) => [tf.mul(x, 2)]);
      const input = tf.tensor1d([1, 2]);
      const [out] = double.call(input);
      assert.deepStrictEqual(Array.from(out.dataSync()), [2, 4]);
      assert.strictEqual(double.graphCount, 0);
      tf.dispose([input, out]);
    } finally {
      await tf.setBackend(previous);
    }
  });
});
