/**
 * Checkpoints: saving and loading any weight owner (a MoRE model, one
 * encoder) as `model.safetensors` plus `config.json`, and importing weights
 * from elsewhere: timm ViT checkpoints and the reference MoRE PyTorch weights.
 * Hugging Face BERT / RoBERTa folders load through `loadTextEncoder`.
 *
 * Every import checks all names and shapes before it assigns anything, so a
 * failed import leaves the model unchanged, and reports what it skipped.
 */
import * as fs from 'fs';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import { writeFileAtomic } from '../util/atomic';
import { getLogger } from '../util/log';
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from './safetensors';
import type { WeightOwner } from './types';

const log = getLogger('model.checkpoint');

export const CHECKPOINT_FORMAT = 'more-ts-checkpoint';
export const CHECKPOINT_VERSION = 1;
export const CHECKPOINT_WEIGHTS_FILE = 'model.safetensors';
export const CHECKPOINT_CONFIG_FILE = 'config.json';

/** Outcome of an import or load, by checkpoint name. */
export interface ImportReport {
  file: string;
  /** Model weights that received a value. */
  loaded: string[];
  /** Checkpoint tensors deliberately left out, each with the reason. */
  skipped: { name: string; reason: string }[];
  /** Model weights the checkpoint did not provide (only when the import allows it). */
  missing: string[];
}

/** Maps a checkpoint name to a model weight name, or to a reason for skipping it. */
type NameMapper = (name: string) => string | { skip: string };

interface AssignOptions {
  /** Model weights that may stay at their current value when the file lacks them. */
  optional?: (name: string) => boolean;
}

/**
 * Copies tensors of `file` into `targets` through `mapName`. Every name and
 * shape is checked before the first assignment. A checkpoint tensor with no
 * target, or a target with no tensor (unless optional), is an error.
 */
function assignFromFile(
  targets: Map<string, tf.Variable>,
  file: SafetensorsFile,
  mapName: NameMapper,
  options: AssignOptions = {},
): ImportReport {
  const report: ImportReport = { file: file.source, loaded: [], skipped: [], missing: [] };
  const pairs: [string, string][] = [];
  const unknown: string[] = [];
  const mismatched: string[] = [];
  const sources = new Map<string, string>();
  for (const name of file.names()) {
    const mapped = mapName(name);
    if (typeof mapped !== 'string') {
      report.skipped.push({ name, reason: mapped.skip });
      continue;
    }
    const target = targets.get(mapped);
    if (target === undefined) {
      unknown.push(mapped === name ? name : `${name} (as ${mapped})`);
      continue;
    }
    const previous = sources.get(mapped);
    if (previous !== undefined) throw new Error(`${file.source}: tensors "${previous}" and "${name}" both map to "${mapped}"`);
    sources.set(mapped, name);
    const shape = file.entry(name).shape;
    if (!tf.util.arraysEqual(shape, target.shape)) {
      mismatched.push(`checkpoint "${name}" has shape [${shape.join(', ')}] but model weight "${mapped}" expects [${target.shape.join(', ')}]`);
    }
    pairs.push([name, mapped]);
  }
  if (unknown.length > 0) {
    throw new Error(`${file.source}: ${unknown.length} tensors have no model weight: ${listSome(unknown)}`);
  }
  if (mismatched.length > 0) throw new Error(`${file.source}: ${mismatched.join('; ')}`);
  const missing = [...targets.keys()].filter((name) => !sources.has(name));
  const required = missing.filter((name) => !(options.optional?.(name) ?? false));
  if (required.length > 0) {
    throw new Error(`${file.source}: missing ${required.length} model weights: ${listSome(required)}`);
  }
  report.missing = missing;
  for (const [name, mapped] of pairs) {
    const tensor = file.read(name);
    const target = targets.get(mapped) as tf.Variable;
    tf.tidy(() => target.assign(tf.cast(tf.tensor(tensor.data, tensor.shape, 'float32'), target.dtype)));
    report.loaded.push(mapped);
  }
  return report;
}

function listSome(names: string[]): string {
  return names.length > 10 ? `${names.slice(0, 10).join(', ')}, ...` : names.join(', ');
}

function logReport(what: string, report: ImportReport): void {
  log.info(`${what}: loaded ${report.loaded.length} tensors from ${report.file}`);
  if (report.skipped.length > 0) {
    log.info(`skipped ${report.skipped.length}: ${report.skipped.map((s) => `${s.name} (${s.reason})`).join(', ')}`);
  }
  if (report.missing.length > 0) log.warn(`kept the initial values of ${report.missing.length}: ${listSome(report.missing)}`);
}

// ---------------------------------------------------------------------------
// Our own checkpoints.

/** Options of {@link saveCheckpoint}. */
export interface SaveCheckpointOptions {
  /** String metadata stored in the safetensors header. */
  metadata?: Record<string, string>;
}

/**
 * Saves every weight of `owner` (buffers included) as float32 in
 * `folder/model.safetensors` and `config` in `folder/config.json`. Each file
 * is written atomically; the weights go first, so a config always sits next
 * to weights at least as new as itself.
 */
export function saveCheckpoint(folder: string, owner: WeightOwner, config: unknown, options: SaveCheckpointOptions = {}): void {
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, variable] of owner.namedWeights()) {
    const data = variable.dtype === 'float32' ? (variable.dataSync() as Float32Array) : Float32Array.from(variable.dataSync());
    tensors.set(name, { dtype: 'F32', shape: [...variable.shape], data });
  }
  writeSafetensors(path.join(folder, CHECKPOINT_WEIGHTS_FILE), tensors, { format: CHECKPOINT_FORMAT, ...options.metadata });
  const document = { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, config };
  writeFileAtomic(path.join(folder, CHECKPOINT_CONFIG_FILE), `${JSON.stringify(document, null, 2)}\n`);
  log.info(`saved ${tensors.size} tensors to ${folder}`);
}

/** Reads the config that {@link saveCheckpoint} stored, to rebuild the model before loading its weights. */
export function readCheckpointConfig(folder: string): unknown {
  const file = path.join(folder, CHECKPOINT_CONFIG_FILE);
  if (!fs.existsSync(file)) throw new Error(`Checkpoint config not found: ${file}`);
  let document: { format?: unknown; version?: unknown; config?: unknown };
  try {
    document = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`${file}: invalid JSON (${(error as Error).message})`);
  }
  if (document.format !== CHECKPOINT_FORMAT) {
    throw new Error(`${file}: format ${JSON.stringify(document.format)} is not "${CHECKPOINT_FORMAT}"`);
  }
  if (document.version !== CHECKPOINT_VERSION) {
    throw new Error(`${file}: version ${JSON.stringify(document.version)} is not supported; expected ${CHECKPOINT_VERSION}`);
  }
  return document.config;
}

/** Loads the weights of a checkpoint folder into `owner`, which must have exactly the saved names and shapes. */
export function loadCheckpoint(folder: string, owner: WeightOwner): ImportReport {
  const file = SafetensorsFile.open(path.join(folder, CHECKPOINT_WEIGHTS_FILE));
  try {
    const report = assignFromFile(owner.namedWeights(), file, (name) => name);
    logReport('checkpoint', report);
    return report;
  } finally {
    file.close();
  }
}

// ---------------------------------------------------------------------------
// timm ViT checkpoints.

/** Options of {@link importTimmVit}. */
export interface TimmImportOptions {
  /**
   * Drop `blocks.N.attn.qkv.bias` when the model has no qkv bias (the MoRE
   * reference builds qkv without one). Dropping a trained bias changes the
   * function, so this is off by default and such a checkpoint is rejected.
   */
  allowDroppedQkvBias?: boolean;
  /**
   * Model weights that may keep their initial values, for example
   * `patch_embed.` when the ECG encoder takes only the transformer trunk.
   */
  keepPrefixes?: string[];
}

/**
 * Imports a timm `VisionTransformer` safetensors file (such as
 * `vit_base_patch16_224`'s `model.safetensors`) into a ViT whose weights use
 * timm's names (`cls_token`, `pos_embed`, `patch_embed.proj.weight`,
 * `blocks.0.attn.qkv.weight`, `norm.weight`). The classifier `head.*` is
 * skipped. Position embeddings must have the model's token count.
 */
export function importTimmVit(encoder: WeightOwner, file: string, options: TimmImportOptions = {}): ImportReport {
  const targets = encoder.namedWeights();
  const keep = options.keepPrefixes ?? [];
  const opened = SafetensorsFile.open(file);
  try {
    const mapName: NameMapper = (name) => {
      if (name.startsWith('head.')) return { skip: 'classifier head' };
      if (keep.some((prefix) => name.startsWith(prefix))) return { skip: `kept the model's own ${name}` };
      if (/^blocks\.\d+\.attn\.qkv\.bias$/.test(name) && !targets.has(name)) {
        if (!options.allowDroppedQkvBias) {
          throw new Error(
            `${file}: "${name}" exists but the model builds qkv without a bias. Build the encoder with qkvBias ` +
            'true to keep it, or pass { allowDroppedQkvBias: true } to drop every qkv bias.',
          );
        }
        return { skip: 'model has no qkv bias' };
      }
      return name;
    };
    const report = assignFromFile(targets, opened, mapName, {
      optional: (name) => keep.some((prefix) => name.startsWith(prefix)),
    });
    logReport('timm ViT', report);
    return report;
  } finally {
    opened.close();
  }
}

// ---------------------------------------------------------------------------
// The reference MoRE PyTorch weights.

/**
 * The command that converts the reference's `torch.save(model.state_dict(), ...)`
 * file into safetensors once, with the Python `safetensors` package:
 */
export const REFERENCE_CONVERSION_COMMAND =
  'python -c "import torch; from safetensors.torch import save_file; ' +
  "s = torch.load('MODEL.pth', map_location='cpu'); " +
  "save_file({k: v.contiguous() for k, v in s.items()}, 'MODEL.safetensors')\"";

/**
 * The one key map from the reference `MultiModal` state_dict to MoreModel
 * names, applied in order: [pattern, replacement]. A replacement of null
 * skips the tensor. The ViTs and heads already share the reference's names.
 * The text encoder is a peft model there, which wraps each adapted Linear in
 * `base_layer` and names the adapter `default`.
 */
export const REFERENCE_MORE_KEY_MAP: readonly (readonly [RegExp, string | null])[] = [
  [/^text_model\.base_model\.model\.embeddings\.(position_ids|token_type_ids)$/, null],
  [/^text_model\.base_model\.model\./, 'text_model.'],
  [/\.base_layer\./, '.'],
  [/\.(lora_[AB])\.default\./, '.$1.'],
];

/** Applies {@link REFERENCE_MORE_KEY_MAP} to one reference name; null means the tensor is skipped. */
export function mapReferenceMoreKey(name: string): string | null {
  let result = name;
  for (const [pattern, replacement] of REFERENCE_MORE_KEY_MAP) {
    if (!pattern.test(result)) continue;
    if (replacement === null) return null;
    result = result.replace(pattern, replacement);
  }
  return result;
}

/**
 * Imports reference MoRE weights, converted once to safetensors with
 * {@link REFERENCE_CONVERSION_COMMAND}. The model must have the reference's
 * architecture: ViT-B/16 towers without qkv bias, a RoBERTa-base text
 * encoder with LoRA r 16 on query and value, and nonlinear heads. The learnable
 * temperature (`logit_scale`), which the reference does not save, keeps its value.
 */
export function importReferenceMore(model: WeightOwner, file: string): ImportReport {
  const opened = SafetensorsFile.open(file);
  try {
    const mapName: NameMapper = (name) => mapReferenceMoreKey(name) ?? { skip: 'buffer recomputed from the input' };
    const report = assignFromFile(model.namedWeights(), opened, mapName, { optional: (name) => name === 'logit_scale' });
    logReport('reference MoRE weights', report);
    return report;
  } finally {
    opened.close();
  }
}
