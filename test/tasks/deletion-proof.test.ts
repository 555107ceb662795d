/**
 * Faithfulness of the explanations on a trained model: a tiny MoRE model is
 * pre-trained for a few epochs on real sample X-rays and ECGs from
 * `data/samples` with the main job's pieces, then for each sample the most
 * relevant 10% of X-ray patches (and of ECG time samples) are masked. Averaged
 * over the samples, that must lower the image-report (ECG-report) similarity
 * more than masking a random 10%.
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

/** A randomly initialised two-layer BERT of width 32 over the MiniLM word-piece vocabulary, with LoRA. */
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

  it('masking the most relevant 10% of X-ray patches lowers the similarity more than a random 10%', () => {
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

  it('masking the most relevant 10% of ECG time samples lowers the similarity more than random 10% spans', () => {
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
