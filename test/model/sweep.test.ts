import * as assert from 'assert';

import { tf } from '../../src/backend';
import {
  EcgEncoder,
  PRESET_NAMES,
  type PresetName,
  ProjectionHead,
  VisionTransformer,
  ecgTokenCount,
  headPreset,
  infoNce,
  ecgPreset,
  vitPreset,
} from '../../src/model';

// Inputs that keep the sweep fast. The architecture (depth, width, heads, MLP,
// convolutions) stays the preset's own. Only the image size and ECG length shrink,
// and that changes nothing but the length of the position embedding.
const INPUT_SIZES: Record<PresetName, { imageSize: number; samples: number }> = {
  tiny: { imageSize: 224, samples: 1000 },
  small: { imageSize: 32, samples: 50 },
  base: { imageSize: 32, samples: 50 },
};
const BATCH = 3;

function allFinite(tensor: tf.Tensor): boolean {
  return tf.tidy(() => tf.all(tf.isFinite(tensor)).dataSync()[0] === 1);
}

describe('preset sweep', () => {
  for (const name of PRESET_NAMES) {
    it(`${name}: shapes, finite values, gradients, no leaks`, () => {
      const baseline = tf.memory().numTensors;
      const { imageSize, samples } = INPUT_SIZES[name];
      const image = new VisionTransformer({ ...vitPreset(name), imageSize }, { seed: 1 });
      const ecgConfig = { ...ecgPreset(name), samples };
      const ecg = new EcgEncoder(ecgConfig, { seed: 2 });
      const imageHead = new ProjectionHead(headPreset(name));
      const ecgHead = new ProjectionHead(headPreset(name));
      const width = vitPreset(name).width;
      const outputDim = headPreset(name).outputDim;

      const images = tf.randomNormal([BATCH, imageSize, imageSize, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
      const signals = tf.randomNormal([BATCH, 12, samples], 0, 1, 'float32', 4) as tf.Tensor3D;
      const variables = [image, ecg, imageHead, ecgHead].flatMap((part) => part.trainableVariables());
      const names = new Map<string, string>();
      for (const [prefix, part] of [['image.', image], ['ecg.', ecg], ['imageHead.', imageHead], ['ecgHead.', ecgHead]] as const) {
        for (const [key, variable] of part.namedWeights()) names.set(variable.name, prefix + key);
      }

      const before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(() => {
        const imageOut = image.forward(images, { training: true });
        const ecgOut = ecg.forward(signals, { training: true });
        assert.deepStrictEqual(imageOut.pooled.shape, [BATCH, width]);
        assert.deepStrictEqual(ecgOut.pooled.shape, [BATCH, width]);
        const imageEmbedding = imageHead.apply(imageOut.pooled, true);
        const ecgEmbedding = ecgHead.apply(ecgOut.pooled, true);
        assert.deepStrictEqual(imageEmbedding.shape, [BATCH, outputDim]);
        assert.ok(allFinite(imageEmbedding), 'X-ray embedding has non-finite values');
        assert.ok(allFinite(ecgEmbedding), 'ECG embedding has non-finite values');
        return infoNce(imageEmbedding, ecgEmbedding, 0.02);
      }, variables);

      assert.ok(allFinite(value), 'loss is not finite');
      for (const variable of variables) {
        const grad = grads[variable.name];
        const nonZero = tf.tidy(() => tf.any(tf.notEqual(grad, 0)).dataSync()[0] === 1);
        assert.ok(nonZero, `zero gradient for ${names.get(variable.name)}`);
        assert.ok(allFinite(grad), `non-finite gradient for ${names.get(variable.name)}`);
      }
      tf.dispose([value, ...Object.values(grads)]);
      assert.strictEqual(tf.memory().numTensors, before, 'tensors leaked by a forward and backward pass');

      assert.strictEqual(ecg.tokenCount, ecgTokenCount(ecgConfig));
      if (name === 'base') {
        // timm's vit_base_patch16_224 trunk has 85,798,656 parameters with qkv bias, and MoRE
        // drops the 12 x 2304 qkv biases. At 224 x 224 the position embedding adds
        // (196 - 4) x 768 more than at this test's 32 x 32.
        assert.strictEqual(image.parameterCount() + 192 * 768, 85_798_656 - 12 * 2304);
        // About 86.2 M for the ECG trunk with its 197 positions.
        const ecgAtFullLength = ecg.parameterCount() + (196 - ecg.tokenCount) * 768;
        assert.strictEqual(Math.round(ecgAtFullLength / 1e5) / 10, 86.2);
      }

      tf.dispose([images, signals]);
      for (const part of [image, ecg, imageHead, ecgHead]) part.dispose();
      assert.strictEqual(tf.memory().numTensors, baseline, 'dispose() left tensors behind');
    });
  }
});
