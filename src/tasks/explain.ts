/**
 * Attention explanations for the MoRE encoders with the gradient-weighted
 * relevance rule of Chefer, Gur and Wolf ("Transformer Interpretability
 * Beyond Attention Visualization", CVPR 2021): start from R = I over the
 * tokens and, layer by layer from the input upwards, add Abar R where Abar is
 * the mean over heads of relu(dTarget/dA * A).
 *
 * The gradient with respect to each attention map comes from the encoders'
 * `attentionOffsets`: zeros added to the post-softmax attention, so
 * `tf.grads` with respect to them is the gradient with respect to A. The
 * attention maps themselves come from a second pass with `returnAttention`.
 * Both passes run in inference mode, so DropKey masks nothing and they agree.
 *
 * Results are returned in the input's coordinates: a patch grid and a pixel
 * map for the X-ray, a value per sample for the ECG, a value per report token.
 */
import * as tf from '@tensorflow/tfjs';

import type { EcgConfig } from '../model/config';
import type { EncoderForwardOptions, MoreModelApi } from '../model/types';
import { Rng } from '../util/rng';
import { BUNDLE_VERSION, type ExplanationBundle, type GrayscaleImage } from '../viz/mime';

/** Encoder call that returns a shared-space embedding and, on request, the attention maps. */
export type AttentionForward<X extends tf.Tensor> = (
  input: X,
  options: EncoderForwardOptions,
) => { embedding: tf.Tensor2D; attentions?: tf.Tensor4D[] };

/** The scalar being explained, computed from the [1, dim] embedding of the explained sample. */
export type ExplainTarget = (embedding: tf.Tensor2D) => tf.Scalar;

/**
 * Applies the relevance rule to per-layer attention maps and their gradients,
 * each [B, heads, T, T] in layer order, and returns R as [B, T, T].
 * Row i of R gives the relevance of every input token to output token i.
 */
export function relevanceFromAttention(attentions: tf.Tensor4D[], gradients: tf.Tensor4D[]): tf.Tensor3D {
  if (attentions.length === 0) throw new Error('relevanceFromAttention: no attention maps; expected one per layer');
  if (gradients.length !== attentions.length) {
    throw new Error(`relevanceFromAttention: ${gradients.length} gradients for ${attentions.length} attention maps; expected one per layer`);
  }
  const shape = attentions[0].shape;
  const [B, , T, T2] = shape;
  if (T !== T2) throw new Error(`relevanceFromAttention: attention shape [${shape.join(', ')}]; expected [B, heads, T, T]`);
  attentions.forEach((attention, layer) => {
    for (const [name, tensor] of [['attention', attention], ['gradient', gradients[layer]]] as const) {
      if (!tf.util.arraysEqual(tensor.shape, shape)) {
        throw new Error(`relevanceFromAttention: ${name} of layer ${layer} has shape [${tensor.shape.join(', ')}]; ` +
          `expected [${shape.join(', ')}] like layer 0`);
      }
    }
  });
  return tf.tidy(() => {
    let relevance = tf.tile(tf.expandDims(tf.eye(T), 0), [B, 1, 1]) as tf.Tensor3D; // [B, T, T]
    attentions.forEach((attention, layer) => {
      const weighted = tf.mean(tf.relu(tf.mul(gradients[layer], attention)), 1) as tf.Tensor3D; // [B, T, T]
      relevance = tf.add(relevance, tf.matMul(weighted, relevance)) as tf.Tensor3D;
    });
    return relevance;
  });
}

/** Token-by-token relevance of one sample. */
export interface TokenRelevanceMatrix {
  /** Row-major [tokens, tokens] relevance R. */
  matrix: Float32Array;
  tokens: number;
  /** Value of the explained target. */
  target: number;
}

/**
 * Runs the encoder twice on a batch of one sample (once for the attention
 * maps, once for their gradients) and returns the relevance matrix R.
 */
export function attentionRelevance<X extends tf.Tensor>(
  forward: AttentionForward<X>, input: X, target: ExplainTarget,
): TokenRelevanceMatrix {
  if (input.shape[0] !== 1) {
    throw new Error(`attentionRelevance: input has batch size ${input.shape[0]}; expected one sample (batch size 1)`);
  }
  const attentions = tf.tidy(() => {
    const maps = forward(input, { returnAttention: true }).attentions;
    if (maps === undefined || maps.length === 0) {
      throw new Error('attentionRelevance: the encoder returned no attention maps; it must honour returnAttention');
    }
    return maps;
  });
  const offsets = attentions.map((attention) => tf.zerosLike(attention));
  let targetValue = Number.NaN;
  const gradients = tf.grads((...zeros: tf.Tensor[]) => {
    const value = target(forward(input, { attentionOffsets: zeros as tf.Tensor4D[] }).embedding);
    targetValue = (value.dataSync() as Float32Array)[0];
    return value;
  })(offsets) as tf.Tensor4D[];
  const relevance = relevanceFromAttention(attentions, gradients);
  const tokens = relevance.shape[1];
  const matrix = relevance.dataSync() as Float32Array;
  tf.dispose([...attentions, ...offsets, ...gradients, relevance]);
  return { matrix, tokens, target: targetValue };
}

/** Returns a target: the cosine similarity between the explained embedding and a fixed reference embedding. */
export function cosineTarget(reference: ArrayLike<number> | tf.Tensor1D): ExplainTarget {
  const values = reference instanceof tf.Tensor ? Array.from(reference.dataSync()) : Array.from(reference);
  return (embedding: tf.Tensor2D) => tf.tidy(() => {
    if (embedding.shape[1] !== values.length) {
      throw new Error(`cosineTarget: embedding has dimension ${embedding.shape[1]} but the reference has ${values.length}`);
    }
    const other = tf.tensor2d(values, [1, values.length]);
    const dot = tf.sum(tf.mul(embedding, other));
    const norms = tf.mul(tf.norm(embedding), tf.norm(other));
    return tf.div(dot, tf.maximum(norms, 1e-12)) as tf.Scalar;
  });
}

// ---------------------------------------------------------------------------
// X-ray: patch grid and pixel map.

/** Relevance of one X-ray, in the image's coordinates. */
export interface ImageRelevance {
  /** Patch rows (image height / patch size) and columns (image width / patch size). */
  rows: number;
  cols: number;
  patchSize: number;
  height: number;
  width: number;
  /** Relevance of each patch to the class token, row-major [rows, cols]; the class token itself is left out. */
  patchRelevance: number[];
  /** The patch grid resized bilinearly to the image, row-major [height, width]. */
  pixelRelevance: number[];
  target: number;
}

/**
 * Explains an X-ray embedding: the class token's row of R over the patch
 * tokens, laid out as the (height / patch) x (width / patch) grid of the
 * patch embedding (row-major, as timm orders patches) and resized to the image.
 */
export function explainImage(
  forward: AttentionForward<tf.Tensor4D>, image: tf.Tensor4D, target: ExplainTarget, patchSize: number,
): ImageRelevance {
  const [, height, width] = image.shape;
  if (!Number.isInteger(patchSize) || patchSize < 1 || height % patchSize !== 0 || width % patchSize !== 0) {
    throw new Error(`explainImage: patch size ${patchSize} must divide the image size ${height} x ${width}`);
  }
  const rows = height / patchSize;
  const cols = width / patchSize;
  const { matrix, tokens, target: value } = attentionRelevance(forward, image, target);
  if (tokens !== rows * cols + 1) {
    throw new Error(`explainImage: the encoder has ${tokens} tokens; expected ${rows} x ${cols} patches plus a class token`);
  }
  const patchRelevance = Array.from(matrix.subarray(1, tokens)); // row 0 is the class token; skip its own column
  const pixelRelevance = upsampleBilinear(patchRelevance, rows, cols, height, width);
  return { rows, cols, patchSize, height, width, patchRelevance, pixelRelevance, target: value };
}

/**
 * Resizes a row-major [rows, cols] grid to [height, width] with bilinear
 * interpolation and half-pixel centres, so each patch value sits at its
 * patch's centre (PyTorch's `interpolate(..., align_corners=False)`).
 */
export function upsampleBilinear(grid: ArrayLike<number>, rows: number, cols: number, height: number, width: number): number[] {
  if (grid.length !== rows * cols) {
    throw new Error(`upsampleBilinear: grid has ${grid.length} values; expected ${rows} x ${cols} = ${rows * cols}`);
  }
  const resized = tf.tidy(() => {
    const input = tf.tensor4d(Array.from(grid), [1, rows, cols, 1]);
    return tf.image.resizeBilinear(input, [height, width], false, true);
  });
  const values = Array.from(resized.dataSync());
  resized.dispose();
  return values;
}

// ---------------------------------------------------------------------------
// ECG: relevance per sample through the convolutional embedding.

/** One convolution of a patch embedding, without padding. */
export interface ConvLayer {
  kernel: number;
  stride: number;
}

/** Samples [start, end) that one token's receptive field covers. */
export interface SampleSpan {
  start: number;
  end: number;
}

/**
 * Returns the input samples each output token of a stack of unpadded
 * convolutions depends on, walking the layers from the last back to the first.
 */
export function receptiveFields(samples: number, layers: ConvLayer[]): SampleSpan[] {
  layers.forEach((layer, i) => {
    if (!Number.isInteger(layer.kernel) || layer.kernel < 1 || !Number.isInteger(layer.stride) || layer.stride < 1) {
      throw new Error(`receptiveFields: layer ${i} has kernel ${layer.kernel} and stride ${layer.stride}; expected positive integers`);
    }
  });
  let length = samples;
  for (const layer of layers) length = Math.floor((length - layer.kernel) / layer.stride) + 1;
  if (length < 1) throw new Error(`receptiveFields: ${samples} samples leave no tokens after the convolutions`);
  const spans: SampleSpan[] = [];
  for (let token = 0; token < length; token++) {
    let first = token;
    let last = token;
    for (let i = layers.length - 1; i >= 0; i--) {
      first = first * layers[i].stride;
      last = last * layers[i].stride + layers[i].kernel - 1;
    }
    spans.push({ start: first, end: last + 1 });
  }
  return spans;
}

/**
 * Spreads each token's relevance evenly over the samples its receptive field
 * covers and sums the shares per sample. The total relevance is kept, and a
 * sample no token covers gets 0.
 */
export function spreadOverSamples(tokenRelevance: ArrayLike<number>, spans: SampleSpan[], samples: number): number[] {
  if (tokenRelevance.length !== spans.length) {
    throw new Error(`spreadOverSamples: ${tokenRelevance.length} token values for ${spans.length} receptive fields; expected one per token`);
  }
  const perSample = new Array<number>(samples).fill(0);
  spans.forEach((span, token) => {
    const share = tokenRelevance[token] / (span.end - span.start);
    for (let s = span.start; s < Math.min(span.end, samples); s++) perSample[s] += share;
  });
  return perSample;
}

/** Relevance of one ECG over time. */
export interface EcgRelevance {
  /** Relevance of each ECG token to the class token (class token left out). */
  tokenRelevance: number[];
  /** Relevance per sample, shared by all leads. */
  sampleRelevance: number[];
  spans: SampleSpan[];
  target: number;
}

/**
 * Explains an ECG embedding over time. `layers` describes the convolutional
 * patch embedding (for MoRE: kernel 5 stride 5, then kernel 5 stride 1).
 * NOTE: the first convolution mixes all leads into each token, so this
 * relevance is one curve over time shared by every lead, not a per-lead one.
 */
export function explainEcg(
  forward: AttentionForward<tf.Tensor3D>, signals: tf.Tensor3D, target: ExplainTarget, layers: ConvLayer[],
): EcgRelevance {
  const samples = signals.shape[2];
  const spans = receptiveFields(samples, layers);
  const { matrix, tokens, target: value } = attentionRelevance(forward, signals, target);
  if (tokens !== spans.length + 1) {
    throw new Error(`explainEcg: the encoder has ${tokens} tokens; the convolutions give ${spans.length} plus a class token`);
  }
  const tokenRelevance = Array.from(matrix.subarray(1, tokens));
  return { tokenRelevance, sampleRelevance: spreadOverSamples(tokenRelevance, spans, samples), spans, target: value };
}

// ---------------------------------------------------------------------------
// Report: relevance per token.

/** Encoder call of the report encoder, in the shape of `TextEncoder.forward` plus a head. */
export type TextAttentionForward = (
  inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, options: EncoderForwardOptions,
) => { embedding: tf.Tensor2D; attentions?: tf.Tensor4D[] };

export interface TextExplainOptions {
  /** Display text of every position of `inputIds`. */
  tokens: string[];
  /** True at special tokens (`<s>`, `</s>`, `<pad>`, `[CLS]`...), which the result leaves out. */
  specialTokens: boolean[];
  /**
   * Pooling of the encoder, which decides the rows of R that are averaged.
   * `masked-mean` (the default, as the text encoder's default) averages the
   * non-padding rows, `mean` every row (the reference's pooling), and `first`
   * takes the first token's row (BERT-style class token).
   */
  pooling?: 'masked-mean' | 'mean' | 'first';
}

/** Relevance of one report per token, special tokens and padding left out. */
export interface TextRelevance {
  tokens: string[];
  relevance: number[];
  /** Position in `inputIds` of each returned token. */
  positions: number[];
  target: number;
}

/** Returns the cosine similarity of each row of `embeddings` to `reference`, [V]. */
function cosineToReference(embeddings: tf.Tensor2D, reference: ArrayLike<number>): tf.Tensor1D {
  const target = tf.tensor2d(Array.from(reference), [1, reference.length]);
  const unit = (x: tf.Tensor2D) => tf.div(x, tf.maximum(tf.norm(x, 'euclidean', 1, true), 1e-12));
  return tf.sum(tf.mul(unit(embeddings), unit(target)), 1) as tf.Tensor1D;
}

/**
 * Reads the similarities of a deletion test (row 0 unmasked, row 1 with the
 * most relevant part masked, the rest randomly masked), disposes them and
 * returns the drops from the unmasked similarity.
 */
function similarityDrops(similarities: tf.Tensor1D): { baseline: number; relevantDrop: number; randomDrops: number[]; randomDrop: number } {
  const values = Array.from(similarities.dataSync());
  similarities.dispose();
  const baseline = values[0];
  const randomDrops = values.slice(2).map((value) => baseline - value);
  const randomDrop = randomDrops.length === 0 ? Number.NaN : randomDrops.reduce((a, b) => a + b, 0) / randomDrops.length;
  return { baseline, relevantDrop: baseline - values[1], randomDrops, randomDrop };
}

/** Explains a report embedding per token. */
export function explainText(
  forward: TextAttentionForward, inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, target: ExplainTarget,
  options: TextExplainOptions,
): TextRelevance {
  const length = inputIds.shape[1];
  if (options.tokens.length !== length || options.specialTokens.length !== length) {
    throw new Error(`explainText: ${options.tokens.length} token strings and ${options.specialTokens.length} special flags ` +
      `for ${length} positions; expected one of each per position`);
  }
  const mask = Array.from(attentionMask.dataSync());
  const { matrix, tokens, target: value } = attentionRelevance(
    (ids: tf.Tensor2D, forwardOptions) => forward(ids, attentionMask, forwardOptions), inputIds, target);
  const pooling = options.pooling ?? 'masked-mean';
  let pooled: number[];
  if (pooling === 'first') pooled = [0];
  else if (pooling === 'mean') pooled = mask.map((_, i) => i);
  else if (pooling === 'masked-mean') pooled = mask.flatMap((m, i) => (m !== 0 ? [i] : []));
  else throw new Error(`explainText: pooling "${pooling as string}"; expected masked-mean, mean or first`);
  const result: TextRelevance = { tokens: [], relevance: [], positions: [], target: value };
  for (let t = 0; t < tokens; t++) {
    if (mask[t] === 0 || options.specialTokens[t]) continue;
    let sum = 0;
    for (const row of pooled) sum += matrix[row * tokens + t];
    result.tokens.push(options.tokens[t]);
    result.relevance.push(sum / pooled.length);
    result.positions.push(t);
  }
  return result;
}

// ---------------------------------------------------------------------------
// Deletion test.

export interface DeletionTestOptions {
  /** Embeds a batch of images into the shared space, [B, H, W, C] -> [B, dim]. */
  embed: (images: tf.Tensor4D) => tf.Tensor2D;
  /** The explained X-ray, [1, H, W, C]. */
  image: tf.Tensor4D;
  /** Embedding the similarity is measured against (for example the report's). */
  reference: ArrayLike<number>;
  /** Patch relevance, row-major over the (H / patchSize) x (W / patchSize) grid. */
  patchRelevance: ArrayLike<number>;
  patchSize: number;
  /** Fraction of patches masked (default 0.1, at least one patch). */
  fraction?: number;
  /** Value written into masked pixels (default 0, the dataset mean after normalisation). */
  fillValue?: number;
  /** Number of random masks averaged for the comparison (default 5). */
  randomTrials?: number;
  seed?: number;
}

export interface DeletionTestResult {
  /** Cosine similarity of the unmasked image. */
  baseline: number;
  /** Similarity drop after masking the most relevant patches. */
  relevantDrop: number;
  /** Similarity drop of each random mask, and their mean. */
  randomDrops: number[];
  randomDrop: number;
  /** Patches masked in each variant, and the indexes of the most relevant ones. */
  maskedPatches: number;
  relevantPatches: number[];
}

/**
 * Masks the most relevant patches and, for comparison, the same number of
 * random patches, and measures how much the similarity to `reference` drops.
 * A faithful explanation makes the relevant drop larger than the random one.
 * Equal relevance values are ordered by patch index, so the result repeats.
 */
export function deletionTest(options: DeletionTestOptions): DeletionTestResult {
  const { image, patchSize } = options;
  const [batch, height, width] = image.shape;
  if (batch !== 1) throw new Error(`deletionTest: image has batch size ${batch}; expected 1`);
  if (height % patchSize !== 0 || width % patchSize !== 0) {
    throw new Error(`deletionTest: patch size ${patchSize} must divide the image size ${height} x ${width}`);
  }
  const rows = height / patchSize;
  const cols = width / patchSize;
  const patches = rows * cols;
  if (options.patchRelevance.length !== patches) {
    throw new Error(`deletionTest: ${options.patchRelevance.length} relevance values; expected ${rows} x ${cols} = ${patches}`);
  }
  const fraction = options.fraction ?? 0.1;
  if (!(fraction > 0 && fraction <= 1)) throw new Error(`deletionTest: fraction ${fraction}; expected a value in (0, 1]`);
  const trials = options.randomTrials ?? 5;
  const count = Math.max(1, Math.round(fraction * patches));
  const relevance = options.patchRelevance;

  const ranked = Array.from({ length: patches }, (_, i) => i).sort((a, b) => relevance[b] - relevance[a] || a - b);
  const relevantPatches = ranked.slice(0, count);
  const rng = new Rng(options.seed ?? 0);
  const variants = [relevantPatches];
  for (let trial = 0; trial < trials; trial++) {
    variants.push(rng.shuffle(Array.from({ length: patches }, (_, i) => i)).slice(0, count));
  }

  // Keep-masks: 1 keeps a pixel, 0 replaces it by the fill value. Variant 0 is the unmasked image.
  const keep = new Float32Array((variants.length + 1) * height * width).fill(1);
  variants.forEach((chosen, v) => {
    const offset = (v + 1) * height * width;
    for (const patch of chosen) {
      const top = Math.floor(patch / cols) * patchSize;
      const left = (patch % cols) * patchSize;
      for (let y = top; y < top + patchSize; y++) keep.fill(0, offset + y * width + left, offset + y * width + left + patchSize);
    }
  });

  const similarities = tf.tidy(() => {
    const keepMask = tf.tensor4d(keep, [variants.length + 1, height, width, 1]);
    const tiled = tf.tile(image, [variants.length + 1, 1, 1, 1]);
    const fill = tf.mul(tf.sub(1, keepMask), options.fillValue ?? 0);
    const masked = tf.add(tf.mul(tiled, keepMask), fill) as tf.Tensor4D; // [V + 1, H, W, C]
    return cosineToReference(options.embed(masked), options.reference);
  });
  return { ...similarityDrops(similarities), maskedPatches: count, relevantPatches };
}

export interface EcgDeletionTestOptions {
  /** Embeds a batch of ECGs into the shared space, [B, leads, samples] -> [B, dim]. */
  embed: (signals: tf.Tensor3D) => tf.Tensor2D;
  /** The explained ECG, [1, leads, samples]. */
  ecg: tf.Tensor3D;
  /** Embedding the similarity is measured against (for example the report's). */
  reference: ArrayLike<number>;
  /** Relevance per time sample, shared by all leads (`EcgRelevance.sampleRelevance`). */
  sampleRelevance: ArrayLike<number>;
  /** Fraction of time samples masked (default 0.1, at least one sample). */
  fraction?: number;
  /**
   * Length in samples of the random spans (default 25, the receptive field of
   * one MoRE ECG token: kernel 5 stride 5, then kernel 5).
   */
  spanLength?: number;
  /** Value written into masked samples of every lead (default 0, the baseline after preprocessing). */
  fillValue?: number;
  /** Number of random masks averaged for the comparison (default 5). */
  randomTrials?: number;
  seed?: number;
}

export interface EcgDeletionTestResult {
  /** Cosine similarity of the unmasked ECG. */
  baseline: number;
  /** Similarity drop after masking the most relevant samples. */
  relevantDrop: number;
  /** Similarity drop of each random mask, and their mean. */
  randomDrops: number[];
  randomDrop: number;
  /** Time samples masked in each variant, and the indexes of the most relevant ones (ascending). */
  maskedSamples: number;
  relevantSamples: number[];
}

/** Picks `count` samples as whole random spans of `spanLength` on a fixed grid; the last span chosen may be cut short. */
function randomSpanSamples(samples: number, count: number, spanLength: number, rng: Rng): number[] {
  const spans = Math.ceil(samples / spanLength);
  const order = rng.shuffle(Array.from({ length: spans }, (_, i) => i));
  const chosen: number[] = [];
  for (const span of order) {
    const start = span * spanLength;
    const end = Math.min(samples, start + spanLength);
    for (let s = start; s < end && chosen.length < count; s++) chosen.push(s);
    if (chosen.length >= count) break;
  }
  return chosen;
}

/**
 * Runs the ECG counterpart of {@link deletionTest}. It masks the most
 * relevant time samples in all leads at once (the relevance is one curve over
 * time) and, for comparison, the same number of samples as random contiguous
 * spans, then measures how much the similarity to `reference` drops. Equal
 * relevance values are ordered by sample index, so the result repeats.
 */
export function ecgDeletionTest(options: EcgDeletionTestOptions): EcgDeletionTestResult {
  const { ecg } = options;
  if (ecg.rank !== 3 || ecg.shape[0] !== 1) {
    throw new Error(`ecgDeletionTest: ECG has shape [${ecg.shape.join(', ')}]; expected [1, leads, samples]`);
  }
  const [, leads, samples] = ecg.shape;
  if (leads < 1 || samples < 1) throw new Error(`ecgDeletionTest: ECG has ${leads} leads and ${samples} samples; expected at least one of each`);
  if (options.sampleRelevance.length !== samples) {
    throw new Error(`ecgDeletionTest: ${options.sampleRelevance.length} relevance values; expected one per sample (${samples})`);
  }
  const fraction = options.fraction ?? 0.1;
  if (!(fraction > 0 && fraction <= 1)) throw new Error(`ecgDeletionTest: fraction ${fraction}; expected a value in (0, 1]`);
  const spanLength = options.spanLength ?? 25;
  if (!Number.isInteger(spanLength) || spanLength < 1) {
    throw new Error(`ecgDeletionTest: span length ${spanLength}; expected a positive integer`);
  }
  const trials = options.randomTrials ?? 5;
  const count = Math.max(1, Math.round(fraction * samples));
  const relevance = options.sampleRelevance;

  const ranked = Array.from({ length: samples }, (_, i) => i).sort((a, b) => relevance[b] - relevance[a] || a - b);
  const relevantSamples = ranked.slice(0, count).sort((a, b) => a - b);
  const rng = new Rng(options.seed ?? 0);
  const variants = [relevantSamples];
  for (let trial = 0; trial < trials; trial++) variants.push(randomSpanSamples(samples, count, spanLength, rng));

  // Keep-masks over time: 1 keeps a sample, 0 replaces it by the fill value. Variant 0 is the unmasked ECG.
  const keep = new Float32Array((variants.length + 1) * samples).fill(1);
  variants.forEach((chosen, v) => {
    for (const s of chosen) keep[(v + 1) * samples + s] = 0;
  });

  const similarities = tf.tidy(() => {
    const keepMask = tf.tensor3d(keep, [variants.length + 1, 1, samples]);
    const tiled = tf.tile(ecg, [variants.length + 1, 1, 1]);
    const fill = tf.mul(tf.sub(1, keepMask), options.fillValue ?? 0);
    const masked = tf.add(tf.mul(tiled, keepMask), fill) as tf.Tensor3D; // [V + 1, leads, samples]
    return cosineToReference(options.embed(masked), options.reference);
  });
  return { ...similarityDrops(similarities), maskedSamples: count, relevantSamples };
}

// ---------------------------------------------------------------------------
// The MoRE model and the explanation bundle.

/** The parts of the MoRE model that explanations use. */
export type ExplainableModel = Pick<MoreModelApi, 'encodeImage' | 'encodeEcg' | 'encodeText'> & {
  config: { image: { patchSize: number }; ecg: EcgConfig };
};

/** One study to explain: its report and, when present, its X-ray and ECG (batch size 1 each). */
export interface ExplainSampleInput {
  /** [1, H, W, 3] normalised X-ray. */
  image?: tf.Tensor4D;
  /** [1, leads, samples] preprocessed ECG. */
  ecg?: tf.Tensor3D;
  /** [1, T] int32 token ids and attention mask of the report. */
  inputIds: tf.Tensor2D;
  attentionMask: tf.Tensor2D;
  /** Display text and special-token flags of the report's positions. */
  tokens: string[];
  specialTokens: boolean[];
  /** Pooling of the model's text encoder (default `masked-mean`). */
  textPooling?: TextExplainOptions['pooling'];
}

/** Relevance of each modality of one study. */
export interface SampleExplanation {
  xray?: ImageRelevance;
  ecg?: EcgRelevance;
  report: TextRelevance;
  /** Cosine similarity of the X-ray (and of the ECG) to the report. */
  similarity: { xray?: number; ecg?: number };
}

function embedOnce(compute: () => tf.Tensor2D): number[] {
  const embedding = tf.tidy(compute);
  const values = Array.from(embedding.dataSync());
  embedding.dispose();
  return values;
}

/**
 * Explains one study with the MoRE model. The X-ray and the ECG are explained
 * towards their cosine similarity to the report embedding. The report is
 * explained towards its similarity to the X-ray embedding, to the ECG
 * embedding, or to the mean of both similarities when both are present.
 */
export function explainMoreSample(model: ExplainableModel, input: ExplainSampleInput): SampleExplanation {
  const inference = { training: false };
  const reportEmbedding = embedOnce(() => model.encodeText(input.inputIds, input.attentionMask, inference).embedding);
  const reportTarget = cosineTarget(reportEmbedding);
  const similarity: SampleExplanation['similarity'] = {};
  const others: number[][] = [];
  let xray: ImageRelevance | undefined;
  let ecg: EcgRelevance | undefined;

  if (input.image !== undefined) {
    const forward: AttentionForward<tf.Tensor4D> = (x, options) => model.encodeImage(x, { ...options, training: false });
    xray = explainImage(forward, input.image, reportTarget, model.config.image.patchSize);
    similarity.xray = xray.target;
    const image = input.image;
    others.push(embedOnce(() => model.encodeImage(image, inference).embedding));
  }
  if (input.ecg !== undefined) {
    const { conv1Kernel, conv1Stride, conv2Kernel } = model.config.ecg;
    const layers = [{ kernel: conv1Kernel, stride: conv1Stride }, { kernel: conv2Kernel, stride: 1 }];
    const forward: AttentionForward<tf.Tensor3D> = (x, options) => model.encodeEcg(x, { ...options, training: false });
    ecg = explainEcg(forward, input.ecg, reportTarget, layers);
    similarity.ecg = ecg.target;
    const signals = input.ecg;
    others.push(embedOnce(() => model.encodeEcg(signals, inference).embedding));
  }
  if (others.length === 0) throw new Error('explainMoreSample: no X-ray and no ECG; expected at least one to explain the report against');

  const targets = others.map((embedding) => cosineTarget(embedding));
  const textTarget: ExplainTarget = (embedding) => tf.tidy(() => tf.div(tf.addN(targets.map((t) => t(embedding))), targets.length) as tf.Scalar);
  const textForward: TextAttentionForward = (ids, mask, options) => model.encodeText(ids, mask, { ...options, training: false });
  const report = explainText(textForward, input.inputIds, input.attentionMask, textTarget, {
    tokens: input.tokens, specialTokens: input.specialTokens, pooling: input.textPooling,
  });
  const result: SampleExplanation = { report, similarity };
  if (xray !== undefined) result.xray = xray;
  if (ecg !== undefined) result.ecg = ecg;
  return result;
}

/** Relevance of one study towards each class, for example towards each zero-shot class's prompt embedding. */
export interface ClassExplanations {
  /** Class names in display order. */
  classNames: string[];
  xray?: Record<string, ImageRelevance>;
  ecg?: Record<string, EcgRelevance>;
}

/**
 * Explains an X-ray and an ECG towards each class: the target of class c is
 * the cosine similarity to `classEmbeddings[c]` (for example the mean
 * embedding of the class's prompts).
 */
export function explainClasses(
  model: ExplainableModel,
  input: { image?: tf.Tensor4D; ecg?: tf.Tensor3D },
  classEmbeddings: Record<string, ArrayLike<number>>,
): ClassExplanations {
  const classNames = Object.keys(classEmbeddings);
  if (classNames.length === 0) throw new Error('explainClasses: no classes; expected at least one class embedding');
  const result: ClassExplanations = { classNames };
  if (input.image !== undefined) {
    const image = input.image;
    const forward: AttentionForward<tf.Tensor4D> = (x, options) => model.encodeImage(x, { ...options, training: false });
    result.xray = {};
    for (const name of classNames) {
      result.xray[name] = explainImage(forward, image, cosineTarget(classEmbeddings[name]), model.config.image.patchSize);
    }
  }
  if (input.ecg !== undefined) {
    const signals = input.ecg;
    const { conv1Kernel, conv1Stride, conv2Kernel } = model.config.ecg;
    const layers = [{ kernel: conv1Kernel, stride: conv1Stride }, { kernel: conv2Kernel, stride: 1 }];
    const forward: AttentionForward<tf.Tensor3D> = (x, options) => model.encodeEcg(x, { ...options, training: false });
    result.ecg = {};
    for (const name of classNames) result.ecg[name] = explainEcg(forward, signals, cosineTarget(classEmbeddings[name]), layers);
  }
  return result;
}

/**
 * Converts pixel values of any range to an 8-bit grayscale image for a
 * bundle, scaling the minimum to 0 and the maximum to 255.
 */
export function grayscaleImage(pixels: ArrayLike<number>, width: number, height: number): GrayscaleImage {
  if (pixels.length !== width * height) {
    throw new Error(`grayscaleImage: ${pixels.length} pixels for ${width} x ${height}; expected ${width * height}`);
  }
  let low = Number.POSITIVE_INFINITY;
  let high = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < pixels.length; i++) {
    low = Math.min(low, pixels[i]);
    high = Math.max(high, pixels[i]);
  }
  const range = high > low ? high - low : 1;
  const data = Array.from(pixels, (value) => Math.round(((value - low) / range) * 255));
  return { encoding: 'raw', width, height, data };
}

/** Display data of the explained study that the relevance maps are drawn over. */
export interface ExplanationDisplay {
  title?: string;
  /** The X-ray to draw under the heatmap, usually {@link grayscaleImage} of the input. */
  xrayImage?: GrayscaleImage;
  /** The ECG to draw, [lead][sample], with its lead names and sample rate. */
  ecg?: { leads: string[]; sampleRateHz: number; signals: number[][] };
  /** Per-class relevance from {@link explainClasses}, shown as one map per class. */
  classes?: ClassExplanations;
}

/** Builds the MIME bundle the JupyterLab extension renders from a {@link SampleExplanation}. */
export function toExplanationBundle(explanation: SampleExplanation, display: ExplanationDisplay): ExplanationBundle {
  const bundle: ExplanationBundle = { version: BUNDLE_VERSION };
  if (display.title !== undefined) bundle.title = display.title;
  const similarities = [explanation.similarity.xray, explanation.similarity.ecg].filter((v): v is number => v !== undefined);
  if (similarities.length > 0) bundle.similarity = similarities.reduce((a, b) => a + b, 0) / similarities.length;

  bundle.report = { tokens: explanation.report.tokens, relevance: explanation.report.relevance };
  if (explanation.xray !== undefined) {
    if (display.xrayImage === undefined) throw new Error('toExplanationBundle: the explanation has an X-ray part but display.xrayImage is missing');
    const { rows, cols, patchRelevance } = explanation.xray;
    bundle.xray = { image: display.xrayImage, patchGrid: { rows, cols }, relevanceLayout: 'patch', relevance: patchRelevance };
  }
  if (explanation.ecg !== undefined) {
    if (display.ecg === undefined) throw new Error('toExplanationBundle: the explanation has an ECG part but display.ecg is missing');
    bundle.ecg = { ...display.ecg, relevance: [explanation.ecg.sampleRelevance] };
  }
  addClassMaps(bundle, display.classes);
  return bundle;
}

function addClassMaps(bundle: ExplanationBundle, classes: ClassExplanations | undefined): void {
  if (classes === undefined) return;
  bundle.classNames = classes.classNames;
  if (classes.xray !== undefined) {
    if (bundle.xray === undefined) throw new Error('toExplanationBundle: per-class X-ray maps need the X-ray part of the explanation');
    const byClass: Record<string, number[]> = {};
    for (const [name, relevance] of Object.entries(classes.xray)) byClass[name] = relevance.patchRelevance;
    bundle.xray.relevanceByClass = byClass;
  }
  if (classes.ecg !== undefined) {
    if (bundle.ecg === undefined) throw new Error('toExplanationBundle: per-class ECG maps need the ECG part of the explanation');
    const byClass: Record<string, number[][]> = {};
    for (const [name, relevance] of Object.entries(classes.ecg)) byClass[name] = [relevance.sampleRelevance];
    bundle.ecg.relevanceByClass = byClass;
  }
}
