/**
 * Fine-tuning heads on MoRE encoders, as the PyTorch reference fine-tunes
 * them for diagnosis. Each encoder stays frozen except the qkv weights of its
 * last three transformer blocks. Those train together with the probe head of
 * `probe.ts` (the modality's projection head, dropout and a linear layer).
 * Unlike a probe, which trains on features computed once, a fine-tuned head
 * runs every batch through the encoders. Training goes through {@link fit}
 * with the probe defaults (AdamW lr 3e-5, weight decay 0.02, batch 64, up to
 * 20 epochs, cosine restarts with T_0 = 5, early stopping with patience 3).
 *
 * The trainable qkv weights are the caller's encoder variables, updated in
 * place. While a {@link FineTuneModel} exists, its encoders compute with the
 * fine-tuned weights, and `dispose()` puts the pre-trained ones back.
 *
 * The encoders run in evaluation mode apart from DropKey, which masks
 * attention logits in training as in pre-training. So the ECG patch
 * embedding normalises with its running statistics and every frozen weight
 * and buffer stays exactly as it was.
 * NOTE: the reference's `model.train()` also puts the frozen ECG patch
 * embedding's BatchNorm in training mode (batch statistics, running
 * statistics updated); this module keeps it in evaluation mode.
 */
import * as tf from '@tensorflow/tfjs';

import type { EcgEncoder } from '../model/ecg';
import type { ProjectionHead } from '../model/heads';
import type { CustomGradient } from '../model/layers';
import { MORE_WEIGHT_PREFIXES, type MoreModel } from '../model/more';
import { VisionTransformer } from '../model/vit';
import { getLogger } from '../util/log';
import { Rng } from '../util/rng';
import {
  PROBE_TRAIN_DEFAULTS, ProbeHead, probeLoss, scoreProbabilities,
  type ProbeBranch, type ProbeEvaluation, type ProbeHeadConfig, type ProbeKind,
} from './probe';
import { fit, type BatchContext, type BatchSource, type TrainableModel, type TrainingSource, type TrainOptions, type TrainResult } from './train';
import { isEpochBatchSource } from './train/sources';

const log = getLogger('tasks.finetune');

/** Trailing transformer blocks whose qkv weights train, as in the reference. */
export const DEFAULT_TRAINABLE_BLOCKS = 3;

type FineTuneEncoder = VisionTransformer | EcgEncoder;

export interface FineTuneConfig extends Omit<ProbeHeadConfig, 'trainProjector'> {
  /** Trailing blocks of each encoder whose qkv weights train (0 to the encoder depth). Default 3. */
  trainableBlocks?: number;
}

/** The encoders a head fine-tunes, one per branch. */
export interface FineTuneEncoders {
  image?: VisionTransformer;
  ecg?: EcgEncoder;
}

/** A batch of encoder inputs with its targets. */
export interface FineTuneBatch {
  /** [B, H, W, channels] NHWC X-rays, for a head with the image branch. */
  images?: tf.Tensor4D;
  /** [B, leads, samples] ECGs, for a head with the ECG branch. */
  ecgs?: tf.Tensor3D;
  /** [B, classes] 0/1 targets (multi-label) or [B] int32 class indices (multi-class). */
  targets: tf.Tensor;
}

// Encoders attached to a live fine-tuning model. A second model on one of them would overwrite the first one's weights.
const encodersInUse = new WeakSet<FineTuneEncoder>();

/**
 * Runs `encoder` on `input` and returns the pooled class token [B, width].
 * The embedding and the blocks before `firstTrainable` run inside a custom
 * gradient, where TensorFlow.js records nothing on the gradient tape. They
 * depend on no trained weight, and under `tf.variableGrads` their
 * activations would otherwise stay in memory until the backward pass. With
 * `training`, DropKey masks the attention logits of every block with masks
 * drawn from `seed`; the ECG patch embedding always uses its running statistics.
 */
export function encodeForFineTuning(
  encoder: FineTuneEncoder, input: tf.Tensor4D | tf.Tensor3D, firstTrainable: number, training: boolean, seed: number,
): tf.Tensor2D {
  checkEncoderInput(encoder, input);
  const depth = encoder.blocks.length;
  if (!Number.isInteger(firstTrainable) || firstTrainable < 0 || firstTrainable > depth) {
    throw new Error(`Invalid first trainable block ${firstTrainable}: expected an integer in [0, ${depth}]`);
  }
  const B = input.shape[0];
  const T = encoder.tokenCount + 1;
  const C = encoder.width;
  // One seed per block in block order, as VitTrunk.run draws them.
  const seedRng = new Rng(seed);
  const seeds = encoder.blocks.map(() => (training ? seedRng.nextUint32() : 0));
  const blockContext = (index: number) => ({ B, T, training, dropKeySeed: seeds[index], keepAttention: false });

  const frozenPrefix = tf.customGrad(((x: tf.Tensor, _save: tf.GradSaveFunc) => {
    const value = tf.tidy(() => {
      // The ECG patch embedding keeps its running statistics, as training false gives.
      let rows = encoder.embedRows(x, false); // [B * T, C]
      for (let index = 0; index < firstTrainable; index++) rows = encoder.blocks[index].apply(rows, blockContext(index)).output;
      return rows;
    });
    // Nothing before the first trainable block depends on a trained weight, so no gradient flows into the input.
    const gradFunc = (_dy: tf.Tensor): tf.Tensor => tf.zerosLike(x);
    return { value, gradFunc };
  }) as unknown as CustomGradient);

  return tf.tidy(() => {
    let rows = frozenPrefix(input) as tf.Tensor2D; // [B * T, C]
    for (let index = firstTrainable; index < depth; index++) rows = encoder.blocks[index].apply(rows, blockContext(index)).output;
    const tokens = encoder.normTokens(rows, B); // [B, T, C]
    return tf.reshape(tf.slice(tokens, [0, 0, 0], [B, 1, C]), [B, C]) as tf.Tensor2D; // the class token
  });
}

function checkEncoderInput(encoder: FineTuneEncoder, input: tf.Tensor): void {
  const expected = encoderInputShape(encoder);
  if (input.rank !== expected.length + 1 || expected.some((size, axis) => input.shape[axis + 1] !== size)) {
    const layout = encoder instanceof VisionTransformer ? 'NHWC images' : 'leads-first ECGs';
    throw new Error(`Fine-tuning expected ${layout} [B, ${expected.join(', ')}], got [${input.shape.join(', ')}]`);
  }
}

/** Shape of one input sample of `encoder`: [H, W, channels] for the X-ray ViT, [leads, samples] for the ECG encoder. */
export function encoderInputShape(encoder: FineTuneEncoder): number[] {
  if (encoder instanceof VisionTransformer) {
    const { imageSize, channels } = encoder.config;
    return [imageSize, imageSize, channels];
  }
  return [encoder.config.leads, encoder.config.samples];
}

/** One fine-tuned branch: its encoder, the first block that trains and the pre-trained qkv weights to restore. */
interface EncoderBranch {
  encoder: FineTuneEncoder;
  prefix: string;
  firstTrainable: number;
  qkv: { name: string; variable: tf.Variable; pretrained: tf.Tensor }[];
}

/**
 * A probe head on encoders whose last `trainableBlocks` qkv weights train
 * with it. Weight names: the head's (`projector_<branch>.*`, `classifier.*`)
 * and the fine-tuned qkv weights under the MoRE names
 * (`xray_model.vit_model.blocks.9.attn.qkv.weight`). A checkpoint holds only
 * these, so resume it with the same pre-trained encoders.
 */
export class FineTuneModel implements TrainableModel<FineTuneBatch> {
  readonly config: Required<FineTuneConfig>;
  readonly head: ProbeHead;
  private readonly branches = new Map<ProbeBranch, EncoderBranch>();
  private disposed = false;

  /**
   * Builds the head around copies of the pre-trained projection heads and
   * attaches it to `encoders` (one per branch of `config.branches`), which
   * stay owned by the caller. Each encoder can serve one live model at a time.
   */
  constructor(config: FineTuneConfig, encoders: FineTuneEncoders, projectors: Partial<Record<ProbeBranch, ProjectionHead>>) {
    const { trainableBlocks = DEFAULT_TRAINABLE_BLOCKS, ...headConfig } = config;
    const branches = headConfig.branches ?? [];
    for (const branch of branches) {
      const encoder = encoders[branch];
      if (encoder === undefined) throw new Error(`No encoder given for the ${branch} branch; pass encoders.${branch}`);
      const depth = encoder.blocks.length;
      if (!Number.isInteger(trainableBlocks) || trainableBlocks < 0 || trainableBlocks > depth) {
        throw new Error(`Invalid trainableBlocks ${trainableBlocks}: expected an integer in [0, ${depth}] for the ${depth}-block ${branch} encoder`);
      }
      if (encodersInUse.has(encoder)) {
        throw new Error(`The ${branch} encoder is already attached to a fine-tuning model; dispose that model first`);
      }
    }
    if (new Set(branches.map((branch) => encoders[branch])).size !== branches.length) {
      throw new Error('Each branch needs its own encoder; the same encoder was given twice');
    }
    this.head = new ProbeHead({ ...headConfig, trainProjector: true }, projectors);
    this.config = { ...this.head.config, trainableBlocks };

    for (const branch of branches) {
      const encoder = encoders[branch] as FineTuneEncoder;
      const prefix = branch === 'image' ? MORE_WEIGHT_PREFIXES.image : MORE_WEIGHT_PREFIXES.ecg;
      const firstTrainable = encoder.blocks.length - trainableBlocks;
      const qkv = encoder.blocks.slice(firstTrainable).map((block, offset) => ({
        name: `${prefix}blocks.${firstTrainable + offset}.attn.qkv.weight`,
        variable: block.attn.qkv.weight as tf.Variable,
        pretrained: block.attn.qkv.weight.clone(),
      }));
      encodersInUse.add(encoder);
      this.branches.set(branch, { encoder, prefix, firstTrainable, qkv });
    }
    log.info(`fine-tuning ${this.config.kind} head on [${branches.join(', ')}]: qkv of the last ${trainableBlocks} blocks ` +
      `and the head train, ${this.parameterCount()} parameters`);
  }

  /** Builds a fine-tuning model on the encoders and projection heads of a pre-trained MoRE model. */
  static fromMoreModel(model: MoreModel, config: FineTuneConfig): FineTuneModel {
    return new FineTuneModel(config, { image: model.image, ecg: model.ecg }, { image: model.imageHead, ecg: model.ecgHead });
  }

  /** Returns the fine-tuned qkv weights and the head's weights and buffers, by name. */
  namedWeights(): Map<string, tf.Variable> {
    const result = new Map<string, tf.Variable>();
    for (const { qkv } of this.branches.values()) {
      for (const { name, variable } of qkv) result.set(name, variable);
    }
    for (const [name, variable] of this.head.namedWeights()) result.set(name, variable);
    return result;
  }

  /** Returns the fine-tuned qkv weights, then the weights of the head's projection heads and classifier. */
  trainableVariables(): tf.Variable[] {
    const encoderWeights = [...this.branches.values()].flatMap(({ qkv }) => qkv.map(({ variable }) => variable));
    return [...encoderWeights, ...this.head.trainableVariables()];
  }

  /** Number of trainable scalars. */
  parameterCount(): number {
    return this.trainableVariables().reduce((sum, variable) => sum + variable.size, 0);
  }

  /** Shape of one input sample of a branch's encoder. */
  inputShape(branch: ProbeBranch): number[] {
    return encoderInputShape(this.branch(branch).encoder);
  }

  /** Returns the logits [B, classes]. `context.seed` seeds DropKey, dropout and the ECG-branch mask in training. */
  logits(batch: FineTuneBatch, context: BatchContext): tf.Tensor2D {
    this.checkLive();
    const seeds = new Rng(context.seed);
    const headSeed = seeds.nextUint32();
    return tf.tidy(() => {
      const features: Partial<Record<ProbeBranch, tf.Tensor2D>> = {};
      for (const [branch, { encoder, firstTrainable }] of this.branches) {
        const input = branch === 'image' ? batch.images : batch.ecgs;
        if (input === undefined) {
          throw new Error(`Fine-tuning batch has no ${branch === 'image' ? 'images' : 'ecgs'}; the head needs [${this.config.branches.join(', ')}]`);
        }
        features[branch] = encodeForFineTuning(encoder, input, firstTrainable, context.training, seeds.nextUint32());
      }
      return this.head.logits({ features, targets: batch.targets }, { training: context.training, seed: headSeed });
    });
  }

  /** Mean binary cross-entropy over all labels (multi-label) or mean softmax cross-entropy (multi-class). */
  batchLoss(batch: FineTuneBatch, context: BatchContext): tf.Scalar {
    return tf.tidy(() => probeLoss(this.config.kind, this.logits(batch, context), batch.targets));
  }

  /** Returns sigmoid (multi-label) or softmax (multi-class) probabilities [B, classes]. */
  probabilities(batch: FineTuneBatch): tf.Tensor2D {
    return tf.tidy(() => {
      const logits = this.logits(batch, { training: false, seed: 0 });
      return this.config.kind === 'multilabel' ? tf.sigmoid(logits) : tf.softmax(logits);
    });
  }

  /** Puts the pre-trained qkv weights back into the encoders, detaches from them and frees the head. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const { encoder, qkv } of this.branches.values()) {
      for (const { variable, pretrained } of qkv) {
        // An encoder the caller already disposed has nothing to restore.
        if (!variable.isDisposed) variable.assign(pretrained);
        pretrained.dispose();
      }
      encodersInUse.delete(encoder);
    }
    this.head.dispose();
  }

  private branch(branch: ProbeBranch): EncoderBranch {
    const found = this.branches.get(branch);
    if (found === undefined) throw new Error(`This head has no ${branch} branch; its branches are [${this.config.branches.join(', ')}]`);
    return found;
  }

  private checkLive(): void {
    if (this.disposed) throw new Error('This fine-tuning model was disposed; build a new one');
  }
}

/** Encoder inputs and targets of one split, row-aligned. */
export interface FineTuneSplit {
  /** Row-major inputs per branch: N samples of `shapes[branch]`. */
  inputs: Partial<Record<ProbeBranch, Float32Array>>;
  /** Shape of one sample per branch ([H, W, channels] for X-rays, [leads, samples] for ECGs). */
  shapes: Partial<Record<ProbeBranch, number[]>>;
  /** Multi-label: one 0/1 row per sample. Multi-class: one class index per sample. */
  targets: number[][] | number[];
}

/** Serves rows of a {@link FineTuneSplit} as fine-tuning batches, optionally through a subset of row indices. */
export class FineTuneArraySource implements BatchSource<FineTuneBatch> {
  readonly size: number;
  private readonly rows: number[];

  constructor(private readonly split: FineTuneSplit, private readonly kind: ProbeKind, rows?: number[]) {
    const total = split.targets.length;
    for (const [branch, values] of Object.entries(split.inputs) as [ProbeBranch, Float32Array][]) {
      const shape = split.shapes[branch];
      if (shape === undefined) throw new Error(`Fine-tuning split: no sample shape given for the ${branch} inputs`);
      const perSample = shape.reduce((a, b) => a * b, 1);
      if (values.length !== total * perSample) {
        throw new Error(`Fine-tuning split: ${branch} inputs have ${values.length} values, expected ${total} samples x [${shape.join(', ')}]`);
      }
    }
    this.rows = rows ?? Array.from({ length: total }, (_, i) => i);
    for (const row of this.rows) {
      if (!Number.isInteger(row) || row < 0 || row >= total) throw new Error(`Fine-tuning split: row ${row} is outside [0, ${total})`);
    }
    this.size = this.rows.length;
  }

  loadBatch(indices: number[]): FineTuneBatch {
    const rows = indices.map((i) => this.rows[i]);
    const batch: FineTuneBatch = {
      targets: this.kind === 'multilabel'
        ? tf.tensor2d(rows.map((row) => (this.split.targets as number[][])[row]))
        : tf.tensor1d(rows.map((row) => (this.split.targets as number[])[row]), 'int32'),
    };
    for (const [branch, values] of Object.entries(this.split.inputs) as [ProbeBranch, Float32Array][]) {
      const shape = this.split.shapes[branch] as number[];
      const perSample = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(rows.length * perSample);
      rows.forEach((row, k) => data.set(values.subarray(row * perSample, (row + 1) * perSample), k * perSample));
      if (branch === 'image') batch.images = tf.tensor4d(data, [rows.length, ...shape] as [number, number, number, number]);
      else batch.ecgs = tf.tensor3d(data, [rows.length, ...shape] as [number, number, number]);
    }
    return batch;
  }
}

/**
 * Fine-tunes `model` on `data.train` with early stopping on
 * `data.validation`, with the probe defaults of the protocol; any
 * {@link TrainOptions} field overrides them. The weights of the best
 * validation epoch are in the model afterwards.
 */
export async function trainFineTune(
  model: FineTuneModel,
  data: { train: TrainingSource<FineTuneBatch>; validation?: TrainingSource<FineTuneBatch> },
  options: TrainOptions = {},
): Promise<TrainResult> {
  const batchSize = options.batchSize ?? PROBE_TRAIN_DEFAULTS.batchSize ?? 64;
  // The projection heads train with BatchNorm, which needs two samples, so a last batch of one is dropped.
  const dropLast = !isEpochBatchSource(data.train) && data.train.size % batchSize === 1;
  log.info(`fine-tuning a ${model.config.kind} head on ${data.train.size} samples` +
    (data.validation === undefined ? '' : `, validating on ${data.validation.size}`));
  return fit(model, data, { ...PROBE_TRAIN_DEFAULTS, label: 'fine-tune', dropLast, ...options });
}

/**
 * Predicts every sample of `source` in order (`batchSize` at a time, in
 * evaluation mode) and scores the predictions with the metrics of the head's kind.
 */
export async function evaluateFineTune(
  model: FineTuneModel, source: BatchSource<FineTuneBatch>, labels?: string[], batchSize = 64,
): Promise<ProbeEvaluation> {
  const { kind } = model.config;
  const probabilities: number[][] = [];
  const targets: (number[] | number)[] = [];
  const rng = new Rng(0);
  for (let start = 0; start < source.size; start += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, source.size - start) }, (_, k) => start + k);
    const batch = await source.loadBatch(indices, rng);
    let predicted: tf.Tensor2D;
    try {
      predicted = model.probabilities(batch);
      targets.push(...(await batch.targets.array() as (number[] | number)[]));
    } finally {
      if (source.disposeBatch !== undefined) source.disposeBatch(batch);
      else tf.dispose(batch as unknown as tf.TensorContainer);
    }
    probabilities.push(...(await predicted.array()));
    predicted.dispose();
  }
  return scoreProbabilities(kind, probabilities, targets as number[][] | number[], labels);
}
