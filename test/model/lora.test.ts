import * as assert from 'assert';

import * as tf from '@tensorflow/tfjs';

import { LoraLinear, REFERENCE_LORA, resolveLoraConfig } from '../../src/model/lora';
import { roundToDtype } from '../../src/model/safetensors';
import { TransformerTextEncoder, countTextParameters, textPreset } from '../../src/model/text';
import { Rng } from '../../src/util/rng';

/** Index of the first element where two arrays differ, or -1 (faster than deepStrictEqual on large arrays). */
function firstDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

function maxAbs(tensor: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tensor)).dataSync()[0]);
}

/** Builds a 768 x 768 layer with rank 8, alpha 16 and a random (trained-looking) B. */
function trainedLayer(): LoraLinear {
  const layer = new LoraLinear(768, 768);
  layer.attachLora(resolveLoraConfig({ r: 8, alpha: 16, dropout: 0 }), new Rng(1));
  const adapter = layer.adapter;
  assert.ok(adapter !== undefined);
  tf.tidy(() => adapter.b.assign(tf.randomNormal([768, 8], 0, 0.05, 'float32', 2) as tf.Tensor2D));
  return layer;
}

describe('LoRA', () => {
  it('has the reference defaults', () => {
    assert.deepStrictEqual(resolveLoraConfig(), { r: 16, alpha: 8, dropout: 0.1, targetModules: ['query', 'value'], bias: 'all' });
    assert.deepStrictEqual(REFERENCE_LORA.targetModules, ['query', 'value']);
  });

  it('starts as the identity', () => {
    const layer = new LoraLinear(48, 24);
    const x = tf.randomNormal([3, 5, 48], 0, 1, 'float32', 3) as tf.Tensor3D;
    const before = layer.apply(x);
    layer.attachLora(resolveLoraConfig({ r: 4, alpha: 8 }), new Rng(7));
    const after = layer.apply(x);
    assert.strictEqual(maxAbs(tf.sub(before, after)), 0);
    const adapter = layer.adapter;
    assert.ok(adapter !== undefined);
    assert.deepStrictEqual(adapter.a.shape, [4, 48]);
    assert.deepStrictEqual(adapter.b.shape, [24, 4]);
    assert.strictEqual(maxAbs(adapter.b), 0);
    assert.strictEqual(layer.scaling, 2);
    tf.dispose([x, before, after]);
    layer.dispose();
  });

  it('initialises A as Kaiming-uniform with a = sqrt(5)', () => {
    // torch's kaiming_uniform_(a=sqrt(5)) bound: sqrt(6 / ((1 + 5) * fan_in)) = 1 / sqrt(fan_in).
    const layer = new LoraLinear(256, 256);
    layer.attachLora(resolveLoraConfig({ r: 16 }), new Rng(11));
    const values = layer.adapter?.a.dataSync() as Float32Array;
    const bound = 1 / 16;
    let sum = 0;
    let sumSquares = 0;
    for (const value of values) {
      assert.ok(Math.abs(value) <= bound, `${value} is outside +-${bound}`);
      sum += value;
      sumSquares += value * value;
    }
    const mean = sum / values.length;
    const variance = sumSquares / values.length - mean * mean;
    // Uniform on [-b, b]: mean 0, variance b^2 / 3; 4096 samples keep both within a few percent.
    assert.ok(Math.abs(mean) < 0.05 * bound, `mean ${mean}`);
    assert.ok(Math.abs(variance / (bound * bound / 3) - 1) < 0.06, `variance ${variance}`);
    layer.dispose();
  });

  it('adds B A x times alpha over r', () => {
    const layer = trainedLayer();
    const x = tf.randomNormal([4, 768], 0, 1, 'float32', 4) as tf.Tensor2D;
    const adapter = layer.adapter;
    assert.ok(adapter !== undefined);
    const expected = tf.tidy(() => {
      const base = tf.add(tf.matMul(x, layer.weight, false, true), layer.bias as tf.Tensor);
      const update = tf.matMul(tf.matMul(x, adapter.a, false, true), adapter.b, false, true);
      return tf.add(base, tf.mul(update, 16 / 8));
    });
    const actual = layer.apply(x);
    assert.ok(maxAbs(tf.sub(actual, expected)) < 1e-5);
    tf.dispose([x, expected, actual]);
    layer.dispose();
  });

  it('restores W after merge and unmerge', () => {
    const layer = trainedLayer();
    const original = tf.clone(layer.weight);
    const report = layer.merge();
    assert.strictEqual(report.storage, 'F32');
    assert.strictEqual(report.maxAbsDrift, 0);
    assert.ok(layer.isMerged);
    assert.ok(maxAbs(tf.sub(layer.weight, original)) > 1e-3, 'merging changed W');
    layer.unmerge();
    const restored = maxAbs(tf.sub(layer.weight, original));
    assert.ok(restored < 1e-6, `W differs by ${restored} after unmerge`);
    original.dispose();
    layer.dispose();
  });

  it('gives the same output merged and unmerged', () => {
    const layer = trainedLayer();
    const x = tf.randomNormal([6, 768], 0, 1, 'float32', 5) as tf.Tensor2D;
    const unmerged = layer.apply(x);
    layer.merge();
    const merged = layer.apply(x);
    const diff = maxAbs(tf.sub(merged, unmerged));
    assert.ok(diff < 1e-5, `outputs differ by ${diff}`);
    assert.throws(() => layer.merge(), /already merged/);
    layer.unmerge();
    assert.throws(() => layer.unmerge(), /not merged/);
    tf.dispose([x, unmerged, merged]);
    layer.dispose();
  });

  it('rejects merging into half precision unless asked', () => {
    for (const storage of ['F16', 'BF16'] as const) {
      const layer = trainedLayer();
      layer.storageDtype = storage;
      const original = layer.weight.dataSync().slice() as Float32Array;
      assert.throws(() => layer.merge(), new RegExp(`Refusing to merge a LoRA adapter into ${storage} weights`));
      assert.ok(!layer.isMerged);
      assert.strictEqual(firstDifference(layer.weight.dataSync() as Float32Array, original), -1, 'a rejected merge leaves W unchanged');

      const delta = layer.delta();
      const exactTensor = tf.tidy(() => tf.add(tf.tensor2d(original, [768, 768]), delta));
      const exact = exactTensor.dataSync() as Float32Array;
      exactTensor.dispose();
      const rounded = roundToDtype(exact, storage);
      let expectedDrift = 0;
      for (let i = 0; i < exact.length; i++) expectedDrift = Math.max(expectedDrift, Math.abs(rounded[i] - exact[i]));
      const report = layer.merge({ allowPrecisionLoss: true });
      assert.strictEqual(report.storage, storage);
      assert.strictEqual(report.maxAbsDrift, expectedDrift);
      assert.ok(report.maxAbsDrift > 0, 'rounding to half precision moved some weights');
      assert.strictEqual(firstDifference(layer.weight.dataSync() as Float32Array, rounded), -1, 'merged W holds the rounded values');
      delta.dispose();
      layer.dispose();
    }
  });

  it('applies dropout to the adapter input only in training', () => {
    const layer = new LoraLinear(32, 32);
    layer.attachLora(resolveLoraConfig({ r: 4, alpha: 4, dropout: 0.5 }), new Rng(3));
    tf.tidy(() => layer.adapter?.b.assign(tf.ones([32, 4]) as tf.Tensor2D));
    const x = tf.ones([2, 32]) as tf.Tensor2D;
    const evalA = layer.apply(x);
    const evalB = layer.apply(x);
    assert.strictEqual(maxAbs(tf.sub(evalA, evalB)), 0);
    const trained = layer.apply(x, true, 9);
    assert.ok(maxAbs(tf.sub(trained, evalA)) > 0, 'training mode dropped some inputs');
    tf.dispose([x, evalA, evalB, trained]);
    layer.dispose();
  });

  it('selects trainable biases by mode', () => {
    const config = { ...textPreset('tiny'), numHiddenLayers: 1 };
    const expectations: Record<string, (name: string) => boolean> = {
      none: (name) => name.includes('.lora_'),
      all: (name) => name.includes('.lora_') || name.endsWith('bias'),
      lora_only: (name) => name.includes('.lora_') || /\.(query|value)\.bias$/.test(name),
    };
    for (const [bias, isTrainable] of Object.entries(expectations)) {
      const encoder = new TransformerTextEncoder(config);
      encoder.addLora({ r: 2, bias: bias as 'none' | 'all' | 'lora_only' });
      for (const [name, variable] of encoder.namedWeights()) {
        assert.strictEqual(variable.trainable, isTrainable(name), `bias=${bias}: ${name}`);
      }
      const counts = encoder.parameterCounts();
      assert.deepStrictEqual(counts, countTextParameters(config, encoder.lora));
      encoder.dispose();
    }
  });

  it('rejects invalid settings with the valid choices', () => {
    assert.throws(() => resolveLoraConfig({ r: 0 }), /Invalid LoRA r 0: expected a positive integer/);
    assert.throws(() => resolveLoraConfig({ dropout: 1 }), /Invalid LoRA dropout 1/);
    assert.throws(() => resolveLoraConfig({ bias: 'some' as 'all' }), /expected one of none, all, lora_only/);
    const encoder = new TransformerTextEncoder({ ...textPreset('tiny'), numHiddenLayers: 1 });
    assert.throws(() => encoder.addLora({ targetModules: ['q_proj'] }), /No layer matches LoRA targetModules \["q_proj"\]/);
    encoder.addLora();
    assert.throws(() => encoder.addLora(), /already has LoRA adapters/);
    encoder.dispose();
  });
});
