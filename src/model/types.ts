/**
 * Contracts shared by the MoRE encoders, heads and the model that joins them.
 * The text encoder is built elsewhere and plugs in through {@link TextEncoder}.
 */
import * as tf from '@tensorflow/tfjs';

/** Options of one encoder forward pass. */
export interface EncoderForwardOptions {
  /** Training mode: DropKey masks attention logits and BatchNorm uses batch statistics. Default false. */
  training?: boolean;
  /** Return the post-softmax attention map of every layer, each [B, heads, T, T], with any offset added. */
  returnAttention?: boolean;
  /**
   * One tensor per layer, each of the attention shape [B, heads, T, T], added
   * to the post-softmax attention before it multiplies the values. Pass zeros
   * and take `tf.grads` with respect to them: the result is the gradient with
   * respect to each attention map (as Chefer et al. relevance needs).
   */
  attentionOffsets?: tf.Tensor4D[];
  /** Return the normalised token states [B, T, width] too. */
  returnTokens?: boolean;
}

/** Result of one encoder forward pass; the caller owns (and disposes) every tensor. */
export interface EncoderOutput {
  /** Pooled features [B, width]: the class token after the final norm (ViT), or the mean of the token states (text). */
  pooled: tf.Tensor2D;
  /** Post-softmax attention maps, one [B, heads, T, T] per layer, when `returnAttention` was set. */
  attentions?: tf.Tensor4D[];
  /** Final token states [B, T, width], when `returnTokens` was set. */
  tokens?: tf.Tensor3D;
}

/** Options of {@link WeightOwner.loadNamedWeights}. */
export interface LoadWeightsOptions {
  /**
   * When true (the default) every weight of the module must be in the map and
   * every name in the map must belong to the module. When false, names the
   * module does not have and weights the map lacks are listed in the report.
   * Shapes must match in both modes.
   */
  strict?: boolean;
}

/** Outcome of {@link WeightOwner.loadNamedWeights}. */
export interface LoadWeightsReport {
  loaded: string[];
  /** Module weights the map did not provide (only when not strict). */
  missing: string[];
  /** Map entries the module does not have (only when not strict). */
  unexpected: string[];
}

/** Anything whose weights are addressed by checkpoint-style names. */
export interface WeightOwner {
  /**
   * Every weight and buffer (BatchNorm running statistics included) under the
   * name it has in the matching PyTorch `state_dict`, for example
   * `blocks.0.attn.qkv.weight`. Shapes follow PyTorch (Linear is [out, in]).
   */
  namedWeights(): Map<string, tf.Variable>;
  /** Copies weights in by name, checking every name and shape (a mismatch names both). */
  loadNamedWeights(weights: Map<string, tf.Tensor>, options?: LoadWeightsOptions): LoadWeightsReport;
  /** Variables an optimiser should update. */
  trainableVariables(): tf.Variable[];
  /** Frees every tensor and variable the owner holds. */
  dispose(): void;
}

/** The X-ray (image) encoder. Images are NHWC: [B, height, width, channels]. */
export interface ImageEncoder extends WeightOwner {
  readonly width: number;
  forward(images: tf.Tensor4D, options?: EncoderForwardOptions): EncoderOutput;
}

/** The ECG encoder. Signals are leads first: [B, leads, samples]. */
export interface SignalEncoder extends WeightOwner {
  readonly width: number;
  forward(signals: tf.Tensor3D, options?: EncoderForwardOptions): EncoderOutput;
}

/**
 * The report encoder (BERT / RoBERTa with optional LoRA), built by the text
 * module. `inputIds` and `attentionMask` are [B, T] int32 (mask 1 for real
 * tokens, 0 for padding); `pooled` is [B, width].
 */
export interface TextEncoder extends WeightOwner {
  readonly width: number;
  forward(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, options?: EncoderForwardOptions): EncoderOutput;
}

/**
 * One training or evaluation batch of B reports. A sample may lack its X-ray
 * or its ECG: `images` and `ecgs` still have B rows (any values where the
 * sample lacks one), and `imagePresent` / `ecgPresent` mark the rows that are real.
 * Missing flags mean every row is present. Leave `images` or `ecgs` out when
 * no sample of the batch has one.
 */
export interface MoreBatch {
  /** [B, H, W, 3] NHWC, normalised X-rays. */
  images?: tf.Tensor4D;
  /** [B, leads, samples] ECGs. */
  ecgs?: tf.Tensor3D;
  /** [B, T] int32 token ids of the reports. */
  inputIds: tf.Tensor2D;
  /** [B, T] int32, 1 for tokens and 0 for padding. */
  attentionMask: tf.Tensor2D;
  imagePresent?: boolean[];
  ecgPresent?: boolean[];
}

/** Shared-space embeddings of the samples that have one modality. */
export interface ModalityEmbedding {
  /** [n, dim] projected embeddings (not normalised). */
  embedding: tf.Tensor2D;
  /** The batch rows these n embeddings belong to, ascending. */
  rows: number[];
}

/** Output of {@link MoreModelApi.forward}; the caller disposes it (see `disposeMoreOutput`). */
export interface MoreOutput {
  /** [B, dim] report embeddings. */
  text: tf.Tensor2D;
  /** X-ray embeddings of the rows that have an X-ray; absent when none has. */
  image?: ModalityEmbedding;
  /** ECG embeddings of the rows that have an ECG; absent when none has. */
  ecg?: ModalityEmbedding;
}

/** Per-modality output of the `encode*` methods. */
export interface ModalityOutput extends EncoderOutput {
  /** [B, dim] embedding in the shared space (projection head output, not normalised). */
  embedding: tf.Tensor2D;
}

/** Public surface of the MoRE model, for code written against it. */
export interface MoreModelApi extends WeightOwner {
  encodeImage(images: tf.Tensor4D, options?: EncoderForwardOptions): ModalityOutput;
  encodeEcg(ecgs: tf.Tensor3D, options?: EncoderForwardOptions): ModalityOutput;
  encodeText(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, options?: EncoderForwardOptions): ModalityOutput;
  forward(batch: MoreBatch, options?: { training?: boolean }): MoreOutput;
  /** Contrastive loss of a forward output: InfoNCE(report, X-ray) + InfoNCE(report, ECG) over present pairs. */
  loss(output: MoreOutput): tf.Scalar;
}
