// Parity of importTimmVit with timm itself. reference/model_timm.py saved tiny random timm
// VisionTransformer state_dicts and timm's eval-mode outputs under test/fixtures/model/timm/.
import * as assert from 'assert';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import { importTimmVit } from '../../src/model/checkpoint';
import type { VitConfig } from '../../src/model/config';
import { readSafetensors } from '../../src/model/safetensors';
import type { EncoderOutput } from '../../src/model/types';
import { VisionTransformer } from '../../src/model/vit';

const FIXTURE_DIR = path.join(__dirname, '..', 'fixtures', 'model', 'timm');
const TOLERANCE = 1e-4;

interface Outputs {
  images: tf.Tensor4D;
  expected: Map<string, { shape: number[]; data: Float32Array }>;
  timmConfig: Record<string, unknown>;
}

/** Reads the input batch, timm's outputs and the timm config recorded in the file metadata. */
function readOutputs(name: string): Outputs {
  const { tensors, metadata } = readSafetensors(path.join(FIXTURE_DIR, `${name}_outputs.safetensors`));
  const images = tensors.get('images_nhwc');
  if (images === undefined) throw new Error(`${name}_outputs.safetensors has no images_nhwc tensor`);
  return {
    images: tf.tensor4d(images.data, images.shape as [number, number, number, number]),
    expected: tensors,
    timmConfig: JSON.parse(metadata.timm_config) as Record<string, unknown>,
  };
}

/** Translates the keyword arguments given to timm's VisionTransformer into our config. */
function vitConfigFromTimm(timm: Record<string, unknown>, qkvBias: boolean): VitConfig {
  const width = timm.embed_dim as number;
  return {
    imageSize: timm.img_size as number,
    patchSize: timm.patch_size as number,
    channels: timm.in_chans as number,
    width,
    depth: timm.depth as number,
    heads: timm.num_heads as number,
    mlpDim: Math.round(width * (timm.mlp_ratio as number)),
    layerNormEps: 1e-6,
    dropKeyRate: 0,
    qkvBias,
  };
}

function maxAbsDiff(actual: tf.Tensor, expected: { shape: number[]; data: Float32Array } | undefined, name: string): number {
  if (expected === undefined) throw new Error(`Fixture has no tensor ${name}`);
  assert.deepStrictEqual(actual.shape, expected.shape, `${name} shape`);
  const values = actual.dataSync();
  let worst = 0;
  for (let i = 0; i < values.length; i++) worst = Math.max(worst, Math.abs(values[i] - expected.data[i]));
  return worst;
}

function disposeOutput(output: EncoderOutput): void {
  output.pooled.dispose();
  output.tokens?.dispose();
}

/** Runs the encoder in eval mode and returns the max abs differences from timm's features and pooled output. */
function compare(encoder: VisionTransformer, outputs: Outputs, suffix = ''): { features: number; pooled: number } {
  const output = encoder.forward(outputs.images, { returnTokens: true });
  try {
    return {
      features: maxAbsDiff(output.tokens as tf.Tensor3D, outputs.expected.get(`features${suffix}`), `features${suffix}`),
      pooled: maxAbsDiff(output.pooled, outputs.expected.get(`pooled${suffix}`), `pooled${suffix}`),
    };
  } finally {
    disposeOutput(output);
  }
}

describe('model/checkpoint timm ViT parity', () => {
  const checkpoint = (name: string): string => path.join(FIXTURE_DIR, `${name}.safetensors`);

  it('matches timm without qkv bias', () => {
    const outputs = readOutputs('vit_no_qkv_bias');
    assert.strictEqual(outputs.timmConfig.qkv_bias, false);
    const encoder = new VisionTransformer(vitConfigFromTimm(outputs.timmConfig, false), { seed: 3 });
    try {
      // Before the import the random weights are far from timm's, so the comparison can fail.
      assert.ok(compare(encoder, outputs).features > 0.1, 'a fresh encoder already matches timm');

      const report = importTimmVit(encoder, checkpoint('vit_no_qkv_bias'));
      assert.strictEqual(report.loaded.length, encoder.namedWeights().size);
      assert.deepStrictEqual(report.skipped, []);
      assert.deepStrictEqual(report.missing, []);

      const before = tf.memory().numTensors;
      const difference = compare(encoder, outputs);
      assert.strictEqual(tf.memory().numTensors, before, 'the forward pass leaked tensors');
      assert.ok(difference.features < TOLERANCE, `forward_features differs by ${difference.features}`);
      assert.ok(difference.pooled < TOLERANCE, `pooled output differs by ${difference.pooled}`);
    } finally {
      encoder.dispose();
      outputs.images.dispose();
    }
  });

  it('matches timm with qkv bias', () => {
    const outputs = readOutputs('vit_qkv_bias');
    assert.strictEqual(outputs.timmConfig.qkv_bias, true);
    const encoder = new VisionTransformer(vitConfigFromTimm(outputs.timmConfig, true), { seed: 3 });
    try {
      const report = importTimmVit(encoder, checkpoint('vit_qkv_bias'));
      assert.deepStrictEqual(report.skipped.map((entry) => entry.name).sort(), ['head.bias', 'head.weight']);
      assert.ok(report.loaded.includes('blocks.1.attn.qkv.bias'), 'qkv bias not loaded');

      const difference = compare(encoder, outputs);
      assert.ok(difference.features < TOLERANCE, `forward_features differs by ${difference.features}`);
      assert.ok(difference.pooled < TOLERANCE, `pooled output differs by ${difference.pooled}`);
    } finally {
      encoder.dispose();
      outputs.images.dispose();
    }
  });

  it('rejects qkv bias unless allowed', () => {
    const outputs = readOutputs('vit_qkv_bias');
    const encoder = new VisionTransformer(vitConfigFromTimm(outputs.timmConfig, false), { seed: 3 });
    try {
      const cls = encoder.namedWeights().get('cls_token') as tf.Variable;
      const clsBefore = Array.from(cls.dataSync());
      assert.throws(
        () => importTimmVit(encoder, checkpoint('vit_qkv_bias')),
        /"blocks\.0\.attn\.qkv\.bias" exists but the model builds qkv without a bias/,
      );
      assert.deepStrictEqual(Array.from(cls.dataSync()), clsBefore, 'a rejected import changed the weights');

      const report = importTimmVit(encoder, checkpoint('vit_qkv_bias'), { allowDroppedQkvBias: true });
      assert.deepStrictEqual(
        report.skipped.map((entry) => entry.name).sort(),
        ['blocks.0.attn.qkv.bias', 'blocks.1.attn.qkv.bias', 'head.bias', 'head.weight'],
      );

      // Dropping the bias computes what timm computes with every qkv bias set to zero.
      const dropped = compare(encoder, outputs, '_without_qkv_bias');
      assert.ok(dropped.features < TOLERANCE, `forward_features differs by ${dropped.features}`);
      assert.ok(dropped.pooled < TOLERANCE, `pooled output differs by ${dropped.pooled}`);
      const trained = compare(encoder, outputs);
      assert.ok(trained.pooled > 0.1, 'dropping the qkv bias left the trained output unchanged');
    } finally {
      encoder.dispose();
      outputs.images.dispose();
    }
  });
});
