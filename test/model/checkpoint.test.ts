import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import {
  REFERENCE_CONVERSION_COMMAND,
  importReferenceMore,
  importTimmVit,
  loadCheckpoint,
  mapReferenceMoreKey,
  readCheckpointConfig,
  saveCheckpoint,
} from '../../src/model/checkpoint';
import { MoreModel, disposeMoreOutput } from '../../src/model/more';
import { type TensorToWrite, readSafetensors, writeSafetensors } from '../../src/model/safetensors';
import { TransformerTextEncoder, buildTextEncoder, describeTextEncoder, parseHuggingFaceConfig } from '../../src/model/text';
import { VisionTransformer } from '../../src/model/vit';
import { vitPreset } from '../../src/model/config';

// more-tiny was written by reference/model_text.py: a tiny model with the reference
// MultiModal's module names, saved with torch.save(state_dict) and converted by the
// documented one-line command, plus its outputs (eval mode) on a fixed batch.
const FIXTURE = path.join(__dirname, '..', 'fixtures', 'model', 'text', 'more-tiny');

function buildTinyMore(): MoreModel {
  const textJson = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'text-config.json'), 'utf8'));
  const text = new TransformerTextEncoder(parseHuggingFaceConfig(textJson, 'text-config.json'), { pooling: 'mean' });
  text.addLora();
  return new MoreModel({ preset: 'tiny', image: { imageSize: 64, patchSize: 16 } }, text);
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  assert.deepStrictEqual(a.shape, b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

function temporaryFolder(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'more-checkpoint-'));
}

describe('checkpoint', () => {
  it('maps reference names through one table', () => {
    const cases: [string, string | null][] = [
      ['text_model.base_model.model.encoder.layer.0.attention.self.query.base_layer.weight', 'text_model.encoder.layer.0.attention.self.query.weight'],
      ['text_model.base_model.model.encoder.layer.1.attention.self.value.lora_B.default.weight', 'text_model.encoder.layer.1.attention.self.value.lora_B.weight'],
      ['text_model.base_model.model.embeddings.position_ids', null],
      ['xray_model.vit_model.blocks.0.attn.qkv.weight', 'xray_model.vit_model.blocks.0.attn.qkv.weight'],
      ['projector_text.layers.2.bn.running_var', 'projector_text.layers.2.bn.running_var'],
    ];
    for (const [input, output] of cases) assert.strictEqual(mapReferenceMoreKey(input), output, input);
    assert.match(REFERENCE_CONVERSION_COMMAND, /torch\.load\('MODEL\.pth', map_location='cpu'\)/);
  });

  it('imports reference MoRE weights and matches outputs', () => {
    const model = buildTinyMore();
    const report = importReferenceMore(model, path.join(FIXTURE, 'reference.safetensors'));
    assert.strictEqual(report.loaded.length, model.namedWeights().size);
    assert.deepStrictEqual(report.missing, []);

    const { tensors } = readSafetensors(path.join(FIXTURE, 'expected.safetensors'));
    const get = (name: string): tf.Tensor => {
      const tensor = tensors.get(name);
      assert.ok(tensor !== undefined, `${name} missing from the fixture`);
      return tf.tensor(tensor.data, tensor.shape);
    };
    const xray = tf.transpose(get('xray'), [0, 2, 3, 1]) as tf.Tensor4D; // NCHW -> NHWC
    const ecg = get('ecg') as tf.Tensor3D;
    const ids = tf.cast(get('input_ids'), 'int32') as tf.Tensor2D;
    const mask = tf.cast(get('attention_mask'), 'int32') as tf.Tensor2D;
    const expectations = ['image_embedding', 'ecg_embedding', 'text_embedding'].map(get);

    const output = model.forward({ images: xray, ecgs: ecg, inputIds: ids, attentionMask: mask });
    assert.ok(output.image !== undefined);
    assert.ok(output.ecg !== undefined);
    const diffs = [
      maxAbsDiff(output.image.embedding, expectations[0]),
      maxAbsDiff(output.ecg.embedding, expectations[1]),
      maxAbsDiff(output.text, expectations[2]),
    ];
    assert.ok(diffs[0] < 1e-4, `image embedding differs by ${diffs[0]}`);
    assert.ok(diffs[1] < 1e-4, `ECG embedding differs by ${diffs[1]}`);
    assert.ok(diffs[2] < 1e-4, `text embedding differs by ${diffs[2]}`);
    disposeMoreOutput(output);
    tf.dispose([xray, ecg, ids, mask, ...expectations]);
    model.dispose();
  });

  it('rejects reference weights of another shape', () => {
    const text = new TransformerTextEncoder(
      parseHuggingFaceConfig(JSON.parse(fs.readFileSync(path.join(FIXTURE, 'text-config.json'), 'utf8')), 'text-config.json'),
      { pooling: 'mean' },
    );
    text.addLora({ r: 8 });
    const model = new MoreModel({ preset: 'tiny', image: { imageSize: 64, patchSize: 16 } }, text);
    const before = model.namedWeights().get('xray_model.vit_model.cls_token')?.dataSync().slice();
    assert.throws(
      () => importReferenceMore(model, path.join(FIXTURE, 'reference.safetensors')),
      /checkpoint "text_model\.base_model\.model\.encoder\.layer\.0\.attention\.self\.query\.lora_A\.default\.weight" has shape \[16, 64\] but model weight "text_model\.encoder\.layer\.0\.attention\.self\.query\.lora_A\.weight" expects \[8, 64\]/,
    );
    const after = model.namedWeights().get('xray_model.vit_model.cls_token')?.dataSync();
    assert.deepStrictEqual(after, before, 'a failed import leaves the weights unchanged');
    model.dispose();
  });

  it('saves and loads a checkpoint folder', () => {
    const folder = temporaryFolder();
    try {
      const model = buildTinyMore();
      importReferenceMore(model, path.join(FIXTURE, 'reference.safetensors'));
      const config = { preset: 'tiny', note: 'test' };
      saveCheckpoint(folder, model, config);
      assert.deepStrictEqual(readCheckpointConfig(folder), config);
      const copy = buildTinyMore();
      const report = loadCheckpoint(folder, copy);
      assert.strictEqual(report.loaded.length, model.namedWeights().size);
      const original = model.namedWeights();
      for (const [name, variable] of copy.namedWeights()) {
        assert.strictEqual(maxAbsDiff(variable, original.get(name) as tf.Variable), 0, name);
      }
      const other = new VisionTransformer(vitPreset('tiny'));
      assert.throws(() => loadCheckpoint(folder, other), /tensors have no model weight/);
      other.dispose();
      model.dispose();
      copy.dispose();
    } finally {
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });

  it('rebuilds a MoRE model from its saved config', () => {
    const folder = temporaryFolder();
    try {
      const model = buildTinyMore();
      importReferenceMore(model, path.join(FIXTURE, 'reference.safetensors'));
      const text = model.text as TransformerTextEncoder;
      saveCheckpoint(folder, model, { more: model.config, text: describeTextEncoder(text) });

      const saved = readCheckpointConfig(folder) as { more: MoreModel['config']; text: ReturnType<typeof describeTextEncoder> };
      const rebuilt = new MoreModel(saved.more, buildTextEncoder(saved.text, { randomInit: false }));
      loadCheckpoint(folder, rebuilt);
      const rebuiltText = rebuilt.text as TransformerTextEncoder;
      assert.strictEqual(rebuiltText.pooling, 'mean');
      assert.deepStrictEqual(rebuiltText.lora, text.lora);
      const ids = tf.tensor2d([[0, 5, 6, 2, 1]], undefined, 'int32');
      const mask = tf.tensor2d([[1, 1, 1, 1, 0]], undefined, 'int32');
      const first = model.encodeText(ids, mask);
      const second = rebuilt.encodeText(ids, mask);
      assert.strictEqual(maxAbsDiff(first.embedding, second.embedding), 0);
      tf.dispose([ids, mask, first.pooled, first.embedding, second.pooled, second.embedding]);
      model.dispose();
      rebuilt.dispose();
    } finally {
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });

  it('imports timm ViT weights by name', () => {
    const folder = temporaryFolder();
    try {
      const source = new VisionTransformer(vitPreset('tiny'), { seed: 1 });
      const tensors = new Map<string, TensorToWrite>();
      for (const [name, variable] of source.namedWeights()) {
        tensors.set(name, { dtype: 'F32', shape: [...variable.shape], data: variable.dataSync() as Float32Array });
      }
      // A timm classification checkpoint adds a head and, for vit_base_patch16_224, qkv biases.
      tensors.set('head.weight', { dtype: 'F32', shape: [10, 64], data: new Float32Array(640) });
      tensors.set('head.bias', { dtype: 'F32', shape: [10], data: new Float32Array(10) });
      const file = path.join(folder, 'model.safetensors');
      writeSafetensors(file, tensors);

      const target = new VisionTransformer(vitPreset('tiny'), { seed: 2 });
      const report = importTimmVit(target, file);
      assert.deepStrictEqual(report.skipped.map((entry) => entry.name), ['head.weight', 'head.bias']);
      const expected = source.namedWeights();
      for (const [name, variable] of target.namedWeights()) {
        assert.strictEqual(maxAbsDiff(variable, expected.get(name) as tf.Variable), 0, name);
      }

      tensors.set('blocks.0.attn.qkv.bias', { dtype: 'F32', shape: [192], data: new Float32Array(192).fill(0.5) });
      writeSafetensors(file, tensors);
      assert.throws(() => importTimmVit(target, file), /"blocks\.0\.attn\.qkv\.bias" exists but the model builds qkv without a bias/);
      const dropped = importTimmVit(target, file, { allowDroppedQkvBias: true });
      assert.ok(dropped.skipped.some((entry) => entry.name === 'blocks.0.attn.qkv.bias'));
      source.dispose();
      target.dispose();
    } finally {
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });
});
