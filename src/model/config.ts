/**
 * Typed configurations and named presets for the MoRE towers (Thapa et al.,
 * "Multimodal contrastive pre-training of chest X-rays, ECGs and clinical
 * reports", arXiv 2410.16239). Every field is checked when a model is built,
 * and an invalid choice lists the valid ones.
 *
 * The `base` presets are the reference architecture: a ViT-B/16 trunk at
 * 224 x 224 (timm `vit_base_patch16_224` without qkv bias) for the X-ray, and
 * the same trunk behind a two-layer convolutional patch embedding for a
 * 12 x 1000 ECG. `tiny` and `small` keep the layout and shrink the widths.
 */

export const PRESET_NAMES = ['tiny', 'small', 'base'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

/** Transformer trunk shared by the X-ray and ECG encoders (pre-norm ViT blocks). */
export interface TrunkConfig {
  /** Token width (embedding dimension). */
  width: number;
  /** Number of transformer blocks. */
  depth: number;
  /** Number of attention heads; must divide `width`. */
  heads: number;
  /** Hidden width of each block's MLP. */
  mlpDim: number;
  /** LayerNorm epsilon (timm ViT uses 1e-6). */
  layerNormEps: number;
  /** Probability that DropKey masks one pre-softmax attention logit in training (0 turns it off). */
  dropKeyRate: number;
  /** Whether the qkv projection has a bias; the MoRE reference builds it without one. */
  qkvBias: boolean;
}

/** X-ray encoder: a ViT with a square patch embedding over NHWC images. */
export interface VitConfig extends TrunkConfig {
  /** Input image side in pixels; images are [B, imageSize, imageSize, channels] (NHWC). */
  imageSize: number;
  /** Patch side in pixels; must divide `imageSize`. */
  patchSize: number;
  /** Input channels (3: the X-ray is repeated to three channels). */
  channels: number;
}

/** ECG encoder: the ViT trunk behind Conv1d + ReLU + BatchNorm1d, twice. */
export interface EcgConfig extends TrunkConfig {
  /** Number of leads; input is [B, leads, samples] (leads first). */
  leads: number;
  /** Samples per lead (1000 = 10 s at 100 Hz). */
  samples: number;
  /** Output channels of the first convolution. */
  convChannels: number;
  /** Kernel size of the first convolution. */
  conv1Kernel: number;
  /** Stride of the first convolution. */
  conv1Stride: number;
  /** Kernel size of the second convolution (stride 1). */
  conv2Kernel: number;
}

export const HEAD_KINDS = ['nonlinear', 'linear'] as const;
export type HeadKind = (typeof HEAD_KINDS)[number];

/** Projection head into the shared embedding space. */
export interface HeadConfig {
  /**
   * `nonlinear`: Linear(no bias) + BatchNorm1d + ReLU + Linear(no bias) + BatchNorm1d.
   * `linear`: one Linear with bias.
   */
  kind: HeadKind;
  inputDim: number;
  hiddenDim: number;
  outputDim: number;
}

export const TEMPERATURE_MODES = ['fixed', 'learnable'] as const;
export type TemperatureMode = (typeof TEMPERATURE_MODES)[number];

/** InfoNCE temperature: logits are cosine similarities divided by it. */
export interface TemperatureConfig {
  /** `fixed` (the reference's behaviour) or `learnable` (CLIP-style log-parameterised logit scale). */
  mode: TemperatureMode;
  /** Starting temperature (0.02 in the reference). */
  initial: number;
  /** Largest logit multiplier (1 / temperature) a learnable scale may reach. */
  maxScale: number;
}

/** The whole MoRE model except the text encoder, which is passed in built. */
export interface MoreConfig {
  image: VitConfig;
  ecg: EcgConfig;
  /** Head for the X-ray features (`projector_xray_text` in the reference). */
  imageHead: HeadConfig;
  /** Head for the ECG features (`projector_ecg_text`). */
  ecgHead: HeadConfig;
  /** Head for the pooled text features (`projector_text`). */
  textHead: HeadConfig;
  temperature: TemperatureConfig;
}

/** A partial config: any field left out takes the preset's value. */
export type MoreConfigInput = {
  preset?: PresetName;
  image?: Partial<VitConfig>;
  ecg?: Partial<EcgConfig>;
  imageHead?: Partial<HeadConfig>;
  ecgHead?: Partial<HeadConfig>;
  textHead?: Partial<HeadConfig>;
  temperature?: Partial<TemperatureConfig>;
};

const TRUNKS: Record<PresetName, Omit<TrunkConfig, 'layerNormEps' | 'dropKeyRate' | 'qkvBias'>> = {
  tiny: { width: 64, depth: 2, heads: 2, mlpDim: 128 },
  small: { width: 384, depth: 12, heads: 6, mlpDim: 1536 },
  base: { width: 768, depth: 12, heads: 12, mlpDim: 3072 },
};

const TRUNK_DEFAULTS = { layerNormEps: 1e-6, dropKeyRate: 0.3, qkvBias: false };

/** Returns the X-ray encoder config of a preset. */
export function vitPreset(name: PresetName): VitConfig {
  checkChoice('preset', name, PRESET_NAMES);
  // tiny uses 32-pixel patches so a 224 x 224 X-ray gives 49 tokens instead of 196.
  const patchSize = name === 'tiny' ? 32 : 16;
  return { ...TRUNKS[name], ...TRUNK_DEFAULTS, imageSize: 224, patchSize, channels: 3 };
}

/** Returns the ECG encoder config of a preset. */
export function ecgPreset(name: PresetName): EcgConfig {
  checkChoice('preset', name, PRESET_NAMES);
  const convChannels: Record<PresetName, number> = { tiny: 32, small: 128, base: 256 };
  return {
    ...TRUNKS[name],
    ...TRUNK_DEFAULTS,
    leads: 12,
    samples: 1000,
    convChannels: convChannels[name],
    conv1Kernel: 5,
    conv1Stride: 5,
    conv2Kernel: 5,
  };
}

/** Returns the projection head config of a preset (768 -> 768 -> 128 for `base`). */
export function headPreset(name: PresetName, kind: HeadKind = 'nonlinear'): HeadConfig {
  checkChoice('preset', name, PRESET_NAMES);
  const width = TRUNKS[name].width;
  return { kind, inputDim: width, hiddenDim: width, outputDim: name === 'tiny' ? 32 : 128 };
}

export const DEFAULT_TEMPERATURE: TemperatureConfig = { mode: 'fixed', initial: 0.02, maxScale: 100 };

/** Returns the full MoRE config of a preset. */
export function morePreset(name: PresetName): MoreConfig {
  return {
    image: vitPreset(name),
    ecg: ecgPreset(name),
    imageHead: headPreset(name),
    ecgHead: headPreset(name),
    textHead: headPreset(name),
    temperature: { ...DEFAULT_TEMPERATURE },
  };
}

/** Fills a partial config from its preset (`base` unless named) and validates the result. */
export function resolveMoreConfig(input: MoreConfigInput = {}): MoreConfig {
  const preset = morePreset(input.preset ?? 'base');
  const config: MoreConfig = {
    image: { ...preset.image, ...input.image },
    ecg: { ...preset.ecg, ...input.ecg },
    imageHead: { ...preset.imageHead, ...input.imageHead },
    ecgHead: { ...preset.ecgHead, ...input.ecgHead },
    textHead: { ...preset.textHead, ...input.textHead },
    temperature: { ...preset.temperature, ...input.temperature },
  };
  validateMoreConfig(config);
  return config;
}

function checkChoice<T extends string>(field: string, value: string, choices: readonly T[]): asserts value is T {
  if (!(choices as readonly string[]).includes(value)) {
    throw new Error(`Invalid ${field} "${value}": expected one of ${choices.join(', ')}`);
  }
}

function checkInteger(scope: string, field: string, value: unknown, min: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new Error(`Invalid ${scope}.${field} ${JSON.stringify(value)}: expected an integer >= ${min}`);
  }
}

function checkRange(scope: string, field: string, value: unknown, low: number, high: number, text: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < low || value > high) {
    throw new Error(`Invalid ${scope}.${field} ${JSON.stringify(value)}: expected ${text}`);
  }
}

function checkKeys(scope: string, value: object, allowed: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new Error(`Unknown field ${scope}.${key}: expected one of ${allowed.join(', ')}`);
    }
  }
}

const TRUNK_KEYS = ['width', 'depth', 'heads', 'mlpDim', 'layerNormEps', 'dropKeyRate', 'qkvBias'];

function validateTrunk(scope: string, config: TrunkConfig): void {
  checkInteger(scope, 'width', config.width, 1);
  checkInteger(scope, 'depth', config.depth, 1);
  checkInteger(scope, 'heads', config.heads, 1);
  checkInteger(scope, 'mlpDim', config.mlpDim, 1);
  if (config.width % config.heads !== 0) {
    throw new Error(`Invalid ${scope}.heads ${config.heads}: it must divide ${scope}.width ${config.width}`);
  }
  checkRange(scope, 'layerNormEps', config.layerNormEps, Number.MIN_VALUE, 1, 'a number in (0, 1]');
  checkRange(scope, 'dropKeyRate', config.dropKeyRate, 0, 0.999, 'a probability in [0, 1)');
  if (typeof config.qkvBias !== 'boolean') {
    throw new Error(`Invalid ${scope}.qkvBias ${JSON.stringify(config.qkvBias)}: expected true or false`);
  }
}

/** Throws when a ViT config is inconsistent; `scope` names it in the message. */
export function validateVitConfig(config: VitConfig, scope = 'image'): void {
  checkKeys(scope, config, [...TRUNK_KEYS, 'imageSize', 'patchSize', 'channels']);
  validateTrunk(scope, config);
  checkInteger(scope, 'imageSize', config.imageSize, 1);
  checkInteger(scope, 'patchSize', config.patchSize, 1);
  checkInteger(scope, 'channels', config.channels, 1);
  if (config.imageSize % config.patchSize !== 0) {
    throw new Error(`Invalid ${scope}.patchSize ${config.patchSize}: it must divide ${scope}.imageSize ${config.imageSize}`);
  }
}

/** Number of ECG tokens (without the class token) the convolutional embedding makes. */
export function ecgTokenCount(config: EcgConfig): number {
  const afterFirst = Math.floor((config.samples - config.conv1Kernel) / config.conv1Stride) + 1;
  return afterFirst - config.conv2Kernel + 1;
}

/** Throws when an ECG encoder config is inconsistent; `scope` names it in the message. */
export function validateEcgConfig(config: EcgConfig, scope = 'ecg'): void {
  checkKeys(scope, config, [...TRUNK_KEYS, 'leads', 'samples', 'convChannels', 'conv1Kernel', 'conv1Stride', 'conv2Kernel']);
  validateTrunk(scope, config);
  checkInteger(scope, 'leads', config.leads, 1);
  checkInteger(scope, 'samples', config.samples, 1);
  checkInteger(scope, 'convChannels', config.convChannels, 1);
  checkInteger(scope, 'conv1Kernel', config.conv1Kernel, 1);
  checkInteger(scope, 'conv1Stride', config.conv1Stride, 1);
  checkInteger(scope, 'conv2Kernel', config.conv2Kernel, 1);
  if (config.samples < config.conv1Kernel || ecgTokenCount(config) < 1) {
    throw new Error(
      `Invalid ${scope}.samples ${config.samples}: the convolutions (kernels ${config.conv1Kernel} and ` +
        `${config.conv2Kernel}, stride ${config.conv1Stride}) leave no tokens; use more samples`,
    );
  }
}

/** Throws when a projection head config is inconsistent; `scope` names it in the message. */
export function validateHeadConfig(config: HeadConfig, scope = 'head'): void {
  checkKeys(scope, config, ['kind', 'inputDim', 'hiddenDim', 'outputDim']);
  checkChoice(`${scope}.kind`, config.kind, HEAD_KINDS);
  checkInteger(scope, 'inputDim', config.inputDim, 1);
  checkInteger(scope, 'hiddenDim', config.hiddenDim, 1);
  checkInteger(scope, 'outputDim', config.outputDim, 1);
}

/** Throws when a temperature config is invalid. */
export function validateTemperatureConfig(config: TemperatureConfig, scope = 'temperature'): void {
  checkKeys(scope, config, ['mode', 'initial', 'maxScale']);
  checkChoice(`${scope}.mode`, config.mode, TEMPERATURE_MODES);
  checkRange(scope, 'initial', config.initial, Number.MIN_VALUE, Number.MAX_VALUE, 'a positive number');
  checkRange(scope, 'maxScale', config.maxScale, 1, Number.MAX_VALUE, 'a number >= 1');
  if (config.mode === 'learnable' && 1 / config.initial > config.maxScale) {
    throw new Error(
      `Invalid ${scope}.initial ${config.initial}: its logit multiplier ${1 / config.initial} exceeds ` +
        `${scope}.maxScale ${config.maxScale}`,
    );
  }
}

/** Throws when any part of a MoRE config is invalid or the heads do not fit their encoders. */
export function validateMoreConfig(config: MoreConfig): void {
  checkKeys('config', config, ['image', 'ecg', 'imageHead', 'ecgHead', 'textHead', 'temperature']);
  validateVitConfig(config.image, 'image');
  validateEcgConfig(config.ecg, 'ecg');
  validateHeadConfig(config.imageHead, 'imageHead');
  validateHeadConfig(config.ecgHead, 'ecgHead');
  validateHeadConfig(config.textHead, 'textHead');
  validateTemperatureConfig(config.temperature);
  if (config.imageHead.inputDim !== config.image.width) {
    throw new Error(`Invalid imageHead.inputDim ${config.imageHead.inputDim}: expected image.width ${config.image.width}`);
  }
  if (config.ecgHead.inputDim !== config.ecg.width) {
    throw new Error(`Invalid ecgHead.inputDim ${config.ecgHead.inputDim}: expected ecg.width ${config.ecg.width}`);
  }
  const outputs = [config.imageHead.outputDim, config.ecgHead.outputDim, config.textHead.outputDim];
  if (new Set(outputs).size !== 1) {
    throw new Error(`Invalid head output sizes ${outputs.join(', ')} (image, ECG, text): the shared space needs one size`);
  }
}
