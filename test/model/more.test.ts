import * as assert from 'assert';

import { tf } from '../../src/backend';
import { MoreModel, type MoreBatch, type MoreConfigInput, disposeMoreOutput, moreLoss } from '../../src/model';
import { TransformerTextEncoder, textPreset } from '../../src/model/text';

const CONFIG: MoreConfigInput = {
  preset: 'tiny',
  image: { imageSize: 64 },
  ecg: { samples: 100 },
};
const B = 4;

function buildModel(seed = 0, config: MoreConfigInput = CONFIG): MoreModel {
  return new MoreModel(config, new TransformerTextEncoder(textPreset('tiny'), { seed }), { seed });
}

function makeBatch(presence: { image?: boolean[]; ecg?: boolean[] } = {}): MoreBatch {
  return {
    images: tf.randomNormal([B, 64, 64, 3], 0, 1, 'float32', 11) as tf.Tensor4D,
    ecgs: tf.randomNormal([B, 12, 100], 0, 1, 'float32', 12) as tf.Tensor3D,
    inputIds: tf.tensor2d([[0, 5, 6, 2, 1], [0, 7, 8, 9, 2], [0, 10, 2, 1, 1], [0, 11, 12, 13, 2]], undefined, 'int32'),
    attentionMask: tf.tensor2d([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], undefined, 'int32'),
    imagePresent: presence.image,
    ecgPresent: presence.ecg,
  };
}

function disposeBatch(batch: MoreBatch): void {
  tf.dispose([batch.images, batch.ecgs, batch.inputIds, batch.attentionMask].filter((t) => t !== undefined) as tf.Tensor[]);
}

describe('MoreModel', () => {
  it('forward returns one embedding per present sample', () => {
    const model = buildModel();
    const batch = makeBatch({ image: [true, false, true, true], ecg: [false, true, true, true] });
    const output = model.forward(batch);
    assert.deepStrictEqual(output.text.shape, [B, 32]);
    assert.deepStrictEqual(output.image?.rows, [0, 2, 3]);
    assert.deepStrictEqual(output.image?.embedding.shape, [3, 32]);
    assert.deepStrictEqual(output.ecg?.rows, [1, 2, 3]);
    assert.deepStrictEqual(output.ecg?.embedding.shape, [3, 32]);
    disposeMoreOutput(output);
    disposeBatch(batch);
    model.dispose();
  });

  it('eval forward equals encoding the present rows', () => {
    const model = buildModel();
    const batch = makeBatch({ image: [true, false, true, true] });
    const output = model.forward(batch);
    const images = tf.gather(batch.images!, [0, 2, 3]) as tf.Tensor4D;
    const encoded = model.encodeImage(images);
    const difference = tf.tidy(() => tf.max(tf.abs(tf.sub(encoded.embedding, output.image!.embedding))).dataSync()[0]);
    assert.ok(difference < 1e-5, `difference ${difference}`);
    const text = model.encodeText(batch.inputIds, batch.attentionMask);
    const loss = model.loss(output);
    const expectedLoss = moreLoss({ text: text.embedding, image: output.image, ecg: output.ecg }, 0.02);
    assert.ok(Math.abs(loss.dataSync()[0] - expectedLoss.dataSync()[0]) < 1e-5);
    tf.dispose([images, encoded.pooled, encoded.embedding, text.pooled, text.embedding, loss, expectedLoss]);
    disposeMoreOutput(output);
    disposeBatch(batch);
    model.dispose();
  });

  it('training step reaches every tower and frees its tensors', () => {
    const model = buildModel(0, { ...CONFIG, temperature: { mode: 'learnable' } });
    const batch = makeBatch({ ecg: [true, true, false, true] });
    const variables = model.trainableVariables();
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() => {
      const output = model.forward(batch, { training: true });
      return model.loss(output);
    }, variables);
    assert.ok(Number.isFinite(value.dataSync()[0]));
    const names = new Map([...model.namedWeights()].map(([name, variable]) => [variable.name, name]));
    for (const variable of variables) {
      const name = names.get(variable.name)!;
      // The text encoder's pooler is not part of the mean-pooled output.
      if (name.startsWith('text_model.pooler.')) continue;
      const nonZero = tf.tidy(() => tf.any(tf.notEqual(grads[variable.name], 0)).dataSync()[0] === 1);
      assert.ok(nonZero, `zero gradient for ${name}`);
    }
    assert.ok(names.has(model.temperature.logitScale!.name));
    tf.dispose([value, ...Object.values(grads)]);
    assert.strictEqual(tf.memory().numTensors, before, 'tensors leaked by a training step');
    disposeBatch(batch);
    model.dispose();
  });

  it('names weights like the reference and loads them', () => {
    const first = buildModel(1);
    const second = buildModel(2);
    const names = [...first.namedWeights().keys()];
    for (const name of [
      'xray_model.vit_model.blocks.0.attn.qkv.weight',
      'xray_model.vit_model.patch_embed.proj.weight',
      'ecg_model.vit_model.patch_embed.conv1.0.weight',
      'ecg_model.vit_model.patch_embed.conv2.2.running_var',
      'projector_xray_text.layers.0.linear.weight',
      'projector_ecg_text.layers.2.bn.bias',
      'projector_text.layers.2.bn.running_mean',
    ]) {
      assert.ok(names.includes(name), `missing ${name}`);
    }
    assert.ok(names.some((name) => name.startsWith('text_model.')));

    const batch = makeBatch();
    second.loadNamedWeights(first.namedWeights());
    const a = first.encodeEcg(batch.ecgs!);
    const b = second.encodeEcg(batch.ecgs!);
    const difference = tf.tidy(() => tf.max(tf.abs(tf.sub(a.embedding, b.embedding))).dataSync()[0]);
    assert.strictEqual(difference, 0);
    tf.dispose([a.pooled, a.embedding, b.pooled, b.embedding]);
    disposeBatch(batch);
    first.dispose();
    second.dispose();
  });

  it('dispose frees every tensor', () => {
    const before = tf.memory().numTensors;
    const model = buildModel();
    model.dispose();
    assert.strictEqual(tf.memory().numTensors, before);
  });

  it('encodes through graphs like eager calls', () => {
    const graph = buildModel(3);
    const eager = new MoreModel(CONFIG, new TransformerTextEncoder(textPreset('tiny'), { seed: 3 }), { seed: 3, graphInference: false });
    const batch = makeBatch();
    const maxDifference = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
    const encodeAll = (model: MoreModel) => [
      model.encodeImage(batch.images!),
      model.encodeEcg(batch.ecgs!),
      model.encodeText(batch.inputIds, batch.attentionMask),
    ];
    // The first graph call traces, the second replays.
    for (const output of encodeAll(graph)) tf.dispose([output.pooled, output.embedding]);
    const before = tf.memory().numTensors;
    const replayed = encodeAll(graph);
    const reference = encodeAll(eager);
    replayed.forEach((output, index) => {
      assert.ok(maxDifference(output.embedding, reference[index].embedding) < 1e-5, `modality ${index}: embeddings differ`);
      assert.ok(maxDifference(output.pooled, reference[index].pooled) < 1e-5, `modality ${index}: pooled features differ`);
    });
    for (const output of [...replayed, ...reference]) tf.dispose([output.pooled, output.embedding]);
    assert.strictEqual(tf.memory().numTensors, before, 'graph encode calls leaked tensors');

    // After a weight changes, the next call traces again with the new value.
    const headBias = graph.imageHead.namedWeights().values().next().value as tf.Variable;
    headBias.assign(tf.add(headBias, 1));
    eager.imageHead.namedWeights().values().next().value!.assign(tf.add(headBias, 0));
    const [changed, changedReference] = [graph, eager].map((model) => model.encodeImage(batch.images!));
    assert.ok(maxDifference(changed.embedding, changedReference.embedding) < 1e-5, 'the graph kept a stale weight');

    // Under tf.grad the call runs eagerly, so the gradient reaches the input.
    const gradient = tf.grad((images: tf.Tensor) => tf.sum(graph.encodeImage(images as tf.Tensor4D).embedding))(batch.images!);
    assert.ok(tf.tidy(() => tf.max(tf.abs(gradient)).dataSync()[0]) > 0, 'no gradient reached the images');
    tf.dispose([changed.pooled, changed.embedding, changedReference.pooled, changedReference.embedding, gradient]);
    disposeBatch(batch);
    graph.dispose();
    eager.dispose();
  });

  it('rejects inconsistent batches', () => {
    const model = buildModel();
    const batch = makeBatch();
    assert.throws(() => model.forward({ ...batch, imagePresent: [true, false] }), /presence flags have length 2, expected 4/);
    assert.throws(
      () => model.forward({ inputIds: batch.inputIds, attentionMask: batch.attentionMask, ecgPresent: [true, true, true, true] }),
      /flags rows as having ecgs but gives no ecgs tensor/,
    );
    const three = tf.zeros([3, 64, 64, 3]) as tf.Tensor4D;
    assert.throws(() => model.forward({ ...batch, images: three }), /images has 3 rows, expected one per report \(4\)/);
    three.dispose();
    disposeBatch(batch);
    model.dispose();
  });
});

describe('model/more seeding', () => {
  it('builds the same weights from the same seed', () => {
    const build = (seed: number) => new MoreModel(
      { preset: 'tiny', image: { imageSize: 32 }, ecg: { samples: 50 } },
      new TransformerTextEncoder(textPreset('tiny'), { seed }),
      { seed },
    );
    const [first, second, other] = [build(5), build(5), build(6)];
    try {
      const a = first.namedWeights();
      const b = second.namedWeights();
      const c = other.namedWeights();
      let differs = false;
      for (const [name, variable] of a) {
        assert.deepStrictEqual(Array.from(variable.dataSync()), Array.from(b.get(name)!.dataSync()), name);
        if (name.startsWith('xray_model.') && variable.size > 1) {
          differs ||= Array.from(variable.dataSync()).some((v, i) => v !== c.get(name)!.dataSync()[i]);
        }
      }
      assert.ok(differs, 'a different seed gave the same X-ray weights');
    } finally {
      [first, second, other].forEach((model) => model.dispose());
    }
  });
});
