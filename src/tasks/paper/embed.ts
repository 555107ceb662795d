/**
 * Embeddings of X-rays, ECGs and reports with a frozen MoRE model, for the
 * paper-tables protocols. Each file is read and encoded once per run: the
 * cache keeps the pooled encoder features (probe inputs) and the shared-space
 * embedding (zero-shot and retrieval inputs) by file path.
 */
import * as tf from '@tensorflow/tfjs';

import { loadPreprocessedEcg } from '../../datasets/ecg/load';
import type { ReportTokenizer } from '../../datasets/tokenizer';
import { preprocessXrayFile } from '../../datasets/xray/preprocess';
import type { MoreModel } from '../../model/more';
import { silentProgress, type ProgressReporter } from '../../util/progress';

/** Encoder outputs of one file. */
export interface EncodedItem {
  /** Pooled encoder features before the projection head. */
  features: Float32Array;
  /** Shared-space embedding. */
  embedding: number[];
}

/** Encoder outputs of a list of files, in order. */
export interface EncodedSet {
  features: Float32Array;
  featureDim: number;
  embeddings: number[][];
}

/**
 * Reads and encodes X-rays and ECGs in batches, keeping each result for the rest of the run.
 * NOTE: every result stays in memory (about 4 KB per file for width-768 features and 128-wide embeddings), so a
 * run over all of MIMIC-CXR needs a few GB; `limit` in the runner bounds it.
 */
export class ModalityEncoder {
  private readonly cache = new Map<string, EncodedItem>();

  constructor(
    private readonly model: MoreModel,
    private readonly options: { batchSize?: number; progress?: ProgressReporter } = {},
  ) {}

  /** Encodes X-ray files (PNG, JPEG or DICOM) at the model's image size. */
  async xrays(files: string[], label = 'encoding X-rays'): Promise<EncodedSet> {
    const size = this.model.config.image.imageSize;
    return this.encode(`xray:${size}`, files, label, async (chosen) => {
      const pixels = size * size * 3;
      const data = new Float32Array(chosen.length * pixels);
      for (const [row, file] of chosen.entries()) data.set(await preprocessXrayFile(file, { size }), row * pixels);
      return tf.tensor4d(data, [chosen.length, size, size, 3]);
    }, (input) => this.model.encodeImage(input as tf.Tensor4D, { training: false }));
  }

  /** Encodes WFDB records (paths without extension) after the ECG preprocessing. */
  async ecgs(recordPaths: string[], label = 'encoding ECGs'): Promise<EncodedSet> {
    const { leads, samples } = this.model.config.ecg;
    return this.encode('ecg', recordPaths, label, async (chosen) => {
      const data = new Float32Array(chosen.length * leads * samples);
      for (const [row, record] of chosen.entries()) {
        const ecg = await loadPreprocessedEcg(record);
        if (ecg.leads !== leads || ecg.samples !== samples) {
          throw new Error(`ECG ${record}: ${ecg.leads} x ${ecg.samples} after preprocessing; the model expects ${leads} x ${samples}`);
        }
        data.set(ecg.data, row * leads * samples);
      }
      return tf.tensor3d(data, [chosen.length, leads, samples]);
    }, (input) => this.model.encodeEcg(input as tf.Tensor3D, { training: false }));
  }

  private async encode(
    kind: string, keys: string[], label: string,
    read: (chosen: string[]) => Promise<tf.Tensor>,
    forward: (input: tf.Tensor) => { pooled: tf.Tensor2D; embedding: tf.Tensor2D },
  ): Promise<EncodedSet> {
    const batchSize = this.options.batchSize ?? 16;
    const progress = this.options.progress ?? silentProgress;
    const missing = [...new Set(keys.filter((key) => !this.cache.has(`${kind}\u0000${key}`)))];
    if (missing.length > 0) progress.start(label, missing.length, 'files');
    for (let start = 0; start < missing.length; start += batchSize) {
      const chosen = missing.slice(start, start + batchSize);
      const input = await read(chosen);
      const [pooled, embedding] = tf.tidy(() => {
        const out = forward(input);
        return [out.pooled, out.embedding];
      });
      input.dispose();
      const features = pooled.dataSync() as Float32Array;
      const rows = embedding.arraySync() as number[][];
      const dim = pooled.shape[1];
      tf.dispose([pooled, embedding]);
      chosen.forEach((key, row) => {
        this.cache.set(`${kind}\u0000${key}`, { features: features.slice(row * dim, (row + 1) * dim), embedding: rows[row] });
      });
      progress.update({ done: start + chosen.length });
    }
    if (missing.length > 0) progress.end();
    if (keys.length === 0) return { features: new Float32Array(0), featureDim: 0, embeddings: [] };
    const items = keys.map((key) => this.cache.get(`${kind}\u0000${key}`) as EncodedItem);
    const featureDim = items[0].features.length;
    const features = new Float32Array(items.length * featureDim);
    items.forEach((item, row) => features.set(item.features, row * featureDim));
    return { features, featureDim, embeddings: items.map((item) => item.embedding) };
  }
}

/** Embeds texts with the model's report encoder, `maxLength` tokens at most, `batchSize` at a time. */
export function embedTexts(
  model: MoreModel, tokenizer: ReportTokenizer, texts: string[], maxLength: number, batchSize = 32,
): number[][] {
  const rows: number[][] = [];
  for (let start = 0; start < texts.length; start += batchSize) {
    const encoded = tokenizer.encodeBatch(texts.slice(start, start + batchSize), { maxLength });
    const shape: [number, number] = [encoded.batchSize, encoded.sequenceLength];
    const embedding = tf.tidy(() => model.encodeText(
      tf.tensor2d(encoded.inputIds, shape, 'int32'), tf.tensor2d(encoded.attentionMask, shape, 'int32'), { training: false },
    ).embedding);
    rows.push(...(embedding.arraySync() as number[][]));
    embedding.dispose();
  }
  return rows;
}
