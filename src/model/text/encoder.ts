/**
 * BERT (Devlin et al., NAACL 2019) and RoBERTa (Liu et al., arXiv 1907.11692)
 * encoders as transformers builds `BertModel` / `RobertaModel`. Token,
 * position and token-type embeddings feed post-norm layers: attention, then a
 * GELU feed-forward block, each followed by a residual LayerNorm. An optional
 * pooler sits on top. Weight names are transformers' without the `bert.` or
 * `roberta.` prefix (`encoder.layer.0.attention.self.query.weight`) and Linear
 * weights are [out, in], so Hugging Face checkpoints load by name.
 *
 * The pooled output is the mean of the last hidden states. By default it
 * averages over real tokens only; `pooling: 'mean'` averages over all
 * positions, padding included, as the MoRE reference does.
 */
import * as tf from '@tensorflow/tfjs';

import { Rng } from '../../util/rng';
import { LayerNorm, gelu, seededDropout } from '../layers';
import { type LoraApplication, type LoraConfig, LoraLinear, applyLora, countParameters, type ParameterCounts } from '../lora';
import { Module } from '../module';
import type { EncoderForwardOptions, EncoderOutput, TextEncoder } from '../types';
import { type TextActivation, type TextEncoderConfig, maxTextLength, validateTextConfig } from './config';

/** Added to the attention logits of padding keys, as transformers' extended attention mask does. */
const MASKED_LOGIT = -1e9;

export const TEXT_POOLING_MODES = ['masked-mean', 'mean'] as const;
/** `masked-mean`: mean over real tokens (the default). `mean`: over every position (the MoRE reference). */
export type TextPooling = (typeof TEXT_POOLING_MODES)[number];

/** Options of one text forward pass. */
export interface TextForwardOptions extends EncoderForwardOptions {
  /** [B, T] segment ids of a sentence pair (BERT); zeros when absent. */
  tokenTypeIds?: tf.Tensor2D;
  /** Overrides the encoder's pooling for this call. */
  pooling?: TextPooling;
}

/** Options for building an encoder. */
export interface TextBuildOptions {
  /** Seed of the initial weights and of the dropout masks (default 0). */
  seed?: number;
  /**
   * Draw random initial weights (default true). Loaders pass false because
   * the draw runs in JavaScript and takes tens of seconds for a base-size
   * model whose weights a checkpoint replaces anyway.
   */
  randomInit?: boolean;
  pooling?: TextPooling;
}

/** Per-call state a layer needs besides its input. */
interface LayerContext {
  training: boolean;
  /** [B, 1, 1, T] additive mask over keys. */
  maskBias: tf.Tensor4D;
  offset?: tf.Tensor4D;
  keepAttention: boolean;
  /** Draws a seed for one dropout mask. */
  nextSeed: () => number;
}

/** A lookup table with transformers' name `weight` [rows, width]. */
export class Embedding extends Module {
  readonly weight: tf.Variable<tf.Rank.R2>;

  constructor(readonly rows: number, readonly width: number, initStd: number, seed: number, paddingRow?: number) {
    super();
    const initial = tf.tidy(() => {
      if (initStd === 0) return tf.zeros([rows, width]) as tf.Tensor2D;
      const values = tf.randomNormal([rows, width], 0, initStd, 'float32', seed) as tf.Tensor2D;
      if (paddingRow === undefined) return values;
      // The padding row starts at zero, as torch's nn.Embedding(padding_idx) sets it.
      const keep = tf.oneHot(tf.tensor1d([paddingRow], 'int32'), rows).reshape([rows, 1]);
      return tf.mul(values, tf.sub(1, keep)) as tf.Tensor2D;
    });
    this.weight = this.addWeight('weight', initial);
  }

  /** Looks up [B, T] int32 ids, giving [B, T, width]. */
  apply(ids: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => tf.gather(this.weight, ids) as tf.Tensor as tf.Tensor3D);
  }
}

function dropout<T extends tf.Tensor>(x: T, rate: number, context: LayerContext): T {
  if (!context.training || rate === 0) return x;
  return seededDropout(x, rate, context.nextSeed);
}

function activate(x: tf.Tensor3D, name: TextActivation): tf.Tensor3D {
  switch (name) {
    case 'gelu':
      return gelu(x);
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      // The tanh approximation: 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).
      return tf.tidy(() => {
        const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
        return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner))) as tf.Tensor3D;
      });
    case 'relu':
      return tf.relu(x);
  }
}

/** Word, position and token-type embeddings, summed and normalised (`embeddings.*`). */
export class TextEmbeddings extends Module {
  readonly wordEmbeddings: Embedding;
  readonly positionEmbeddings: Embedding;
  readonly tokenTypeEmbeddings: Embedding;
  readonly layerNorm: LayerNorm;

  constructor(readonly config: TextEncoderConfig, seed: number, initStd: number) {
    super();
    const H = config.hiddenSize;
    this.wordEmbeddings = this.addChild('word_embeddings', new Embedding(config.vocabSize, H, initStd, seed, config.padTokenId));
    const positionPadding = config.modelType === 'roberta' ? config.padTokenId : undefined;
    this.positionEmbeddings = this.addChild(
      'position_embeddings', new Embedding(config.maxPositionEmbeddings, H, initStd, seed + 1, positionPadding),
    );
    this.tokenTypeEmbeddings = this.addChild('token_type_embeddings', new Embedding(config.typeVocabSize, H, initStd, seed + 2));
    this.layerNorm = this.addChild('LayerNorm', new LayerNorm(H, config.layerNormEps));
  }

  /**
   * Position ids [B, T]. RoBERTa counts real tokens from padTokenId + 1 and
   * gives padding tokens padTokenId; BERT uses 0..T-1.
   */
  positionIds(inputIds: tf.Tensor2D): tf.Tensor2D {
    const [B, T] = inputIds.shape;
    const pad = this.config.padTokenId;
    return tf.tidy(() => {
      if (this.config.modelType === 'bert') return tf.tile(tf.range(0, T, 1, 'int32').reshape([1, T]), [B, 1]) as tf.Tensor2D;
      const isToken = tf.cast(tf.notEqual(inputIds, pad), 'int32'); // [B, T]
      return tf.add(tf.mul(tf.cumsum(isToken, 1), isToken), tf.scalar(pad, 'int32')) as tf.Tensor2D;
    });
  }

  apply(inputIds: tf.Tensor2D, tokenTypeIds: tf.Tensor2D | undefined, context: LayerContext): tf.Tensor3D {
    return tf.tidy(() => {
      const types = tokenTypeIds ?? tf.zerosLike(inputIds);
      let x = tf.add(this.wordEmbeddings.apply(inputIds), this.tokenTypeEmbeddings.apply(types)) as tf.Tensor3D;
      x = tf.add(x, this.positionEmbeddings.apply(this.positionIds(inputIds))); // [B, T, H]
      return dropout(this.layerNorm.apply(x), this.config.hiddenDropoutProb, context);
    });
  }
}

/** One post-norm encoder layer (`encoder.layer.N.*`). */
export class TextLayer extends Module {
  readonly query: LoraLinear;
  readonly key: LoraLinear;
  readonly value: LoraLinear;
  readonly attentionOutput: LoraLinear;
  readonly attentionNorm: LayerNorm;
  readonly intermediate: LoraLinear;
  readonly output: LoraLinear;
  readonly outputNorm: LayerNorm;
  private readonly headDim: number;

  constructor(readonly config: TextEncoderConfig, initStd: number, seed: number) {
    super();
    const H = config.hiddenSize;
    const I = config.intermediateSize;
    this.query = this.addChild('attention.self.query', new LoraLinear(H, H, true, initStd, seed));
    this.key = this.addChild('attention.self.key', new LoraLinear(H, H, true, initStd, seed + 1));
    this.value = this.addChild('attention.self.value', new LoraLinear(H, H, true, initStd, seed + 2));
    this.attentionOutput = this.addChild('attention.output.dense', new LoraLinear(H, H, true, initStd, seed + 3));
    this.attentionNorm = this.addChild('attention.output.LayerNorm', new LayerNorm(H, config.layerNormEps));
    this.intermediate = this.addChild('intermediate.dense', new LoraLinear(H, I, true, initStd, seed + 4));
    this.output = this.addChild('output.dense', new LoraLinear(I, H, true, initStd, seed + 5));
    this.outputNorm = this.addChild('output.LayerNorm', new LayerNorm(H, config.layerNormEps));
    this.headDim = H / config.numAttentionHeads;
  }

  /** Lists the dense layers under their names relative to this layer. */
  denseLayers(): [string, LoraLinear][] {
    return [
      ['attention.self.query', this.query],
      ['attention.self.key', this.key],
      ['attention.self.value', this.value],
      ['attention.output.dense', this.attentionOutput],
      ['intermediate.dense', this.intermediate],
      ['output.dense', this.output],
    ];
  }

  apply(x: tf.Tensor3D, context: LayerContext): { output: tf.Tensor3D; attention?: tf.Tensor4D } {
    return tf.tidy(() => {
      const [B, T, H] = x.shape;
      const heads = this.config.numAttentionHeads;
      const D = this.headDim;
      const split = (t: tf.Tensor3D): tf.Tensor4D =>
        tf.transpose(tf.reshape(t, [B, T, heads, D]), [0, 2, 1, 3]) as tf.Tensor4D; // [B, heads, T, D]
      const project = (layer: LoraLinear): tf.Tensor3D => layer.apply(x, context.training, context.nextSeed);
      const q = split(project(this.query));
      const k = split(project(this.key));
      const v = split(project(this.value));

      let logits = tf.matMul(q, k, false, true) as tf.Tensor4D; // [B, heads, T, T]
      logits = tf.add(tf.mul(logits, 1 / Math.sqrt(D)), context.maskBias);
      const attention = tf.softmax(logits) as tf.Tensor4D; // over keys, the last axis
      let weights = context.offset !== undefined ? (tf.add(attention, context.offset) as tf.Tensor4D) : attention;
      weights = dropout(weights, this.config.attentionProbsDropoutProb, context);

      const mixed = tf.matMul(weights, v); // [B, heads, T, D]
      const merged = tf.reshape(tf.transpose(mixed, [0, 2, 1, 3]), [B, T, H]) as tf.Tensor3D; // [B, T, heads * D]
      const attended = dropout(this.attentionOutput.apply(merged, context.training, context.nextSeed), this.config.hiddenDropoutProb, context);
      const afterAttention = this.attentionNorm.apply(tf.add(attended, x) as tf.Tensor3D);

      const hidden = activate(this.intermediate.apply(afterAttention, context.training, context.nextSeed), this.config.hiddenAct);
      const projected = dropout(this.output.apply(hidden, context.training, context.nextSeed), this.config.hiddenDropoutProb, context);
      const output = this.outputNorm.apply(tf.add(projected, afterAttention) as tf.Tensor3D);
      return context.keepAttention ? { output, attention } : { output };
    });
  }
}

/**
 * The report encoder: BERT or RoBERTa with optional LoRA adapters on its
 * dense layers. `forward` takes [B, T] int32 ids and mask and returns the
 * pooled [B, hiddenSize] features; see {@link TextForwardOptions}.
 */
export class TransformerTextEncoder extends Module implements TextEncoder {
  readonly embeddings: TextEmbeddings;
  readonly layers: TextLayer[] = [];
  readonly pooler?: LoraLinear;
  /** Pooling mode of `forward` unless a call overrides it. */
  pooling: TextPooling;
  /** Generator of the dropout seeds; save and restore its state to repeat a run. */
  readonly rng: Rng;
  private loraApplication?: LoraApplication;

  constructor(readonly config: TextEncoderConfig, options: TextBuildOptions = {}) {
    super();
    validateTextConfig(config);
    const seed = options.seed ?? 0;
    this.pooling = options.pooling ?? 'masked-mean';
    checkPooling(this.pooling);
    this.rng = new Rng(seed);
    // transformers initialises BERT-family weights from N(0, 0.02^2).
    const initStd = (options.randomInit ?? true) ? 0.02 : 0;
    this.embeddings = this.addChild('embeddings', new TextEmbeddings(config, seed, initStd));
    for (let index = 0; index < config.numHiddenLayers; index++) {
      this.layers.push(this.addChild(`encoder.layer.${index}`, new TextLayer(config, initStd, seed + 10 * (index + 1))));
    }
    if (config.addPoolingLayer) {
      this.pooler = this.addChild('pooler.dense', new LoraLinear(config.hiddenSize, config.hiddenSize, true, initStd, seed + 5));
    }
  }

  get width(): number {
    return this.config.hiddenSize;
  }

  /** Maximum input length in tokens that the position table allows. */
  get maxLength(): number {
    return maxTextLength(this.config);
  }

  /** Lists every dense layer under its full name, for LoRA targeting. */
  denseLayers(): Map<string, LoraLinear> {
    const layers = new Map<string, LoraLinear>();
    this.layers.forEach((layer, index) => {
      for (const [name, dense] of layer.denseLayers()) layers.set(`encoder.layer.${index}.${name}`, dense);
    });
    if (this.pooler !== undefined) layers.set('pooler.dense', this.pooler);
    return layers;
  }

  /** Adds LoRA adapters (peft semantics, reference settings by default) and freezes the rest. */
  addLora(config: Partial<LoraConfig> = {}, seed = 0): LoraApplication {
    if (this.loraApplication !== undefined) throw new Error('The text encoder already has LoRA adapters');
    this.loraApplication = applyLora(this, this.denseLayers(), config, seed);
    return this.loraApplication;
  }

  /** The LoRA settings in use, or undefined without adapters. */
  get lora(): LoraConfig | undefined {
    return this.loraApplication?.config;
  }

  parameterCounts(): ParameterCounts {
    return countParameters(this);
  }

  forward(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, options: TextForwardOptions = {}): EncoderOutput {
    this.checkInputs(inputIds, attentionMask, options);
    const [B, T] = inputIds.shape;
    const training = options.training ?? false;
    const pooling = options.pooling ?? this.pooling;
    checkPooling(pooling);
    const nextSeed = (): number => (training ? this.rng.nextUint32() : 0);
    return tf.tidy(() => {
      const ids = tf.cast(inputIds, 'int32') as tf.Tensor2D;
      const mask = tf.cast(attentionMask, 'float32') as tf.Tensor2D;
      const maskBias = tf.reshape(tf.mul(tf.sub(1, mask), MASKED_LOGIT), [B, 1, 1, T]) as tf.Tensor4D;
      const types = options.tokenTypeIds !== undefined ? (tf.cast(options.tokenTypeIds, 'int32') as tf.Tensor2D) : undefined;
      const base = { training, maskBias, keepAttention: options.returnAttention ?? false, nextSeed };

      let x = this.embeddings.apply(ids, types, base); // [B, T, H]
      const attentions: tf.Tensor4D[] = [];
      this.layers.forEach((layer, index) => {
        const { output, attention } = layer.apply(x, { ...base, offset: options.attentionOffsets?.[index] });
        x = output;
        if (attention !== undefined) attentions.push(attention);
      });

      const pooled = pool(x, mask, pooling);
      const result: EncoderOutput = { pooled };
      if (options.returnAttention) result.attentions = attentions;
      if (options.returnTokens) result.tokens = x;
      return result as unknown as tf.TensorContainer;
    }) as unknown as EncoderOutput;
  }

  /** Computes transformers' pooler output tanh(dense(first token)), [B, H]. MoRE does not use it. */
  poolFirstToken(hidden: tf.Tensor3D): tf.Tensor2D {
    const pooler = this.pooler;
    if (pooler === undefined) throw new Error('This text encoder has no pooler layer (addPoolingLayer is false)');
    return tf.tidy(() => {
      const [B, , H] = hidden.shape;
      const first = tf.reshape(tf.slice(hidden, [0, 0, 0], [B, 1, H]), [B, H]) as tf.Tensor2D;
      return tf.tanh(pooler.apply(first)) as tf.Tensor2D;
    });
  }

  private checkInputs(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, options: TextForwardOptions): void {
    if (inputIds.rank !== 2) throw new Error(`inputIds must be [B, T], got shape [${inputIds.shape.join(', ')}]`);
    const [B, T] = inputIds.shape;
    if (!tf.util.arraysEqual(attentionMask.shape, inputIds.shape)) {
      throw new Error(`attentionMask has shape [${attentionMask.shape.join(', ')}]: expected [${B}, ${T}] like inputIds`);
    }
    if (options.tokenTypeIds !== undefined && !tf.util.arraysEqual(options.tokenTypeIds.shape, inputIds.shape)) {
      throw new Error(`tokenTypeIds has shape [${options.tokenTypeIds.shape.join(', ')}]: expected [${B}, ${T}] like inputIds`);
    }
    if (T > this.maxLength) {
      throw new Error(
        `Input of ${T} tokens is longer than the ${this.maxLength} this ${this.config.modelType} encoder allows ` +
        `(maxPositionEmbeddings ${this.config.maxPositionEmbeddings}); truncate it to ${this.maxLength} tokens`,
      );
    }
    const offsets = options.attentionOffsets;
    if (offsets === undefined) return;
    if (offsets.length !== this.layers.length) {
      throw new Error(`attentionOffsets has ${offsets.length} tensors: expected one per layer (${this.layers.length})`);
    }
    const expected = [B, this.config.numAttentionHeads, T, T];
    offsets.forEach((offset, index) => {
      if (!tf.util.arraysEqual(offset.shape, expected)) {
        throw new Error(`attentionOffsets[${index}] has shape [${offset.shape.join(', ')}]: expected [${expected.join(', ')}]`);
      }
    });
  }
}

/** Everything needed to rebuild an encoder's architecture, as stored in a checkpoint config. */
export interface TextEncoderSpec {
  config: TextEncoderConfig;
  pooling: TextPooling;
  /** LoRA settings when the encoder carries adapters. */
  lora?: LoraConfig;
}

/** Describes an encoder so {@link buildTextEncoder} can rebuild it (weights not included). */
export function describeTextEncoder(encoder: TransformerTextEncoder): TextEncoderSpec {
  const spec: TextEncoderSpec = { config: { ...encoder.config }, pooling: encoder.pooling };
  if (encoder.lora !== undefined) spec.lora = { ...encoder.lora, targetModules: [...encoder.lora.targetModules] };
  return spec;
}

/** Builds an encoder from a {@link TextEncoderSpec}, adding its LoRA adapters. */
export function buildTextEncoder(spec: TextEncoderSpec, options: TextBuildOptions = {}): TransformerTextEncoder {
  const encoder = new TransformerTextEncoder(spec.config, { ...options, pooling: spec.pooling });
  if (spec.lora !== undefined) encoder.addLora(spec.lora, options.seed ?? 0);
  return encoder;
}

function checkPooling(pooling: string): void {
  if (!(TEXT_POOLING_MODES as readonly string[]).includes(pooling)) {
    throw new Error(`Invalid text pooling "${pooling}": expected one of ${TEXT_POOLING_MODES.join(', ')}`);
  }
}

/** Averages [B, T, H] states over T, over real tokens only for `masked-mean`. */
function pool(hidden: tf.Tensor3D, mask: tf.Tensor2D, pooling: TextPooling): tf.Tensor2D {
  return tf.tidy(() => {
    if (pooling === 'mean') return tf.mean(hidden, 1) as tf.Tensor2D;
    const weights = tf.expandDims(mask, 2); // [B, T, 1]
    const counts = tf.maximum(tf.sum(mask, 1, true), 1); // [B, 1]; an all-padding row pools to zeros
    return tf.div(tf.sum(tf.mul(hidden, weights), 1), counts) as tf.Tensor2D;
  });
}
