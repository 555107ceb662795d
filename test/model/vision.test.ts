import * as assert from 'assert';

import { tf } from '../../src/backend';
import {
  type EcgConfig,
  EcgEncoder,
  type VitConfig,
  VisionTransformer,
  ecgPreset,
  vitPreset,
  resolveMoreConfig,
} from '../../src/model';
import { expected, fixtureTensor, fixtureWeights, maxAbsDiff, readFixture, relativeDiff } from './vision-fixtures';

// Must match VIT and ECG in reference/model_vision.py.
const VIT: VitConfig = {
  ...vitPreset('tiny'),
  imageSize: 32,
  patchSize: 8,
  width: 32,
  depth: 2,
  heads: 4,
  mlpDim: 64,
};
const ECG: EcgConfig = {
  ...ecgPreset('tiny'),
  samples: 100,
  convChannels: 16,
  width: 32,
  depth: 2,
  heads: 4,
  mlpDim: 64,
};

type Encoder = VisionTransformer | EcgEncoder;

function buildLoaded(kind: 'vit' | 'ecg', config: VitConfig | EcgConfig): Encoder {
  const encoder = kind === 'vit' ? new VisionTransformer(config as VitConfig) : new EcgEncoder(config as EcgConfig);
  const weights = fixtureWeights(readFixture(`${kind}_weights.safetensors`));
  const report = encoder.loadNamedWeights(weights, { strict: true });
  assert.strictEqual(report.loaded.length, weights.size);
  tf.dispose([...weights.values()]);
  return encoder;
}

function forward(encoder: Encoder, input: tf.Tensor, options: Parameters<VisionTransformer['forward']>[1]) {
  return encoder instanceof VisionTransformer
    ? encoder.forward(input as tf.Tensor4D, options)
    : encoder.forward(input as tf.Tensor3D, options);
}

for (const [kind, config] of [['vit', VIT], ['ecg', ECG]] as const) {
  describe(`${kind} encoder parity with PyTorch`, () => {
    const io = readFixture(`${kind}_io.safetensors`);
    let encoder: Encoder;

    before(() => {
      encoder = buildLoaded(kind, config);
    });
    after(() => encoder.dispose());

    it('pooled output matches in eval mode', () => {
      const input = fixtureTensor(io, 'input');
      const out = forward(encoder, input, {});
      assert.ok(maxAbsDiff(out.pooled, expected(io, 'pooled')) < 1e-4, `max abs error ${maxAbsDiff(out.pooled, expected(io, 'pooled'))}`);
      tf.dispose([input, out.pooled]);
    });

    it('attention maps match', () => {
      const input = fixtureTensor(io, 'input');
      const out = forward(encoder, input, { returnAttention: true });
      assert.strictEqual(out.attentions?.length, config.depth);
      out.attentions!.forEach((attention, index) => {
        const error = maxAbsDiff(attention, expected(io, `attention.${index}`));
        assert.ok(error < 1e-4, `layer ${index}: max abs error ${error}`);
      });
      tf.dispose([input, out.pooled, ...out.attentions!]);
    });

    it('offset gradients equal attention gradients', () => {
      const input = fixtureTensor(io, 'input');
      const probe = fixtureTensor(io, 'probe');
      const B = input.shape[0];
      const T = expected(io, 'attention.0').shape[2];
      const offsets = Array.from({ length: config.depth }, () => tf.zeros([B, config.heads, T, T]) as tf.Tensor4D);
      const before = tf.memory().numTensors;
      const grads = tf.grads((...zeros: tf.Tensor[]) => {
        const out = forward(encoder, input, { attentionOffsets: zeros as tf.Tensor4D[] });
        return tf.sum(tf.mul(out.pooled, probe));
      })(offsets);
      grads.forEach((grad, index) => {
        const error = relativeDiff(grad, expected(io, `attention_grad.${index}`));
        assert.ok(error < 1e-4, `layer ${index}: relative error ${error}`);
      });
      tf.dispose(grads);
      assert.strictEqual(tf.memory().numTensors, before, 'tensors leaked by the gradient pass');
      tf.dispose([input, probe, ...offsets]);
    });

    it('parameter gradients match', () => {
      const input = fixtureTensor(io, 'input');
      const probe = fixtureTensor(io, 'probe');
      const named = encoder.namedWeights();
      const trainable = [...named.entries()].filter(([, variable]) => variable.trainable);
      const { grads } = tf.variableGrads(
        () => tf.sum(tf.mul(forward(encoder, input, {}).pooled, probe)) as tf.Scalar,
        trainable.map(([, variable]) => variable),
      );
      for (const [name, variable] of trainable) {
        const error = relativeDiff(grads[variable.name], expected(io, `grad.${name}`));
        assert.ok(error < 1e-4, `${name}: relative error ${error}`);
      }
      tf.dispose(Object.values(grads));
      tf.dispose([input, probe]);
    });
  });
}

describe('ecg encoder in training mode', () => {
  it('uses batch statistics and updates running stats', () => {
    const io = readFixture('ecg_train_io.safetensors');
    // The fixture runs the reference in training mode without DropKey.
    const encoder = buildLoaded('ecg', { ...ECG, dropKeyRate: 0 }) as EcgEncoder;
    const input = fixtureTensor<tf.Tensor3D>(io, 'input');
    const out = encoder.forward(input, { training: true });
    const error = maxAbsDiff(out.pooled, expected(io, 'pooled'));
    assert.ok(error < 1e-4, `pooled max abs error ${error}`);
    for (const [name, variable] of encoder.namedWeights()) {
      if (variable.trainable) continue;
      const bufferError = maxAbsDiff(variable, expected(io, `after.${name}`));
      assert.ok(bufferError < 1e-5, `${name}: max abs error ${bufferError}`);
    }
    tf.dispose([input, out.pooled]);
    encoder.dispose();
  });
});

describe('DropKey', () => {
  const config: VitConfig = { ...VIT, depth: 1 };

  function zeroFraction(training: boolean, seed: number): number {
    const encoder = new VisionTransformer(config, { seed });
    const images = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const out = encoder.forward(images, { training, returnAttention: true });
    const values = out.attentions![0].dataSync();
    let zeros = 0;
    for (const value of values) if (value === 0) zeros++;
    tf.dispose([images, out.pooled, ...out.attentions!]);
    encoder.dispose();
    return zeros / values.length;
  }

  it('masks about 30% of logits in training', () => {
    // 4 x 4 x 17 x 17 = 4624 logits: the binomial standard deviation of the fraction is 0.007.
    const fraction = zeroFraction(true, 7);
    assert.ok(Math.abs(fraction - 0.3) < 0.03, `masked fraction ${fraction}`);
  });

  it('masks nothing in eval mode', () => {
    assert.strictEqual(zeroFraction(false, 7), 0);
  });

  it('repeats with the same seed', () => {
    const encoder = new VisionTransformer(config, { seed: 3 });
    const images = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const state = encoder.rng.getState();
    const first = encoder.forward(images, { training: true });
    encoder.rng.setState(state);
    const second = encoder.forward(images, { training: true });
    assert.strictEqual(maxAbsDiff(first.pooled, second.pooled), 0);
    tf.dispose([images, first.pooled, second.pooled]);
    encoder.dispose();
  });
});

describe('encoder weights and inputs', () => {
  it('rejects a weight of the wrong shape', () => {
    const encoder = new VisionTransformer(VIT);
    const weights = fixtureWeights(readFixture('vit_weights.safetensors'));
    weights.get('pos_embed')!.dispose();
    weights.set('pos_embed', tf.zeros([1, 5, 32]));
    assert.throws(() => encoder.loadNamedWeights(weights), /pos_embed: expected \[1, 17, 32\], got \[1, 5, 32\]/);
    tf.dispose([...weights.values()]);
    encoder.dispose();
  });

  it('names missing and unexpected weights', () => {
    const encoder = new VisionTransformer(VIT);
    const weights = fixtureWeights(readFixture('vit_weights.safetensors'));
    const qkv = weights.get('blocks.0.attn.qkv.weight')!;
    weights.delete('blocks.0.attn.qkv.weight');
    weights.set('blocks.0.attn.qkv.bias', tf.zeros([96]));
    assert.throws(() => encoder.loadNamedWeights(weights), /missing 1 \(blocks\.0\.attn\.qkv\.weight\), unexpected 1 \(blocks\.0\.attn\.qkv\.bias\)/);
    const report = encoder.loadNamedWeights(weights, { strict: false });
    assert.deepStrictEqual(report.missing, ['blocks.0.attn.qkv.weight']);
    assert.deepStrictEqual(report.unexpected, ['blocks.0.attn.qkv.bias']);
    tf.dispose([qkv, ...weights.values()]);
    encoder.dispose();
  });

  it('rejects an NCHW image batch', () => {
    const encoder = new VisionTransformer(VIT);
    const images = tf.zeros([1, 3, 32, 32]) as tf.Tensor4D;
    assert.throws(() => encoder.forward(images), /expected NHWC images \[B, 32, 32, 3\], got \[1, 3, 32, 32\]/);
    images.dispose();
    encoder.dispose();
  });

  it('rejects offsets of the wrong shape', () => {
    const encoder = new VisionTransformer({ ...VIT, depth: 1 });
    const images = tf.zeros([1, 32, 32, 3]) as tf.Tensor4D;
    const offsets = [tf.zeros([1, 4, 16, 16]) as tf.Tensor4D];
    assert.throws(() => encoder.forward(images, { attentionOffsets: offsets }), /expected \[1, 4, 17, 17\]/);
    tf.dispose([images, ...offsets]);
    encoder.dispose();
  });

  it('rejects invalid configs listing valid choices', () => {
    assert.throws(() => resolveMoreConfig({ preset: 'huge' as never }), /expected one of tiny, small, base/);
    assert.throws(() => resolveMoreConfig({ image: { patchSize: 15 } }), /image.patchSize 15: it must divide image.imageSize 224/);
    assert.throws(() => resolveMoreConfig({ image: { heads: 5 } }), /image.heads 5: it must divide image.width 768/);
    assert.throws(() => resolveMoreConfig({ ecg: { samples: 20 } }), /ecg.samples 20/);
    assert.throws(() => resolveMoreConfig({ imageHead: { kind: 'mlp' as never } }), /expected one of nonlinear, linear/);
    assert.throws(() => resolveMoreConfig({ temperature: { mode: 'auto' as never } }), /expected one of fixed, learnable/);
    assert.throws(() => resolveMoreConfig({ image: { patch: 16 } as never }), /Unknown field image.patch/);
  });
});
