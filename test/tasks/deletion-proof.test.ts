/**
 * Faithfulness of the explanations on a trained model. A tiny MoRE model is
 * pre-trained for a few epochs on real sample X-rays and ECGs from
 * `data/samples` with the main job's pieces. Then the most relevant 10% of
 * each sample's X-ray patches (or ECG time samples) are masked. Averaged over
 * the samples, that must lower the similarity to the report more than
 * masking a random 10%.
 *
 * NOTE: with the same model left untrained, the X-ray check already passes
 * and the ECG check does not. So the ECG check depends on the training, while
 * the X-ray check shows that the relevance is faithful, not that it was learned.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { tf } from '../../src/backend';
import { ReportTokenizer } from '../../src/datasets/tokenizer';
import { MoreModel } from '../../src/model';
import { parseHuggingFaceConfig, TransformerTextEncoder } from '../../src/model/text';
import { buildSampleCorpus, type CorpusSample } from '../../src/run/corpus';
import { buildMoreBatch, disposeMoreBatch, PreparedBatchSource, prepareSamples, type PreparedSample } from '../../src/run/data';
import {
  cosineTarget, deletionTest, ecgDeletionTest, explainEcg, explainImage, type AttentionForward,
} from '../../src/tasks/explain';
import { fit } from '../../src/tasks/train';
import { moreTrainingModel } from '../../src/tasks/train/more';
import { silentProgress } from '../../src/util/progress';

const TOKENIZER = path.join(__dirname, '..', 'fixtures', 'datasets', 'text', 'minilm');
const BERT_TINY = path.join(__dirname, '..', 'fixtures', 'model', 'text', 'bert-tiny', 'config.json');
const PER_MODALITY = Number(process.env.DELETION_SAMPLES ?? 24);
const EPOCHS = Number(process.env.DELETION_EPOCHS ?? 8);

/** Builds a randomly initialised two-layer BERT of width 32 over the MiniLM word-piece vocabulary, with LoRA. */
function tinyText(): TransformerTextEncoder {
  const json = JSON.parse(fs.readFileSync(BERT_TINY, 'utf8'));
  const config = parseHuggingFaceConfig({ ...json, vocab_size: 30522, max_position_embeddings: 128 }, BERT_TINY);
  const text = new TransformerTextEncoder(config, { seed: 3 });
  text.addLora({}, 3);
  return text;
}

function pick(samples: CorpusSample[], modality: 'ecg' | 'xray', count: number): CorpusSample[] {
  return samples.filter((sample) => sample.modality === modality).slice(0, count);
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

describe('ecgDeletionTest', () => {
  const leads = 2;
  const samples = 50;
  // Embedding [sum over leads and samples of w[t] x[l, t], 1]: masking a sample removes its term exactly.
  const weights = Array.from({ length: samples }, (_, t) => (t >= 20 && t < 25 ? 3 : 0.1));
  const weightTensor = tf.tensor1d(weights);
  const embed = (signals: tf.Tensor3D): tf.Tensor2D => tf.tidy(() => {
    const score = tf.sum(tf.mul(signals, weightTensor), [1, 2]).reshape([-1, 1]);
    return tf.concat([score, tf.onesLike(score)], 1) as tf.Tensor2D;
  });
  const values = Array.from({ length: leads * samples }, (_, i) => 0.5 + 0.4 * Math.sin(i * 0.7));
  const cosine = (kept: (t: number) => boolean): number => {
    let a = 0;
    for (let l = 0; l < leads; l++) for (let t = 0; t < samples; t++) if (kept(t)) a += weights[t] * values[l * samples + t];
    return a / Math.hypot(a, 1);
  };

  after(() => weightTensor.dispose());

  it('masks the most relevant samples of every lead', () => {
    const ecg = tf.tensor3d(values, [1, leads, samples]);
    const relevance = weights.map((w, t) => w + t * 1e-3);
    const before = tf.memory().numTensors;
    const result = ecgDeletionTest({ embed, ecg, reference: [1, 0], sampleRelevance: relevance, spanLength: 5, randomTrials: 3, seed: 1 });
    assert.strictEqual(tf.memory().numTensors, before);
    ecg.dispose();
    assert.strictEqual(result.maskedSamples, 5);
    assert.deepStrictEqual(result.relevantSamples, [20, 21, 22, 23, 24]);
    const baseline = cosine(() => true);
    assert.ok(Math.abs(result.baseline - baseline) < 1e-5, `baseline ${result.baseline}, expected ${baseline}`);
    const drop = baseline - cosine((t) => t < 20 || t >= 25);
    assert.ok(Math.abs(result.relevantDrop - drop) < 1e-5, `drop ${result.relevantDrop}, expected ${drop}`);
    assert.strictEqual(result.randomDrops.length, 3);
    assert.ok(result.relevantDrop > result.randomDrop);
  });

  it('draws random masks as whole spans', () => {
    const ecg = tf.tensor3d(values, [1, leads, samples]);
    const flat = new Array<number>(samples).fill(0);
    const result = ecgDeletionTest({ embed, ecg, reference: [1, 0], sampleRelevance: flat, spanLength: 5, randomTrials: 20, seed: 2 });
    ecg.dispose();
    // Equal relevance is ordered by sample index, and each random drop is the drop of one aligned 5-sample span.
    assert.deepStrictEqual(result.relevantSamples, [0, 1, 2, 3, 4]);
    const spanDrops = Array.from({ length: 10 }, (_, span) => result.baseline - cosine((t) => Math.floor(t / 5) !== span));
    for (const d of result.randomDrops) {
      assert.ok(spanDrops.some((expected) => Math.abs(d - expected) < 1e-5), `random drop ${d} is not the drop of one span`);
    }
  });

  it('repeats with the same seed', () => {
    const ecg = tf.tensor3d(values, [1, leads, samples]);
    const relevance = weights.map((_, t) => t % 7);
    const first = ecgDeletionTest({ embed, ecg, reference: [1, 1], sampleRelevance: relevance, seed: 4 });
    const second = ecgDeletionTest({ embed, ecg, reference: [1, 1], sampleRelevance: relevance, seed: 4 });
    ecg.dispose();
    assert.deepStrictEqual(second, first);
  });

  it('rejects relevance of the wrong length', () => {
    const ecg = tf.tensor3d(values, [1, leads, samples]);
    assert.throws(() => ecgDeletionTest({ embed, ecg, reference: [1, 0], sampleRelevance: [1, 2] }),
      /ecgDeletionTest: 2 relevance values; expected one per sample \(50\)/);
    assert.throws(() => ecgDeletionTest({ embed, ecg, reference: [1, 0], sampleRelevance: weights, spanLength: 0 }),
      /span length 0; expected a positive integer/);
    ecg.dispose();
  });
});

describe('deletion test on a tiny model trained on the sample data', function () {
  this.timeout(300_000);
  let model: MoreModel;
  let prepared: PreparedSample[];
  let tensorsBefore: number;

  before(async () => {
    tensorsBefore = tf.memory().numTensors;
    const corpus = buildSampleCorpus();
    const chosen = [...pick(corpus.samples, 'xray', PER_MODALITY), ...pick(corpus.samples, 'ecg', PER_MODALITY)];
    const tokenizer = ReportTokenizer.fromFolder(TOKENIZER);
    prepared = (await prepareSamples(chosen, tokenizer, { maxTextLength: 48, progress: silentProgress })).prepared;
    model = new MoreModel({
      preset: 'tiny',
      image: { imageSize: 224, patchSize: 32 },
      imageHead: { outputDim: 32 },
      ecgHead: { outputDim: 32 },
      textHead: { outputDim: 32 },
    }, tinyText(), { seed: 1 });
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'more-deletion-'));
    try {
      const result = await fit(moreTrainingModel(model), { train: new PreparedBatchSource(prepared, true) }, {
        runDir, maxEpochs: EPOCHS, batchSize: 16, lr: 1e-3, t0: EPOCHS, etaMin: 1e-4, accumulationSteps: 1,
        checkpointEveryEpochs: 0, patience: EPOCHS + 1, seed: 0, progress: silentProgress,
      });
      const losses = result.history.map((epoch) => epoch.trainLoss.toFixed(3)).join(' ');
      if (process.env.DELETION_VERBOSE) process.stdout.write(`training losses: ${losses}\n`);
    } finally {
      fs.rmSync(runDir, { recursive: true, force: true });
    }
  });

  after(() => {
    model.dispose();
    assert.strictEqual(tf.memory().numTensors, tensorsBefore);
  });

  /** Embedding of each sample's report, in inference mode. */
  function reportEmbedding(item: PreparedSample): number[] {
    const batch = buildMoreBatch([item]);
    const embedding = tf.tidy(() => model.encodeText(batch.inputIds, batch.attentionMask, { training: false }).embedding);
    disposeMoreBatch(batch);
    const values = Array.from(embedding.dataSync());
    embedding.dispose();
    return values;
  }

  it('X-ray: relevant patches beat random', () => {
    const relevant: number[] = [];
    const random: number[] = [];
    const forward: AttentionForward<tf.Tensor4D> = (x, options) => model.encodeImage(x, { ...options, training: false });
    for (const item of prepared.filter((entry) => entry.xray !== undefined)) {
      const reference = reportEmbedding(item);
      const batch = buildMoreBatch([item]);
      const image = batch.images as tf.Tensor4D;
      const explanation = explainImage(forward, image, cosineTarget(reference), model.config.image.patchSize);
      const result = deletionTest({
        embed: (images) => model.encodeImage(images, { training: false }).embedding,
        image, reference, patchRelevance: explanation.patchRelevance, patchSize: model.config.image.patchSize,
        fraction: 0.1, randomTrials: 5, seed: 7,
      });
      disposeMoreBatch(batch);
      relevant.push(result.relevantDrop);
      random.push(result.randomDrop);
    }
    const message = `X-ray: mean relevant drop ${mean(relevant).toFixed(4)}, mean random drop ${mean(random).toFixed(4)} over ${relevant.length} images`;
    if (process.env.DELETION_VERBOSE) process.stdout.write(`${message}\n`);
    assert.ok(relevant.length === PER_MODALITY, `expected ${PER_MODALITY} X-rays, got ${relevant.length}`);
    assert.ok(mean(relevant) > mean(random), message);
  });

  it('ECG: relevant spans beat random', () => {
    const relevant: number[] = [];
    const random: number[] = [];
    const { conv1Kernel, conv1Stride, conv2Kernel } = model.config.ecg;
    const layers = [{ kernel: conv1Kernel, stride: conv1Stride }, { kernel: conv2Kernel, stride: 1 }];
    const spanLength = conv1Kernel + (conv2Kernel - 1) * conv1Stride;
    const forward: AttentionForward<tf.Tensor3D> = (x, options) => model.encodeEcg(x, { ...options, training: false });
    for (const item of prepared.filter((entry) => entry.ecg !== undefined)) {
      const reference = reportEmbedding(item);
      const batch = buildMoreBatch([item]);
      const ecg = batch.ecgs as tf.Tensor3D;
      const explanation = explainEcg(forward, ecg, cosineTarget(reference), layers);
      const result = ecgDeletionTest({
        embed: (signals) => model.encodeEcg(signals, { training: false }).embedding,
        ecg, reference, sampleRelevance: explanation.sampleRelevance, fraction: 0.1, spanLength, randomTrials: 5, seed: 7,
      });
      disposeMoreBatch(batch);
      relevant.push(result.relevantDrop);
      random.push(result.randomDrop);
    }
    const message = `ECG: mean relevant drop ${mean(relevant).toFixed(4)}, mean random drop ${mean(random).toFixed(4)} over ${relevant.length} records`;
    if (process.env.DELETION_VERBOSE) process.stdout.write(`${message}\n`);
    assert.ok(relevant.length === PER_MODALITY, `expected ${PER_MODALITY} ECGs, got ${relevant.length}`);
    assert.ok(mean(relevant) > mean(random), message);
  });
});
