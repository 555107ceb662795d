import * as assert from 'assert';

import { tf } from '../../src/backend';
import { type HeadConfig, ProjectionHead, moreLoss } from '../../src/model';
import { expected, fixtureTensor, fixtureWeights, maxAbsDiff, readFixture, relativeDiff } from './vision-fixtures';

// Must match HEAD in reference/model_vision.py.
const HEAD: HeadConfig = { kind: 'nonlinear', inputDim: 32, hiddenDim: 32, outputDim: 16 };
const MODALITIES = ['image', 'ecg', 'text'] as const;

describe('projection heads parity with PyTorch', () => {
  const weights = readFixture('heads_weights.safetensors');
  const io = readFixture('heads_io.safetensors');
  const ecgRows = JSON.parse(io.metadata.ecg_rows) as number[];

  function buildHeads(): Record<(typeof MODALITIES)[number], ProjectionHead> {
    const heads = {
      image: new ProjectionHead(HEAD),
      ecg: new ProjectionHead(HEAD),
      text: new ProjectionHead(HEAD),
    };
    for (const name of MODALITIES) {
      const loaded = fixtureWeights(weights, `${name}.`);
      heads[name].loadNamedWeights(loaded);
      tf.dispose([...loaded.values()]);
    }
    return heads;
  }

  it('names weights like the reference', () => {
    const head = new ProjectionHead(HEAD);
    assert.deepStrictEqual([...head.namedWeights().keys()], [
      'layers.0.linear.weight',
      'layers.0.bn.weight',
      'layers.0.bn.bias',
      'layers.0.bn.running_mean',
      'layers.0.bn.running_var',
      'layers.0.bn.num_batches_tracked',
      'layers.2.linear.weight',
      'layers.2.bn.weight',
      'layers.2.bn.bias',
      'layers.2.bn.running_mean',
      'layers.2.bn.running_var',
      'layers.2.bn.num_batches_tracked',
    ]);
    head.dispose();
  });

  it('matches embeddings, loss, gradients and running stats in training', () => {
    const heads = buildHeads();
    const text = fixtureTensor<tf.Tensor2D>(io, 'text_features');
    const image = fixtureTensor<tf.Tensor2D>(io, 'image_features');
    const ecgAll = fixtureTensor<tf.Tensor2D>(io, 'ecg_features');
    const ecg = tf.gather(ecgAll, ecgRows) as tf.Tensor2D;
    const before = tf.memory().numTensors;

    const trainable = MODALITIES.flatMap((name) =>
      [...heads[name].namedWeights().entries()]
        .filter(([, variable]) => variable.trainable)
        .map(([key, variable]) => ({ key: `${name}.${key}`, variable })),
    );
    let embeddings: tf.Tensor2D[] = [];
    const { value, grads } = tf.variableGrads(() => {
      const textEmbedding = heads.text.apply(text, true);
      const imageEmbedding = heads.image.apply(image, true);
      const ecgEmbedding = heads.ecg.apply(ecg, true);
      embeddings = [textEmbedding, imageEmbedding, ecgEmbedding].map((t) => tf.keep(t.clone()));
      return moreLoss(
        { text: textEmbedding, image: { embedding: imageEmbedding, rows: [0, 1, 2, 3] }, ecg: { embedding: ecgEmbedding, rows: ecgRows } },
        0.02,
      );
    }, trainable.map(({ variable }) => variable));

    // The loss is about 42 here (temperature 0.02), so float32 rounding alone reaches 1e-5;
    // loss.test.ts checks the loss to 1e-5 on the reference's own embeddings.
    const reference = expected(io, 'loss').data[0];
    const lossError = Math.abs(value.dataSync()[0] - reference) / Math.abs(reference);
    assert.ok(lossError < 1e-6, `loss relative error ${lossError}`);
    ['text_embedding', 'image_embedding', 'ecg_embedding'].forEach((name, index) => {
      const error = maxAbsDiff(embeddings[index], expected(io, name));
      assert.ok(error < 1e-4, `${name}: max abs error ${error}`);
    });
    for (const { key, variable } of trainable) {
      const error = relativeDiff(grads[variable.name], expected(io, `grad.${key}`));
      assert.ok(error < 1e-4, `gradient of ${key}: relative error ${error}`);
    }
    for (const name of MODALITIES) {
      for (const [key, variable] of heads[name].namedWeights()) {
        if (variable.trainable) continue;
        const error = maxAbsDiff(variable, expected(io, `after.${name}.${key}`));
        assert.ok(error < 1e-5, `${name}.${key} after one step: max abs error ${error}`);
      }
    }
    tf.dispose([value, ...Object.values(grads), ...embeddings]);
    assert.strictEqual(tf.memory().numTensors, before, 'tensors leaked by the training pass');
    tf.dispose([text, image, ecgAll, ecg]);
    for (const head of Object.values(heads)) head.dispose();
  });

  it('linear head matches in eval mode', () => {
    const head = new ProjectionHead({ ...HEAD, kind: 'linear' });
    const loaded = fixtureWeights(weights, 'linear.');
    assert.deepStrictEqual([...head.namedWeights().keys()].sort(), [...loaded.keys()].sort());
    head.loadNamedWeights(loaded);
    const text = fixtureTensor<tf.Tensor2D>(io, 'text_features');
    const out = head.apply(text);
    assert.ok(maxAbsDiff(out, expected(io, 'linear_embedding')) < 1e-5);
    tf.dispose([text, out, ...loaded.values()]);
    head.dispose();
  });

  it('uses running statistics in eval mode', () => {
    const heads = buildHeads();
    const text = fixtureTensor<tf.Tensor2D>(io, 'text_features');
    const counts = heads.text.namedWeights().get('layers.0.bn.num_batches_tracked')!;
    const first = heads.text.apply(text.slice([0, 0], [1, 32]));
    const whole = heads.text.apply(text);
    // In eval mode a row's embedding does not depend on the rest of the batch.
    assert.ok(maxAbsDiff(first, whole.slice([0, 0], [1, 16])) < 1e-6);
    assert.strictEqual(counts.dataSync()[0], 0);
    tf.dispose([text, first, whole]);
    for (const head of Object.values(heads)) head.dispose();
  });

  it('rejects features of the wrong width', () => {
    const head = new ProjectionHead(HEAD);
    const features = tf.zeros([2, 8]) as tf.Tensor2D;
    assert.throws(() => head.apply(features), /expected features \[B, 32\], got \[2, 8\]/);
    features.dispose();
    head.dispose();
  });
});
