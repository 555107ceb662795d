import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import { EcgEncoder, MoreModel, VisionTransformer, ecgPreset, vitPreset } from '../../src/model';
import { TransformerTextEncoder, textPreset } from '../../src/model/text';
import type { EncoderForwardOptions } from '../../src/model/types';
import {
  attentionRelevance,
  explainClasses,
  explainMoreSample,
  grayscaleImage,
  toExplanationBundle,
  cosineTarget,
  deletionTest,
  explainEcg,
  explainImage,
  explainText,
  receptiveFields,
  relevanceFromAttention,
  spreadOverSamples,
  upsampleBilinear,
} from '../../src/tasks/explain';
import { validateExplanationBundle } from '../../src/viz/mime';

// Produced by reference/eval_explain.py with PyTorch autograd and numpy.
const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/tasks/explain.json'), 'utf8'));
const stack = fixture.stack;

function assertAllClose(actual: ArrayLike<number>, expected: number[], tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} values, expected ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const limit = tolerance * Math.max(1, Math.abs(expected[i]));
    assert.ok(Math.abs(actual[i] - expected[i]) <= limit, `${what}[${i}] = ${actual[i]}, expected ${expected[i]}`);
  }
}

/**
 * Runs the attention stack of reference/eval_explain.py. In each layer softmax(q k^T / sqrt(d))
 * plus the offset mixes the values, and x += tanh(mixed @ Wo). The embedding is token 0.
 */
function stackForward(input: tf.Tensor3D, options: EncoderForwardOptions): { embedding: tf.Tensor2D; attentions?: tf.Tensor4D[] } {
  const [B, T, C] = input.shape;
  const H = stack.heads as number;
  const D = C / H;
  let hidden: tf.Tensor3D = input;
  const attentions: tf.Tensor4D[] = [];
  (stack.qkvWeights as number[][][]).forEach((qkvWeight, layer) => {
    const flat = tf.reshape(hidden, [B * T, C]) as tf.Tensor2D;
    const qkv = tf.transpose(tf.reshape(tf.matMul(flat, tf.tensor2d(qkvWeight)), [B, T, 3, H, D]), [2, 0, 3, 1, 4]);
    const [q, k, v] = tf.unstack(qkv) as tf.Tensor4D[];
    let attention = tf.softmax(tf.div(tf.matMul(q, k, false, true), Math.sqrt(D))) as tf.Tensor4D;
    if (options.returnAttention) attentions.push(attention);
    if (options.attentionOffsets) attention = tf.add(attention, options.attentionOffsets[layer]);
    const mixed = tf.reshape(tf.transpose(tf.matMul(attention, v), [0, 2, 1, 3]), [B * T, C]) as tf.Tensor2D;
    const update = tf.tanh(tf.matMul(mixed, tf.tensor2d(stack.outWeights[layer])));
    hidden = tf.add(hidden, tf.reshape(update, [B, T, C])) as tf.Tensor3D;
  });
  const embedding = tf.reshape(tf.slice(hidden, [0, 0, 0], [B, 1, C]), [B, C]) as tf.Tensor2D;
  return options.returnAttention ? { embedding, attentions } : { embedding };
}

describe('tasks/explain', () => {
  describe('relevance rule', () => {
    it('matches numpy on given maps and gradients', () => {
      const attentions = (stack.attentions as number[][][][][]).map((a) => tf.tensor4d(a));
      const gradients = (stack.gradients as number[][][][][]).map((g) => tf.tensor4d(g));
      const relevance = relevanceFromAttention(attentions, gradients);
      assertAllClose(relevance.dataSync(), (stack.relevance as number[][][]).flat(2), 1e-5, 'R');
      tf.dispose([...attentions, ...gradients, relevance]);
    });

    it('rejects mismatched layer counts', () => {
      const a = tf.ones([1, 1, 2, 2]) as tf.Tensor4D;
      assert.throws(() => relevanceFromAttention([a, a], [a]), /1 gradients for 2 attention maps/);
      a.dispose();
    });
  });

  describe('gradients through attention offsets', () => {
    for (const sample of [0, 1]) {
      it(`match PyTorch autograd for sample ${sample}`, () => {
        const before = tf.memory().numTensors;
        const input = tf.tensor3d([stack.x[sample]]);
        const result = attentionRelevance(stackForward, input, cosineTarget(stack.reference));
        input.dispose();
        assert.equal(result.tokens, 5);
        assertAllClose(result.matrix, (stack.relevance[sample] as number[][]).flat(), 1e-4, `R of sample ${sample}`);
        assert.equal(tf.memory().numTensors, before, 'tensors leaked');
      });
    }

    it('reports the target value', () => {
      const targets = [0, 1].map((sample) => {
        const input = tf.tensor3d([stack.x[sample]]);
        const { target } = attentionRelevance(stackForward, input, cosineTarget(stack.reference));
        input.dispose();
        return target;
      });
      assert.ok(Math.abs(targets[0] + targets[1] - stack.target) < 1e-5, `targets ${targets}, sum ${stack.target}`);
    });

    it('rejects a batch of two', () => {
      const input = tf.tensor3d(stack.x);
      assert.throws(() => attentionRelevance(stackForward, input, cosineTarget(stack.reference)), /expected one sample/);
      input.dispose();
    });
  });

  describe('input coordinates', () => {
    it('maps ECG tokens to the samples PyTorch shows', () => {
      const data = fixture.receptive;
      const spans = receptiveFields(data.samples, data.layers);
      assert.equal(spans.length, data.tokens);
      spans.forEach((span, token) => {
        const covered = (data.coverage[token] as number[]).flatMap((c, s) => (c === 1 ? [s] : []));
        assert.equal(span.start, covered[0], `start of token ${token}`);
        assert.equal(span.end, covered[covered.length - 1] + 1, `end of token ${token}`);
      });
      assertAllClose(spreadOverSamples(data.tokenRelevance, spans, data.samples), data.sampleRelevance, 1e-12, 'per sample');
    });

    it('gives 196 tokens for a 1000-sample ECG', () => {
      const spans = receptiveFields(1000, [{ kernel: 5, stride: 5 }, { kernel: 5, stride: 1 }]);
      assert.equal(spans.length, 196);
      assert.deepEqual(spans[195], { start: 975, end: 1000 });
    });

    it('upsamples a 3 x 4 grid like PyTorch', () => {
      const data = fixture.upsample;
      const image = upsampleBilinear(data.grid, data.rows, data.cols, data.height, data.width);
      assertAllClose(image, data.image, 1e-5, 'pixels');
    });
  });

  describe('tiny MoRE encoders', () => {
    const imageConfig = { ...vitPreset('tiny'), imageSize: 64, patchSize: 16, depth: 2 };
    let vit: VisionTransformer;
    let ecg: EcgEncoder;
    before(() => {
      vit = new VisionTransformer(imageConfig, { seed: 3 });
      ecg = new EcgEncoder({ ...ecgPreset('tiny'), samples: 250, convChannels: 8 }, { seed: 4 });
    });
    after(() => {
      vit.dispose();
      ecg.dispose();
    });
    const imageForward = (x: tf.Tensor4D, options: EncoderForwardOptions) => {
      const output = vit.forward(x, options);
      return { embedding: output.pooled, attentions: output.attentions };
    };

    it('explains an X-ray on its patch grid', () => {
      const before = tf.memory().numTensors;
      const image = tf.randomNormal([1, 64, 64, 3], 0, 1, 'float32', 11) as tf.Tensor4D;
      const reference = Array.from({ length: vit.width }, (_, i) => Math.sin(i));
      const result = explainImage(imageForward, image, cosineTarget(reference), 16);
      image.dispose();
      assert.equal(result.rows, 4);
      assert.equal(result.cols, 4);
      assert.equal(result.patchRelevance.length, 16);
      assert.equal(result.pixelRelevance.length, 64 * 64);
      assert.ok(result.patchRelevance.every(Number.isFinite), 'finite patch relevance');
      assert.ok(result.patchRelevance.some((v) => v > 0), 'some patch is relevant');
      assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    });

    it('matches finite differences of the offsets', () => {
      // d target / d offset at one attention entry, by central differences on the real ViT.
      const image = tf.randomNormal([1, 64, 64, 3], 0, 1, 'float32', 12) as tf.Tensor4D;
      const reference = Array.from({ length: vit.width }, (_, i) => Math.cos(i));
      const target = cosineTarget(reference);
      const shape: [number, number, number, number] = [1, imageConfig.heads, 17, 17];
      const gradients = tf.grads((...offsets: tf.Tensor[]) =>
        target(vit.forward(image, { attentionOffsets: offsets as tf.Tensor4D[] }).pooled))([tf.zeros(shape), tf.zeros(shape)]);
      const analytic = gradients[1].bufferSync().get(0, 1, 0, 5);
      const eps = 1e-2;
      const evaluate = (delta: number): number => tf.tidy(() => {
        const bump = tf.buffer(shape);
        bump.set(delta, 0, 1, 0, 5);
        const offsets = [tf.zeros(shape), bump.toTensor()] as tf.Tensor4D[];
        return target(vit.forward(image, { attentionOffsets: offsets }).pooled).dataSync()[0];
      });
      const numeric = (evaluate(eps) - evaluate(-eps)) / (2 * eps);
      tf.dispose([image, ...gradients]);
      assert.ok(Math.abs(analytic - numeric) < 1e-3 + 0.05 * Math.abs(numeric), `analytic ${analytic}, numeric ${numeric}`);
    });

    it('explains an ECG over time', () => {
      const signals = tf.randomNormal([1, 12, 250], 0, 1, 'float32', 13) as tf.Tensor3D;
      const reference = Array.from({ length: ecg.width }, (_, i) => Math.sin(2 * i));
      const forward = (x: tf.Tensor3D, options: EncoderForwardOptions) => {
        const output = ecg.forward(x, options);
        return { embedding: output.pooled, attentions: output.attentions };
      };
      const result = explainEcg(forward, signals, cosineTarget(reference), [{ kernel: 5, stride: 5 }, { kernel: 5, stride: 1 }]);
      signals.dispose();
      assert.equal(result.tokenRelevance.length, 46);
      assert.equal(result.sampleRelevance.length, 250);
      const tokenSum = result.tokenRelevance.reduce((a, b) => a + b, 0);
      const sampleSum = result.sampleRelevance.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(tokenSum - sampleSum) < 1e-4 * Math.max(1, Math.abs(tokenSum)), 'relevance is conserved');
    });
  });

  describe('report tokens', () => {
    it('leaves out special tokens and padding', () => {
      // The stack acts as a text encoder here, and the ids select rows of a fixed embedding table.
      const table = tf.tensor2d(stack.x[0]);
      const forward = (ids: tf.Tensor2D, _mask: tf.Tensor2D, options: EncoderForwardOptions) =>
        stackForward(tf.expandDims(tf.gather(table, tf.reshape(ids, [-1])), 0) as tf.Tensor3D, options);
      const ids = tf.tensor2d([[0, 1, 2, 3, 4]], undefined, 'int32');
      const mask = tf.tensor2d([[1, 1, 1, 1, 0]], undefined, 'int32');
      const result = explainText(forward, ids, mask, cosineTarget(stack.reference), {
        tokens: ['<s>', ' pleural', ' effusion', '</s>', '<pad>'],
        specialTokens: [true, false, false, true, true],
      });
      assert.deepEqual(result.tokens, [' pleural', ' effusion']);
      assert.deepEqual(result.positions, [1, 2]);
      const full = attentionRelevance((x: tf.Tensor3D, o) => stackForward(x, o), tf.expandDims(table, 0) as tf.Tensor3D,
        cosineTarget(stack.reference));
      // Mean pooling over the four real tokens: the mean of R's rows 0..3 at columns 1 and 2.
      for (const [k, column] of [[0, 1], [1, 2]]) {
        let sum = 0;
        for (let row = 0; row < 4; row++) sum += full.matrix[row * 5 + column];
        assert.ok(Math.abs(result.relevance[k] - sum / 4) < 1e-5, `token ${column}`);
      }
      tf.dispose([table, ids, mask]);
    });
  });

  describe('deletion test', () => {
    // A linear "encoder" whose embedding reads the image through fixed weights, so the patches with
    // the largest weights are the truly relevant ones.
    const height = 32;
    const width = 48;
    const patchSize = 8;
    const weights = tf.tidy(() => {
      const ramp = tf.linspace(0, 1, height * width).reshape([height * width, 1]);
      return tf.concat([tf.pow(ramp, 4), tf.ones([height * width, 1]).mul(0.05)], 1) as tf.Tensor2D;
    });
    const embed = (images: tf.Tensor4D) => tf.matMul(tf.reshape(tf.mean(images, 3), [images.shape[0], height * width]), weights) as tf.Tensor2D;
    after(() => weights.dispose());

    it('drops more for relevant patches than random ones', () => {
      const image = tf.ones([1, height, width, 3]) as tf.Tensor4D;
      // Relevance of a patch: the sum of its weights, which grows towards the last rows.
      const weightValues = weights.arraySync().map((row) => row[0]);
      const rows = height / patchSize;
      const cols = width / patchSize;
      const relevance = Array.from({ length: rows * cols }, (_, p) => {
        let sum = 0;
        for (let y = 0; y < patchSize; y++) for (let x = 0; x < patchSize; x++) {
          sum += weightValues[(Math.floor(p / cols) * patchSize + y) * width + (p % cols) * patchSize + x];
        }
        return sum;
      });
      const before = tf.memory().numTensors;
      const result = deletionTest({ embed, image, reference: [1, 0], patchRelevance: relevance, patchSize, seed: 5 });
      assert.equal(tf.memory().numTensors, before, 'tensors leaked');
      assert.equal(result.maskedPatches, 2);
      assert.deepEqual(result.relevantPatches, [23, 22]);
      assert.ok(result.relevantDrop > result.randomDrop, `relevant ${result.relevantDrop}, random ${result.randomDrop}`);
      image.dispose();
    });

    it('measures the drop of an independently masked image', () => {
      const image = tf.randomUniform([1, height, width, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
      const relevance = new Array<number>(24).fill(0);
      relevance[7] = 2;
      relevance[0] = 1;
      const result = deletionTest({ embed, image, reference: [1, 0], patchRelevance: relevance, patchSize, randomTrials: 0 });
      // Patch 7 is row 1, column 1 and patch 0 is row 0, column 0: blank both by hand and embed.
      const expected = tf.tidy(() => {
        const keep = tf.buffer([1, height, width, 1]);
        for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) keep.set(1, 0, y, x, 0);
        for (const [top, left] of [[8, 8], [0, 0]]) {
          for (let y = top; y < top + 8; y++) for (let x = left; x < left + 8; x++) keep.set(0, 0, y, x, 0);
        }
        const unit = (e: tf.Tensor2D) => tf.div(e, tf.norm(e));
        const cosine = (e: tf.Tensor2D) => tf.sum(tf.mul(unit(e), tf.tensor2d([[1, 0]]))).dataSync()[0];
        return cosine(embed(image)) - cosine(embed(tf.mul(image, keep.toTensor()) as tf.Tensor4D));
      });
      image.dispose();
      assert.deepEqual(result.relevantPatches, [7, 0]);
      assert.ok(Math.abs(result.relevantDrop - expected) < 1e-6, `drop ${result.relevantDrop}, expected ${expected}`);
      assert.deepEqual(result.randomDrops, []);
    });

    it('repeats with the same seed', () => {
      const image = tf.randomUniform([1, height, width, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
      const relevance = Array.from({ length: 24 }, (_, p) => p % 5);
      const first = deletionTest({ embed, image, reference: [1, 1], patchRelevance: relevance, patchSize, seed: 9 });
      const second = deletionTest({ embed, image, reference: [1, 1], patchRelevance: relevance, patchSize, seed: 9 });
      image.dispose();
      assert.deepEqual(second, first);
    });
  });

  describe('tiny MoRE model end to end', () => {
    let model: MoreModel;
    before(() => {
      const text = new TransformerTextEncoder(textPreset('tiny'), { seed: 1 });
      model = new MoreModel({ preset: 'tiny', image: { imageSize: 64, patchSize: 16 }, ecg: { samples: 100 } }, text, { seed: 1 });
    });
    after(() => model.dispose());

    function makeInput() {
      return {
        image: tf.randomNormal([1, 64, 64, 3], 0, 1, 'float32', 21) as tf.Tensor4D,
        ecg: tf.randomNormal([1, 12, 100], 0, 1, 'float32', 22) as tf.Tensor3D,
        inputIds: tf.tensor2d([[0, 15, 27, 99, 2, 1, 1]], undefined, 'int32'),
        attentionMask: tf.tensor2d([[1, 1, 1, 1, 1, 0, 0]], undefined, 'int32'),
        tokens: ['<s>', ' small', ' left', ' effusion', '</s>', '<pad>', '<pad>'],
        specialTokens: [true, false, false, false, true, true, true],
      };
    }

    it('explains X-ray, ECG and report', () => {
      const input = makeInput();
      const before = tf.memory().numTensors;
      const explanation = explainMoreSample(model, input);
      assert.equal(tf.memory().numTensors, before, 'tensors leaked');
      assert.equal(explanation.xray?.rows, 4);
      assert.equal(explanation.xray?.cols, 4);
      assert.equal(explanation.ecg?.sampleRelevance.length, 100);
      assert.deepEqual(explanation.report.tokens, [' small', ' left', ' effusion']);
      assert.ok(explanation.report.relevance.every(Number.isFinite), 'finite report relevance');
      assert.ok(Math.abs(explanation.similarity.xray as number) <= 1, 'X-ray similarity is a cosine');
      tf.dispose([input.image, input.ecg, input.inputIds, input.attentionMask]);
    });

    it('builds a bundle the extension accepts', () => {
      const input = makeInput();
      const explanation = explainMoreSample(model, input);
      const pixels = tf.tidy(() => tf.mean(input.image, 3).dataSync());
      const signals = input.ecg.arraySync()[0];
      const bundle = toExplanationBundle(explanation, {
        title: 'tiny model',
        xrayImage: grayscaleImage(pixels, 64, 64),
        ecg: { leads: ['I', 'II', 'III', 'aVR', 'aVL', 'aVF', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'], sampleRateHz: 100, signals },
      });
      assert.doesNotThrow(() => validateExplanationBundle(bundle));
      tf.dispose([input.image, input.ecg, input.inputIds, input.attentionMask]);
    });

    it('adds per-class maps to the bundle', () => {
      const input = makeInput();
      const explanation = explainMoreSample(model, input);
      const classEmbeddings = {
        Edema: Array.from({ length: 32 }, (_, i) => Math.sin(i)),
        Cardiomegaly: Array.from({ length: 32 }, (_, i) => Math.cos(i)),
      };
      const classes = explainClasses(model, input, classEmbeddings);
      const forward = (x: tf.Tensor4D, options: EncoderForwardOptions) => model.encodeImage(x, options);
      const direct = explainImage(forward, input.image, cosineTarget(classEmbeddings.Edema), 16);
      assert.deepEqual(classes.xray?.Edema.patchRelevance, direct.patchRelevance);
      assert.notDeepEqual(classes.xray?.Edema.patchRelevance, classes.xray?.Cardiomegaly.patchRelevance);
      const bundle = toExplanationBundle(explanation, {
        xrayImage: grayscaleImage(new Array(64 * 64).fill(0).map((_, i) => i % 64), 64, 64),
        ecg: { leads: ['I', 'II', 'III', 'aVR', 'aVL', 'aVF', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'], sampleRateHz: 100, signals: input.ecg.arraySync()[0] },
        classes,
      });
      assert.doesNotThrow(() => validateExplanationBundle(bundle));
      assert.deepEqual(bundle.classNames, ['Edema', 'Cardiomegaly']);
      assert.equal(bundle.ecg?.relevanceByClass?.Cardiomegaly[0].length, 100);
      tf.dispose([input.image, input.ecg, input.inputIds, input.attentionMask]);
    });

    it('runs the deletion test on the X-ray encoder', () => {
      const input = makeInput();
      const explanation = explainMoreSample(model, input);
      const reference = tf.tidy(() => model.encodeText(input.inputIds, input.attentionMask).embedding.dataSync());
      const before = tf.memory().numTensors;
      const result = deletionTest({
        embed: (images) => model.encodeImage(images).embedding,
        image: input.image,
        reference,
        patchRelevance: explanation.xray?.patchRelevance ?? [],
        patchSize: 16,
        seed: 2,
      });
      assert.equal(tf.memory().numTensors, before, 'tensors leaked');
      assert.equal(result.maskedPatches, 2);
      assert.ok(Math.abs(result.baseline - (explanation.similarity.xray as number)) < 1e-5, 'baseline equals the explained similarity');
      assert.equal(result.randomDrops.length, 5);
      assert.ok(Number.isFinite(result.relevantDrop), 'finite relevant drop');
      tf.dispose([input.image, input.ecg, input.inputIds, input.attentionMask]);
    });
  });
});
