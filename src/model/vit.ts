/**
 * Vision Transformer (Dosovitskiy et al., "An Image is Worth 16x16 Words",
 * ICLR 2021) as timm's `VisionTransformer` builds it: class token, learned
 * position embeddings, pre-norm blocks, final LayerNorm, class-token pooling.
 * MoRE builds qkv without bias and adds DropKey (Xu et al., "DropKey for
 * Vision Transformer", CVPR 2023): in training each pre-softmax attention
 * logit is masked with probability `dropKeyRate`.
 *
 * Weights keep timm's names and PyTorch layouts (`blocks.0.attn.qkv.weight`
 * is [3 * width, width]) so timm checkpoints load by name. Images are NHWC.
 */
import * as tf from '@tensorflow/tfjs';

import { traceFeed } from '../backend/graph/trace';
import { bernoulliMask, Rng } from '../util/rng';
import { type TrunkConfig, type VitConfig, validateVitConfig } from './config';
import { type CustomGradient, LayerNorm, Linear, gelu, nextInitialisationSeed, truncatedNormal } from './layers';
import { Module } from './module';
import type { EncoderForwardOptions, EncoderOutput, ImageEncoder } from './types';

/** Value added to a dropped attention logit, as in the MoRE reference. Softmax turns it into an exact zero. */
const DROPPED_LOGIT = -1e12;

/** Returns the DropKey term for `size` logits: DROPPED_LOGIT with probability `rate`, else 0. */
function dropKeyTerm(size: number, rate: number, seed: number): Float32Array {
  return bernoulliMask(size, rate, seed, DROPPED_LOGIT, 0);
}

/**
 * Applies softmax over the last axis after DropKey. With `dropRate` above 0,
 * each logit is masked with that probability, using a mask drawn from `seed`.
 * The custom gradient keeps only the probabilities for the backward pass.
 * Built from primitive ops, the mask and the masked logits would also be
 * kept, two more tensors of the attention size per block.
 */
function dropKeySoftmax(logits: tf.Tensor4D, dropRate: number, seed: number, nextSeed?: () => number): tf.Tensor4D {
  const drawSeed = nextSeed ?? ((): number => {
    throw new Error('DropKey in a compiled graph needs the block context to carry nextDropKeySeed');
  });
  const softmax = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const value = tf.tidy(() => {
      if (dropRate === 0) return tf.softmax(x);
      const term = (maskSeed: number): tf.Tensor => tf.tensor(dropKeyTerm(x.size, dropRate, maskSeed), x.shape);
      // A compiled graph draws a fresh mask for every replay, from the same generator.
      return tf.softmax(tf.add(x, traceFeed(term(seed), () => term(drawSeed()))));
    });
    save([value]);
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor =>
      tf.tidy(() => {
        const [probabilities] = saved;
        // Softmax Jacobian-vector product: p * (dy - sum(dy * p)) over the last axis.
        return tf.mul(probabilities, tf.sub(dy, tf.sum(tf.mul(dy, probabilities), -1, true)));
      });
    return { value, gradFunc };
  }) as unknown as CustomGradient);
  return softmax(logits) as tf.Tensor4D;
}

/** Per-call state a block needs besides its input. */
interface BlockContext {
  /** Batch size and sequence length of the [B * T, C] rows. */
  B: number;
  T: number;
  training: boolean;
  /** Seed for this block's DropKey mask. */
  dropKeySeed: number;
  /** Draws the next block seed from the encoder's generator, for replays of a compiled graph. */
  nextDropKeySeed?: () => number;
  offset?: tf.Tensor4D;
  keepAttention: boolean;
}

/** Multi-head self-attention with DropKey, with timm's names `qkv` and `proj`. */
export class Attention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  private readonly headDim: number;
  private readonly scale: number;

  constructor(readonly width: number, readonly heads: number, qkvBias: boolean, readonly dropKeyRate: number) {
    super();
    this.qkv = this.addChild('qkv', new Linear(width, 3 * width, qkvBias));
    this.proj = this.addChild('proj', new Linear(width, width));
    this.headDim = width / heads;
    this.scale = 1 / Math.sqrt(this.headDim);
  }

  /** Attends over `rows`, the [B * T, C] token states of B sequences of T tokens. */
  apply(rows: tf.Tensor2D, context: BlockContext): { output: tf.Tensor2D; attention?: tf.Tensor4D } {
    return tf.tidy(() => {
      const { B, T } = context;
      const C = this.width;
      const H = this.heads;
      const D = this.headDim;
      const qkv = tf.transpose(tf.reshape(this.qkv.apply(rows), [B, T, 3, H, D]), [2, 0, 3, 1, 4]); // [3, B, H, T, D]
      const [q, k, v] = tf.unstack(qkv) as tf.Tensor4D[]; // each [B, H, T, D]

      const logits = tf.matMul(tf.mul(q, this.scale), k, false, true) as tf.Tensor4D; // [B, H, T, T]
      const dropRate = context.training ? this.dropKeyRate : 0;
      let attention = dropKeySoftmax(logits, dropRate, context.dropKeySeed, context.nextDropKeySeed); // over keys, the last axis
      if (context.offset !== undefined) attention = tf.add(attention, context.offset);

      const mixed = tf.matMul(attention, v) as tf.Tensor4D; // [B, H, T, D]
      const merged = tf.reshape(tf.transpose(mixed, [0, 2, 1, 3]), [B * T, C]) as tf.Tensor2D; // [B * T, H * D]
      const output = this.proj.apply(merged);
      return context.keepAttention ? { output, attention } : { output };
    });
  }
}

/** Two-layer MLP with exact GELU (`fc1`, `fc2` as in timm). */
export class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(width: number, hidden: number) {
    super();
    this.fc1 = this.addChild('fc1', new Linear(width, hidden));
    this.fc2 = this.addChild('fc2', new Linear(hidden, width));
  }

  apply(rows: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.fc2.apply(gelu(this.fc1.apply(rows))));
  }
}

/** Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)). */
export class Block extends Module {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;

  constructor(config: TrunkConfig) {
    super();
    this.norm1 = this.addChild('norm1', new LayerNorm(config.width, config.layerNormEps));
    this.attn = this.addChild('attn', new Attention(config.width, config.heads, config.qkvBias, config.dropKeyRate));
    this.norm2 = this.addChild('norm2', new LayerNorm(config.width, config.layerNormEps));
    this.mlp = this.addChild('mlp', new Mlp(config.width, config.mlpDim));
  }

  /** Transforms `rows`, the [B * T, C] token states (rank 2 spares a reshape per layer). */
  apply(rows: tf.Tensor2D, context: BlockContext): { output: tf.Tensor2D; attention?: tf.Tensor4D } {
    return tf.tidy(() => {
      const { output: attended, attention } = this.attn.apply(this.norm1.apply(rows), context);
      const afterAttention = tf.add(rows, attended) as tf.Tensor2D;
      const output = tf.add(afterAttention, this.mlp.apply(this.norm2.apply(afterAttention))) as tf.Tensor2D;
      return attention !== undefined ? { output, attention } : { output };
    });
  }
}

/** Options for building an encoder. */
export interface EncoderBuildOptions {
  /** Seed of the DropKey masks (default 0). The generator's state is `encoder.rng`. */
  seed?: number;
}

/**
 * The transformer trunk shared by the X-ray and ECG encoders. Subclasses add
 * a `patch_embed` child that turns their input into [B, N, width] tokens.
 *
 * NOTE: under `tf.variableGrads` a ViT-B block at batch 8 and 197 tokens keeps
 * about 300 MB for its backward pass (tf.memory, native backend), so one base
 * tower needs about 3.6 GB of activations and both about 7 GB.
 */
export abstract class VitTrunk extends Module {
  readonly clsToken: tf.Variable<tf.Rank.R3>;
  readonly posEmbed: tf.Variable<tf.Rank.R3>;
  readonly blocks: Block[] = [];
  readonly norm: LayerNorm;
  /** Generator of the DropKey seeds; save and restore its state to repeat a run. */
  readonly rng: Rng;

  protected constructor(readonly trunk: TrunkConfig, readonly tokenCount: number, options: EncoderBuildOptions) {
    super();
    this.rng = new Rng(options.seed ?? 0);
    this.clsToken = this.addWeight('cls_token', tf.tidy(() => tf.mul(tf.randomNormal([1, 1, trunk.width], 0, 1, 'float32', nextInitialisationSeed()), 1e-6)) as tf.Tensor3D);
    this.posEmbed = this.addWeight('pos_embed', truncatedNormal([1, tokenCount + 1, trunk.width], 0.02) as tf.Tensor3D);
    for (let index = 0; index < trunk.depth; index++) {
      this.blocks.push(this.addChild(`blocks.${index}`, new Block(trunk)));
    }
    this.norm = this.addChild('norm', new LayerNorm(trunk.width, trunk.layerNormEps));
  }

  get width(): number {
    return this.trunk.width;
  }

  /** Turns the checked input into [B, tokenCount, width] tokens. */
  protected abstract embed(input: tf.Tensor, training: boolean): tf.Tensor3D;

  /**
   * Embeds a checked input as the [B * T, C] rows the blocks take: patch
   * tokens, the class token in front and the position embedding added.
   */
  embedRows(input: tf.Tensor, training: boolean): tf.Tensor2D {
    return tf.tidy(() => {
      const B = input.shape[0];
      const patches = this.embed(input, training); // [B, N, C]
      const cls = tf.tile(this.clsToken, [B, 1, 1]); // [B, 1, C]
      const sequences = tf.add(tf.concat([cls, patches], 1), this.posEmbed); // [B, T, C], T = N + 1
      return tf.reshape(sequences, [B * (this.tokenCount + 1), this.width]) as tf.Tensor2D; // [B * T, C]
    });
  }

  /** Applies the final norm to the [B * T, C] rows of `batch` sequences, giving [B, T, C] tokens. */
  normTokens(rows: tf.Tensor2D, batch: number): tf.Tensor3D {
    return tf.tidy(() => tf.reshape(this.norm.apply(rows), [batch, this.tokenCount + 1, this.width]) as tf.Tensor3D);
  }

  /** Runs embed, blocks, norm and pool on an input whose shape was checked. */
  protected run(input: tf.Tensor, options: EncoderForwardOptions): EncoderOutput {
    const training = options.training ?? false;
    const batch = input.shape[0];
    this.checkOffsets(options.attentionOffsets, batch);
    // Seeds are drawn only in training, so evaluation leaves the generator untouched.
    const seeds = this.blocks.map(() => (training ? this.rng.nextUint32() : 0));
    return tf.tidy(() => {
      const T = this.tokenCount + 1;
      let x = this.embedRows(input, training); // [B * T, C]

      const attentions: tf.Tensor4D[] = [];
      this.blocks.forEach((block, index) => {
        const { output, attention } = block.apply(x, {
          B: batch,
          T,
          training,
          dropKeySeed: seeds[index],
          nextDropKeySeed: () => this.rng.nextUint32(),
          offset: options.attentionOffsets?.[index],
          keepAttention: options.returnAttention ?? false,
        });
        x = output;
        if (attention !== undefined) attentions.push(attention);
      });

      const tokens = this.normTokens(x, batch); // [B, T, C]
      const pooled = tf.reshape(tf.slice(tokens, [0, 0, 0], [batch, 1, this.width]), [batch, this.width]) as tf.Tensor2D;
      const result: EncoderOutput = { pooled };
      if (options.returnAttention) result.attentions = attentions;
      if (options.returnTokens) result.tokens = tokens;
      return result as unknown as tf.TensorContainer;
    }) as unknown as EncoderOutput;
  }

  private checkOffsets(offsets: tf.Tensor4D[] | undefined, batch: number): void {
    if (offsets === undefined) return;
    if (offsets.length !== this.blocks.length) {
      throw new Error(`attentionOffsets has ${offsets.length} tensors: expected one per layer (${this.blocks.length})`);
    }
    const T = this.tokenCount + 1;
    const expected = [batch, this.trunk.heads, T, T];
    offsets.forEach((offset, index) => {
      if (!tf.util.arraysEqual(offset.shape, expected)) {
        throw new Error(
          `attentionOffsets[${index}] has shape [${offset.shape.join(', ')}]: expected [${expected.join(', ')}]`,
        );
      }
    });
  }
}

/** Square-patch embedding of NHWC images through one strided convolution (`patch_embed.proj`). */
export class PatchEmbed extends Module {
  readonly weight: tf.Variable<tf.Rank.R4>;
  readonly bias: tf.Variable<tf.Rank.R1>;

  constructor(readonly patchSize: number, channels: number, width: number) {
    super();
    const fanIn = channels * patchSize * patchSize;
    // PyTorch Conv2d layout [out, in, kh, kw], which apply transposes to TensorFlow's [kh, kw, in, out].
    this.weight = this.addWeight('proj.weight', truncatedNormal([width, channels, patchSize, patchSize], Math.sqrt(1 / fanIn)) as tf.Tensor4D);
    this.bias = this.addWeight('proj.bias', tf.zeros([width]) as tf.Tensor1D);
  }

  /**
   * Embeds [B, H, W, in] images as [B, N, C] patch tokens, row-major as timm
   * orders them. The patches do not overlap, so the convolution is one matrix
   * product over unfolded patches. With the tiny preset on the CPU, that made
   * the compiled training step faster than with TensorFlow's Conv2D, and
   * inference no slower.
   */
  apply(images: tf.Tensor4D): tf.Tensor3D {
    return tf.tidy(() => {
      const [B, H, W, channels] = images.shape;
      const P = this.patchSize;
      const rows = H / P;
      const columns = W / P;
      const width = this.bias.shape[0];
      const weight = tf.reshape(tf.transpose(this.weight, [2, 3, 1, 0]), [P * P * channels, width]); // [(P, P, in), C]
      const blocks = tf.reshape(images, [B, rows, P, columns, P, channels]);
      const patches = tf.reshape(tf.transpose(blocks, [0, 1, 3, 2, 4, 5]), [B * rows * columns, P * P * channels]); // [B * N, (P, P, in)]
      const tokens = tf.add(tf.matMul(patches, weight), this.bias); // [B * N, C]
      return tf.reshape(tokens, [B, rows * columns, width]) as tf.Tensor3D;
    });
  }
}

/** The X-ray encoder: a ViT over [B, imageSize, imageSize, channels] images. */
export class VisionTransformer extends VitTrunk implements ImageEncoder {
  readonly patchEmbed: PatchEmbed;

  constructor(readonly config: VitConfig, options: EncoderBuildOptions = {}) {
    validateVitConfig(config);
    const grid = config.imageSize / config.patchSize;
    super(config, grid * grid, options);
    this.patchEmbed = this.addChild('patch_embed', new PatchEmbed(config.patchSize, config.channels, config.width));
  }

  forward(images: tf.Tensor4D, options: EncoderForwardOptions = {}): EncoderOutput {
    const { imageSize, channels } = this.config;
    const [, height, width, depth] = images.shape;
    if (images.rank !== 4 || height !== imageSize || width !== imageSize || depth !== channels) {
      throw new Error(
        `Image encoder expected NHWC images [B, ${imageSize}, ${imageSize}, ${channels}], got [${images.shape.join(', ')}]`,
      );
    }
    return this.run(images, options);
  }

  protected embed(input: tf.Tensor, _training: boolean): tf.Tensor3D {
    return this.patchEmbed.apply(input as tf.Tensor4D);
  }
}
