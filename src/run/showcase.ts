/**
 * Ready-to-display views of a trained model on prepared samples: one
 * attention explanation and one retrieval result, as the bundles the
 * JupyterLab extension renders. The main job's report notebook shows them.
 */
import * as tf from '@tensorflow/tfjs';

import type { ReportTokenizer } from '../datasets/tokenizer';
import { TWELVE_LEADS } from '../datasets/wfdb/leads';
import { XRAY_SIZE } from '../datasets/xray/preprocess';
import type { MoreModel } from '../model/more';
import { explainMoreSample, grayscaleImage, toExplanationBundle } from '../tasks/explain';
import { RetrievalIndex, toRetrievalBundle } from '../tasks/retrieval';
import type { ExplanationBundle, RetrievalBundle } from '../viz/mime';
import { buildMoreBatch, disposeMoreBatch, ECG_LEADS, ECG_SAMPLES, type PreparedSample } from './data';
import { embedSamples } from './evaluate';

/** Lead names of the 12 x 1000 arrays, in the order the ECG reader returns them. */
export const CANONICAL_LEADS: string[] = [...TWELVE_LEADS];
const ECG_RATE_HZ = 100;

function ecgRows(ecg: Float32Array): number[][] {
  return Array.from({ length: ECG_LEADS }, (_, lead) => Array.from(ecg.subarray(lead * ECG_SAMPLES, (lead + 1) * ECG_SAMPLES)));
}

/** Text of the report without its modality prefix, cut to `length` characters. */
function excerpt(item: PreparedSample, length = 160): string {
  const text = item.sample.modality === 'ecg' ? item.sample.ecg.report : item.sample.xray.note;
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

/**
 * Returns the text each token adds to the decoded report, spaces included,
 * so the tokens read as the report when drawn side by side (a WordPiece
 * `##ray` continues its word; a new word starts with a space). Where decoding
 * a longer prefix rewrites earlier text, the token's own decoding is used.
 */
export function displayTokens(tokenizer: ReportTokenizer, ids: readonly number[]): string[] {
  const tokens: string[] = [];
  let previous = '';
  for (let i = 0; i < ids.length; i++) {
    const text = tokenizer.decode(ids.slice(0, i + 1), false);
    tokens.push(text.startsWith(previous) ? text.slice(previous.length) : tokenizer.decode([ids[i]], false));
    previous = text;
  }
  return tokens;
}

/**
 * Explains one sample (its X-ray or its ECG, and its report) with gradient
 * weighted attention relevance and returns the extension's bundle. Special
 * tokens (those the tokenizer drops when decoding) are left out of the report view.
 */
export function explanationBundle(model: MoreModel, tokenizer: ReportTokenizer, item: PreparedSample): ExplanationBundle {
  const batch = buildMoreBatch([item]);
  try {
    const ids = item.inputIds;
    const tokens = displayTokens(tokenizer, ids);
    const specialTokens = ids.map((id) => tokenizer.decode([id], true).trim() === '');
    const explanation = explainMoreSample(model, {
      image: item.xray !== undefined ? batch.images : undefined,
      ecg: item.ecg !== undefined ? batch.ecgs : undefined,
      inputIds: batch.inputIds,
      attentionMask: batch.attentionMask,
      tokens,
      specialTokens,
    });
    return toExplanationBundle(explanation, {
      title: `${item.sample.id}: ${excerpt(item, 80)}`,
      xrayImage: item.xray !== undefined ? grayscaleImage(item.xray, XRAY_SIZE, XRAY_SIZE) : undefined,
      ecg: item.ecg !== undefined ? { leads: CANONICAL_LEADS, sampleRateHz: ECG_RATE_HZ, signals: ecgRows(item.ecg) } : undefined,
    });
  } finally {
    disposeMoreBatch(batch);
  }
}

/** Shrinks an 8-bit 224 x 224 X-ray to a `size` x `size` thumbnail by averaging blocks. */
function thumbnail(gray: Uint8Array, size = 56): number[] {
  const block = XRAY_SIZE / size;
  const out: number[] = [];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let sum = 0;
      for (let dy = 0; dy < block; dy++) {
        for (let dx = 0; dx < block; dx++) sum += gray[(y * block + dy) * XRAY_SIZE + x * block + dx];
      }
      out.push(Math.round(sum / (block * block)));
    }
  }
  return out;
}

/**
 * Ranks `gallery` (samples of one modality) against the report of
 * `gallery[queryIndex]` and returns the top `k` as the extension's bundle.
 */
export function retrievalBundle(model: MoreModel, gallery: PreparedSample[], queryIndex: number, k = 5): RetrievalBundle {
  if (!(queryIndex >= 0 && queryIndex < gallery.length)) {
    throw new Error(`Invalid queryIndex ${queryIndex}: expected 0..${gallery.length - 1}`);
  }
  const modality = gallery[0].sample.modality;
  if (gallery.some((item) => item.sample.modality !== modality)) {
    throw new Error('retrievalBundle: every gallery sample must have the same modality');
  }
  const embeddings = embedSamples(model, gallery);
  const index = RetrievalIndex.fromEmbeddings(embeddings.ids, embeddings.signal, modality);
  const query = tf.tensor2d([embeddings.report[queryIndex]]);
  try {
    const [ranked] = index.search(query, Math.min(k, gallery.length));
    const byId = new Map(gallery.map((item) => [item.sample.id, item]));
    const queryItem = gallery[queryIndex];
    return toRetrievalBundle(
      { modality: 'report', text: excerpt(queryItem, 400), label: `report of ${queryItem.sample.id}` },
      ranked,
      (result) => {
        const item = byId.get(result.id) as PreparedSample;
        const description = { label: item.sample.id, reportExcerpt: excerpt(item) };
        if (item.xray !== undefined) return { ...description, xray: grayscaleImage(thumbnail(item.xray), 56, 56) };
        return { ...description, ecg: { leads: CANONICAL_LEADS, sampleRateHz: ECG_RATE_HZ, signals: ecgRows(item.ecg as Float32Array) } };
      },
      `Report -> ${modality === 'xray' ? 'X-ray' : 'ECG'} retrieval over ${gallery.length} held-out samples`,
    );
  } finally {
    query.dispose();
  }
}
