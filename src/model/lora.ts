/**
 * Low-rank adaptation (Hu et al., "LoRA: Low-Rank Adaptation of Large
 * Language Models", ICLR 2022) with the semantics of Hugging Face peft's
 * `LoraConfig` and `lora.Linear`. A frozen dense layer W gains a down
 * projection A [r, in] and an up projection B [out, r], and the output is
 * `x W^T + b + B(A(dropout(x))) * alpha / r`. A starts as peft initialises it
 * (Kaiming-uniform with a = sqrt(5), which is uniform in +-1/sqrt(in)) and B
 * starts at zero, so a fresh adapter leaves the layer unchanged.
 *
 * Merging adds the delta `B A * alpha / r` to W and unmerging subtracts the
 * same delta, so W round-trips up to float32 rounding.
 */
import * as tf from '@tensorflow/tfjs';

import { getLogger } from '../util/log';
import { Rng } from '../util/rng';
import { seededDropout } from './layers';
import { Module } from './module';
import { type WritableDtype, roundToDtype } from './safetensors';

const log = getLogger('model.lora');

export const LORA_BIAS_MODES = ['none', 'all', 'lora_only'] as const;
/**
 * Set of biases that train beside the adapters (peft's `bias`): `none`, `all`
 * (every parameter whose name contains "bias", LayerNorm biases included) or
 * `lora_only` (the biases of the adapted layers).
 */
export type LoraBiasMode = (typeof LORA_BIAS_MODES)[number];

/** Adapter settings, named as in peft's `LoraConfig`. */
export interface LoraConfig {
  /** Rank r of the update. */
  r: number;
  /** Scaling numerator: the update is multiplied by alpha / r. */
  alpha: number;
  /** Dropout probability on the adapter's input, in training only. */
  dropout: number;
  /**
   * Module names to adapt. A layer matches when its full name equals an entry
   * or ends with "." plus the entry, as in peft (`query` matches
   * `encoder.layer.0.attention.self.query`).
   */
  targetModules: string[];
  bias: LoraBiasMode;
}

/**
 * MoRE's text encoder adapter: rank 16, alpha 8, dropout 0.1, peft's default
 * targets for BERT and RoBERTa (query and value), every bias trainable.
 */
export const REFERENCE_LORA: Readonly<LoraConfig> = Object.freeze({
  r: 16,
  alpha: 8,
  dropout: 0.1,
  targetModules: ['query', 'value'],
  bias: 'all',
});

/** Checks every field and returns a complete config (missing fields take the reference values). */
export function resolveLoraConfig(input: Partial<LoraConfig> = {}): LoraConfig {
  const config: LoraConfig = { ...REFERENCE_LORA, targetModules: [...REFERENCE_LORA.targetModules], ...input };
  const known = ['r', 'alpha', 'dropout', 'targetModules', 'bias'];
  for (const key of Object.keys(input)) {
    if (!known.includes(key)) throw new Error(`Invalid LoRA option "${key}": expected one of ${known.join(', ')}`);
  }
  if (!Number.isInteger(config.r) || config.r < 1) {
    throw new Error(`Invalid LoRA r ${JSON.stringify(config.r)}: expected a positive integer`);
  }
  if (typeof config.alpha !== 'number' || !Number.isFinite(config.alpha) || config.alpha <= 0) {
    throw new Error(`Invalid LoRA alpha ${JSON.stringify(config.alpha)}: expected a positive number`);
  }
  if (typeof config.dropout !== 'number' || !(config.dropout >= 0 && config.dropout < 1)) {
    throw new Error(`Invalid LoRA dropout ${JSON.stringify(config.dropout)}: expected a probability in [0, 1)`);
  }
  if (!Array.isArray(config.targetModules) || config.targetModules.length === 0 ||
      !config.targetModules.every((name) => typeof name === 'string' && name.length > 0)) {
    throw new Error(`Invalid LoRA targetModules ${JSON.stringify(config.targetModules)}: expected module names`);
  }
  if (!(LORA_BIAS_MODES as readonly string[]).includes(config.bias)) {
    throw new Error(`Invalid LoRA bias ${JSON.stringify(config.bias)}: expected one of ${LORA_BIAS_MODES.join(', ')}`);
  }
  return config;
}

/** Tests whether a layer's full name matches one of peft's target module names. */
export function matchesTarget(moduleName: string, targets: readonly string[]): boolean {
  return targets.some((target) => moduleName === target || moduleName.endsWith(`.${target}`));
}

/** Options of {@link LoraLinear.merge}. */
export interface MergeOptions {
  /**
   * Merge even though the base weight is stored in half precision; the merged
   * weight is then rounded to that precision and the drift is reported.
   * Default false: such a merge is rejected.
   */
  allowPrecisionLoss?: boolean;
}

/** What one merge did. */
export interface MergeReport {
  /** Storage dtype of the base weight. */
  storage: WritableDtype;
  /** Largest |W_stored - (W + delta)| after rounding to the storage dtype (0 for float32). */
  maxAbsDrift: number;
  /** Largest |delta| element, to read the drift against. */
  maxAbsDelta: number;
}

/**
 * A dense layer y = x W^T + b (PyTorch layout, weight [out, in]) that can
 * carry one LoRA adapter. Its names follow transformers and peft's saved
 * adapters: `weight`, `bias`, `lora_A.weight` [r, in], `lora_B.weight` [out, r].
 */
export class LoraLinear extends Module {
  readonly weight: tf.Variable<tf.Rank.R2>;
  readonly bias?: tf.Variable<tf.Rank.R1>;
  private loraA?: tf.Variable<tf.Rank.R2>;
  private loraB?: tf.Variable<tf.Rank.R2>;
  private config?: LoraConfig;
  private merged = false;
  /**
   * Precision the base weight is stored in (set by the checkpoint loader). A
   * merge into F16 or BF16 storage loses the small delta to rounding.
   */
  storageDtype: WritableDtype = 'F32';

  /**
   * Creates the layer with W drawn from N(0, initStd^2) (transformers' BERT
   * initialisation) and a zero bias. `initStd` 0 leaves W at zero, which
   * skips the slow random draw when a checkpoint will overwrite it. `seed`
   * makes the draw repeatable.
   */
  constructor(readonly inFeatures: number, readonly outFeatures: number, useBias = true, initStd = 0.02, seed?: number) {
    super();
    const weight = initStd > 0
      ? tf.randomNormal([outFeatures, inFeatures], 0, initStd, 'float32', seed)
      : tf.zeros([outFeatures, inFeatures]);
    this.weight = this.addWeight('weight', weight as tf.Tensor2D);
    if (useBias) this.bias = this.addWeight('bias', tf.zeros([outFeatures]) as tf.Tensor1D);
  }

  /** The adapter settings, or undefined when no adapter is attached. */
  get lora(): Readonly<LoraConfig> | undefined {
    return this.config;
  }

  get isMerged(): boolean {
    return this.merged;
  }

  /** The adapter matrices, or undefined when no adapter is attached. */
  get adapter(): { a: tf.Variable<tf.Rank.R2>; b: tf.Variable<tf.Rank.R2> } | undefined {
    return this.loraA !== undefined && this.loraB !== undefined ? { a: this.loraA, b: this.loraB } : undefined;
  }

  /** alpha / r. */
  get scaling(): number {
    if (this.config === undefined) throw new Error('LoraLinear has no adapter attached');
    return this.config.alpha / this.config.r;
  }

  /**
   * Attaches an adapter: A uniform in +-1/sqrt(in) drawn from `rng`, B zero.
   * The base weight and bias are frozen; the bias mode decides the bias.
   */
  attachLora(config: LoraConfig, rng: Rng): void {
    if (this.config !== undefined) throw new Error('LoraLinear already has an adapter attached');
    const bound = 1 / Math.sqrt(this.inFeatures);
    const values = new Float32Array(config.r * this.inFeatures);
    for (let i = 0; i < values.length; i++) values[i] = (2 * rng.uniform() - 1) * bound;
    this.loraA = this.addWeight('lora_A.weight', tf.tensor2d(values, [config.r, this.inFeatures]));
    this.loraB = this.addWeight('lora_B.weight', tf.zeros([this.outFeatures, config.r]) as tf.Tensor2D);
    this.config = config;
    this.weight.trainable = false;
  }

  /** Computes x W^T + b over the last axis of an input of any rank. */
  private applyBase<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => {
      const shape = x.shape;
      const last = shape[shape.length - 1];
      if (last !== this.inFeatures) {
        throw new Error(`LoraLinear expected last axis ${this.inFeatures}, got input of shape [${shape.join(', ')}]`);
      }
      const rows = tf.reshape(x, [-1, last]) as tf.Tensor2D; // [N, in]
      let y: tf.Tensor2D = tf.matMul(rows, this.weight, false, true); // [N, out]
      if (this.bias !== undefined) y = tf.add(y, this.bias);
      return tf.reshape(y, [...shape.slice(0, -1), this.outFeatures]) as T;
    });
  }

  /** Computes the update B A * alpha / r, [out, in]. */
  delta(): tf.Tensor2D {
    const adapter = this.requireAdapter('compute the delta of');
    return tf.tidy(() => tf.mul(tf.matMul(adapter.b, adapter.a), this.scaling) as tf.Tensor2D);
  }

  /**
   * Applies the layer; with an unmerged adapter it adds the low-rank update,
   * with dropout on the adapter's input when `training`. `dropoutSeed` is
   * the mask's seed, or a function that draws it only when a mask is made.
   */
  apply<T extends tf.Tensor>(x: T, training = false, dropoutSeed?: number | (() => number)): T {
    const base = this.applyBase(x);
    if (this.config === undefined || this.merged || this.loraA === undefined || this.loraB === undefined) return base;
    const a = this.loraA;
    const b = this.loraB;
    const { dropout } = this.config;
    const scaling = this.scaling;
    return tf.tidy(() => {
      const shape = x.shape;
      let rows = tf.reshape(x, [-1, this.inFeatures]) as tf.Tensor2D; // [N, in]
      if (training && dropout > 0) {
        const seed = typeof dropoutSeed === 'function' ? dropoutSeed : (): number => dropoutSeed ?? Math.floor(Math.random() * 2 ** 31);
        rows = seededDropout(rows, dropout, seed);
      }
      const down = tf.matMul(rows, a, false, true); // [N, r]
      const up = tf.matMul(down, b, false, true); // [N, out]
      const update = tf.reshape(tf.mul(up, scaling), [...shape.slice(0, -1), this.outFeatures]);
      const output = tf.add(base, update) as T;
      base.dispose();
      return output;
    });
  }

  /**
   * Adds the delta to the base weight so the adapter costs nothing at
   * inference. Merging into half-precision storage is rejected unless
   * `allowPrecisionLoss` is set, in which case the merged weight is rounded
   * to that precision and the measured drift is returned and logged.
   */
  merge(options: MergeOptions = {}): MergeReport {
    this.requireAdapter('merge');
    if (this.merged) throw new Error('LoRA adapter is already merged; unmerge it first');
    const storage = this.storageDtype;
    if (storage !== 'F32' && !options.allowPrecisionLoss) {
      throw new Error(
        `Refusing to merge a LoRA adapter into ${storage} weights: rounding to ${storage} loses most of the small ` +
        'update and unmerging cannot restore the original weights. Load the base weights in float32, ' +
        'or pass { allowPrecisionLoss: true } to merge anyway and get the measured drift.',
      );
    }
    const delta = this.delta();
    const maxAbsDelta = tf.tidy(() => tf.max(tf.abs(delta)).dataSync()[0]);
    let maxAbsDrift = 0;
    if (storage === 'F32') {
      tf.tidy(() => this.weight.assign(tf.add(this.weight, delta) as tf.Tensor2D));
    } else {
      const exact = tf.tidy(() => tf.add(this.weight, delta));
      const exactValues = exact.dataSync() as Float32Array;
      const rounded = roundToDtype(exactValues, storage);
      for (let i = 0; i < rounded.length; i++) maxAbsDrift = Math.max(maxAbsDrift, Math.abs(rounded[i] - exactValues[i]));
      const roundedTensor = tf.tensor2d(rounded, this.weight.shape as [number, number]);
      this.weight.assign(roundedTensor);
      tf.dispose([exact, roundedTensor]);
      log.warn(
        `merged a LoRA adapter into ${storage} weights: max |drift| ${maxAbsDrift.toExponential(3)} ` +
        `against max |delta| ${maxAbsDelta.toExponential(3)}`,
      );
    }
    delta.dispose();
    this.merged = true;
    return { storage, maxAbsDrift, maxAbsDelta };
  }

  /** Subtracts the delta that {@link merge} added. */
  unmerge(): void {
    this.requireAdapter('unmerge');
    if (!this.merged) throw new Error('LoRA adapter is not merged');
    const delta = this.delta();
    tf.tidy(() => this.weight.assign(tf.sub(this.weight, delta) as tf.Tensor2D));
    delta.dispose();
    this.merged = false;
  }

  private requireAdapter(action: string): { a: tf.Variable<tf.Rank.R2>; b: tf.Variable<tf.Rank.R2> } {
    const adapter = this.adapter;
    if (adapter === undefined) throw new Error(`Cannot ${action} a LoraLinear without an adapter: call attachLora first`);
    return adapter;
  }
}

/** Trainable and total parameter counts (scalars, not tensors). */
export interface ParameterCounts {
  trainable: number;
  total: number;
}

/** Counts the scalars in a module's weights, split by trainability; buffers count as parameters only if trainable. */
export function countParameters(module: Module): ParameterCounts {
  let trainable = 0;
  let total = 0;
  for (const variable of module.namedWeights().values()) {
    total += variable.size;
    if (variable.trainable) trainable += variable.size;
  }
  return { trainable, total };
}

/** What {@link applyLora} did. */
export interface LoraApplication {
  config: LoraConfig;
  /** Full names of the adapted layers. */
  adapted: string[];
  counts: ParameterCounts;
}

/**
 * Freezes every weight of `module`, attaches an adapter to each dense layer
 * in `layers` whose name matches a target, and makes biases trainable as
 * `config.bias` says. `layers` maps full names to the module's dense layers.
 * Fails, changing nothing, when no layer matches.
 */
export function applyLora(
  module: Module,
  layers: Map<string, LoraLinear>,
  input: Partial<LoraConfig> = {},
  seed = 0,
): LoraApplication {
  const config = resolveLoraConfig(input);
  const targets = [...layers.entries()].filter(([name]) => matchesTarget(name, config.targetModules));
  if (targets.length === 0) {
    throw new Error(
      `No layer matches LoRA targetModules ${JSON.stringify(config.targetModules)}; ` +
      `dense layers are named like ${[...layers.keys()].slice(0, 4).join(', ')}`,
    );
  }
  const alreadyAdapted = targets.filter(([, layer]) => layer.lora !== undefined).map(([name]) => name);
  if (alreadyAdapted.length > 0) throw new Error(`Layers already carry a LoRA adapter: ${alreadyAdapted.join(', ')}`);

  for (const variable of module.namedWeights().values()) variable.trainable = false;
  const rng = new Rng(seed);
  for (const [, layer] of targets) layer.attachLora(config, rng);
  const adaptedNames = new Set(targets.map(([name]) => name));
  for (const [name, variable] of module.namedWeights()) {
    const isAdapter = name.includes('.lora_A.') || name.includes('.lora_B.');
    const ownerName = name.slice(0, name.lastIndexOf('.'));
    const isBias = name.endsWith('bias');
    if (isAdapter) variable.trainable = true;
    else if (config.bias === 'all' && name.includes('bias')) variable.trainable = true;
    else if (config.bias === 'lora_only' && isBias && adaptedNames.has(ownerName)) variable.trainable = true;
  }
  const counts = countParameters(module);
  log.info(
    `LoRA r=${config.r} alpha=${config.alpha} on ${targets.length} layers (${config.targetModules.join(', ')}), ` +
    `bias=${config.bias}: ${counts.trainable} of ${counts.total} parameters trainable ` +
    `(${((100 * counts.trainable) / counts.total).toFixed(3)}%)`,
  );
  return { config, adapted: [...adaptedNames], counts };
}
