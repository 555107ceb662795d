/**
 * Loading and saving text encoders in Hugging Face layout: a folder with
 * `config.json` and `model.safetensors` (or `pytorch_model.safetensors`, or
 * shards listed in `model.safetensors.index.json`), and peft LoRA adapters in
 * a folder with `adapter_config.json` and `adapter_model.safetensors`.
 * Loading reads the config, then the weights, then the adapter, and logs
 * each stage. `tokenizer.json` is the tokenizer's business, not read here.
 */
import * as fs from 'fs';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import { writeFileAtomic } from '../../util/atomic';
import { getLogger } from '../../util/log';
import { type LoraBiasMode, type LoraConfig, LoraLinear } from '../lora';
import { SafetensorsFile, type TensorToWrite, type WritableDtype, writeSafetensors } from '../safetensors';
import { type TextEncoderConfig, parseHuggingFaceConfig, toHuggingFaceConfig } from './config';
import { type TextBuildOptions, TransformerTextEncoder } from './encoder';

const log = getLogger('model.text');

/** Buffers that transformers checkpoints may carry and that this encoder recomputes. */
const KNOWN_BUFFERS = ['embeddings.position_ids', 'embeddings.token_type_ids'];

/** Prefixes of task models (`RobertaForMaskedLM` keeps the encoder under `roberta.`). */
const ENCODER_PREFIXES = ['roberta.', 'bert.'];

/**
 * Maps a checkpoint name to this encoder's name: drops a task-model prefix
 * and peft's wrapping (`base_model.model.`, `.base_layer.`, the adapter name
 * `.default.`), and renames old LayerNorm `gamma` / `beta` to `weight` / `bias`.
 */
export function normaliseTextWeightName(name: string): string {
  let result = name;
  if (result.startsWith('base_model.model.')) result = result.slice('base_model.model.'.length);
  for (const prefix of ENCODER_PREFIXES) {
    if (result.startsWith(prefix)) result = result.slice(prefix.length);
  }
  result = result.replace('.base_layer.', '.').replace(/\.(lora_[AB])\.default\./, '.$1.');
  result = result.replace(/LayerNorm\.gamma$/, 'LayerNorm.weight').replace(/LayerNorm\.beta$/, 'LayerNorm.bias');
  return result;
}

/** Finds the weight files of a Hugging Face folder, in the order transformers prefers. */
export function findWeightFiles(folder: string): string[] {
  const single = ['model.safetensors', 'pytorch_model.safetensors'].map((name) => path.join(folder, name));
  for (const file of single) if (fs.existsSync(file)) return [file];
  const index = path.join(folder, 'model.safetensors.index.json');
  if (fs.existsSync(index)) {
    const json = JSON.parse(fs.readFileSync(index, 'utf8')) as { weight_map?: Record<string, string> };
    if (json.weight_map === undefined) throw new Error(`${index}: missing "weight_map"`);
    return [...new Set(Object.values(json.weight_map))].map((name) => path.join(folder, name));
  }
  const legacy = path.join(folder, 'pytorch_model.bin');
  const hint = fs.existsSync(legacy)
    ? ` It has ${legacy}, a pickle this loader cannot read: convert it once with ` +
      '`python -c "import torch; from safetensors.torch import save_file; ' +
      "save_file({k: v.contiguous() for k, v in torch.load('pytorch_model.bin').items()}, 'model.safetensors')\"`."
    : '';
  throw new Error(`No weights found in ${folder}: expected model.safetensors, pytorch_model.safetensors or model.safetensors.index.json.${hint}`);
}

/** What a load did: which checkpoint tensors were used and which were skipped, by name. */
export interface TextLoadReport {
  files: string[];
  loaded: number;
  /** Checkpoint tensors that are recomputed buffers (position ids). */
  skippedBuffers: string[];
  /** Checkpoint tensors that belong to no part of the encoder (task heads such as `lm_head.*`). */
  skippedUnexpected: string[];
  /** Storage dtypes met, with tensor counts. */
  dtypes: Record<string, number>;
}

/** Options of {@link loadTextEncoder}. */
export interface LoadTextEncoderOptions extends TextBuildOptions {
  /** Reject checkpoint tensors the encoder does not use (default false: they are skipped and reported). */
  strict?: boolean;
  /** A peft adapter folder to load after the weights. */
  adapter?: string;
}

/**
 * Copies checkpoint tensors into `encoder`, checking every name and shape
 * before anything is assigned. Every encoder weight except LoRA adapters must
 * be present; the pooler may be absent only when the encoder has none.
 */
function loadWeightFiles(encoder: TransformerTextEncoder, files: string[], strict: boolean): TextLoadReport {
  const targets = encoder.namedWeights();
  const found = new Map<string, { file: SafetensorsFile; name: string }>();
  const report: TextLoadReport = { files, loaded: 0, skippedBuffers: [], skippedUnexpected: [], dtypes: {} };
  const opened = files.map((file) => SafetensorsFile.open(file));
  try {
    for (const file of opened) {
      for (const name of file.names()) {
        const ours = normaliseTextWeightName(name);
        if (KNOWN_BUFFERS.includes(ours)) {
          report.skippedBuffers.push(name);
        } else if (!targets.has(ours)) {
          report.skippedUnexpected.push(name);
        } else {
          if (found.has(ours)) {
            throw new Error(`${file.source}: tensor "${name}" duplicates "${found.get(ours)?.name}" (both load into ${ours})`);
          }
          found.set(ours, { file, name });
        }
      }
    }
    if (strict && report.skippedUnexpected.length > 0) {
      throw new Error(`${files.join(', ')}: tensors the encoder does not have: ${report.skippedUnexpected.join(', ')}`);
    }
    const missing = [...targets.keys()].filter((name) => !found.has(name) && !name.includes('.lora_'));
    if (missing.length > 0) {
      throw new Error(
        `${files.join(', ')}: missing ${missing.length} encoder weights (${missing.slice(0, 8).join(', ')}` +
        `${missing.length > 8 ? ', ...' : ''}); is the config the one that belongs to these weights?`,
      );
    }
    const mismatched: string[] = [];
    for (const [ours, { file, name }] of found) {
      const expected = targets.get(ours)?.shape ?? [];
      const shape = file.entry(name).shape;
      if (!tf.util.arraysEqual(shape, expected)) {
        mismatched.push(`checkpoint "${name}" has shape [${shape.join(', ')}] but encoder weight "${ours}" expects [${expected.join(', ')}]`);
      }
    }
    if (mismatched.length > 0) throw new Error(`${files.join(', ')}: ${mismatched.join('; ')}`);

    const dense = new Map<string, LoraLinear>();
    for (const [name, layer] of encoder.denseLayers()) dense.set(`${name}.weight`, layer);
    for (const [ours, { file, name }] of found) {
      const tensor = file.read(name);
      report.dtypes[tensor.dtype] = (report.dtypes[tensor.dtype] ?? 0) + 1;
      const target = targets.get(ours) as tf.Variable;
      tf.tidy(() => target.assign(tf.tensor(tensor.data, tensor.shape, 'float32')));
      const layer = dense.get(ours);
      if (layer !== undefined && (tensor.dtype === 'F16' || tensor.dtype === 'BF16')) layer.storageDtype = tensor.dtype;
      report.loaded += 1;
    }
  } finally {
    for (const file of opened) file.close();
  }
  return report;
}

function readJson(file: string): unknown {
  if (!fs.existsSync(file)) throw new Error(`File not found: ${file}`);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`${file}: invalid JSON (${(error as Error).message})`);
  }
}

/** Reads and validates a Hugging Face text encoder config. */
export function readTextConfig(folder: string): TextEncoderConfig {
  const file = path.join(folder, 'config.json');
  return parseHuggingFaceConfig(readJson(file), file);
}

/**
 * Loads a BERT or RoBERTa encoder from a Hugging Face folder, and a peft
 * adapter when `options.adapter` names one. The pooler is built only when
 * the checkpoint has its weights.
 */
export function loadTextEncoder(folder: string, options: LoadTextEncoderOptions = {}): {
  encoder: TransformerTextEncoder;
  report: TextLoadReport;
} {
  const config = readTextConfig(folder);
  const files = findWeightFiles(folder);
  const names = new Set<string>();
  for (const file of files) {
    const opened = SafetensorsFile.open(file);
    for (const name of opened.names()) names.add(normaliseTextWeightName(name));
    opened.close();
  }
  config.addPoolingLayer = names.has('pooler.dense.weight');
  log.info(
    `loading ${config.modelType} encoder from ${folder}: ${config.numHiddenLayers} layers, width ${config.hiddenSize}, ` +
    `${files.length} weight file(s)${config.addPoolingLayer ? '' : ', no pooler'}`,
  );
  const { strict: _strict, adapter: _adapter, ...buildOptions } = options;
  const encoder = new TransformerTextEncoder(config, { ...buildOptions, randomInit: false });
  try {
    const report = loadWeightFiles(encoder, files, options.strict ?? false);
    log.info(`loaded ${report.loaded} tensors (${Object.entries(report.dtypes).map(([d, n]) => `${n} ${d}`).join(', ')})`);
    if (report.skippedBuffers.length > 0) log.info(`skipped recomputed buffers: ${report.skippedBuffers.join(', ')}`);
    if (report.skippedUnexpected.length > 0) {
      log.warn(`skipped ${report.skippedUnexpected.length} tensors the encoder does not use: ${report.skippedUnexpected.join(', ')}`);
    }
    if (options.adapter !== undefined) loadLoraAdapter(encoder, options.adapter);
    return { encoder, report };
  } catch (error) {
    encoder.dispose();
    throw error;
  }
}

/** Reads peft's `adapter_config.json` into a {@link LoraConfig}, rejecting variants this LoRA does not implement. */
export function readAdapterConfig(folder: string): LoraConfig {
  const file = path.join(folder, 'adapter_config.json');
  const raw = readJson(file) as Record<string, unknown>;
  if (raw.peft_type !== 'LORA') throw new Error(`${file}: peft_type ${JSON.stringify(raw.peft_type)} is not supported; expected "LORA"`);
  const unsupported: [string, unknown][] = [
    ['use_dora', raw.use_dora], ['use_rslora', raw.use_rslora], ['fan_in_fan_out', raw.fan_in_fan_out],
  ];
  for (const [field, value] of unsupported) {
    if (value === true) throw new Error(`${file}: ${field} is true, which this LoRA does not implement`);
  }
  for (const field of ['rank_pattern', 'alpha_pattern']) {
    const pattern = raw[field];
    if (pattern !== undefined && pattern !== null && Object.keys(pattern as object).length > 0) {
      throw new Error(`${file}: per-layer ${field} is not supported; expected an empty object`);
    }
  }
  if (raw.modules_to_save !== undefined && raw.modules_to_save !== null) {
    throw new Error(`${file}: modules_to_save ${JSON.stringify(raw.modules_to_save)} is not supported`);
  }
  let targets = raw.target_modules;
  if (typeof targets === 'string') {
    throw new Error(`${file}: target_modules as a regular expression ("${targets}") is not supported; expected a list`);
  }
  if (targets === null || targets === undefined) targets = ['query', 'value'];
  return {
    r: raw.r as number,
    alpha: raw.lora_alpha as number,
    dropout: (raw.lora_dropout ?? 0) as number,
    targetModules: [...(targets as string[])].sort(),
    bias: (raw.bias ?? 'none') as LoraBiasMode,
  };
}

/**
 * Adds the adapter of a peft folder to `encoder`: attaches LoRA with its
 * config, then loads `adapter_model.safetensors` (adapter matrices, and the
 * biases peft saves with `bias` "all" or "lora_only"), checking names and shapes.
 */
export function loadLoraAdapter(encoder: TransformerTextEncoder, folder: string): void {
  const config = readAdapterConfig(folder);
  const file = path.join(folder, 'adapter_model.safetensors');
  const opened = SafetensorsFile.open(file);
  try {
    encoder.addLora(config);
    const targets = encoder.namedWeights();
    const pairs: [string, string][] = [];
    const unexpected: string[] = [];
    for (const name of opened.names()) {
      const ours = normaliseTextWeightName(name);
      const target = targets.get(ours);
      if (target === undefined) {
        unexpected.push(name);
        continue;
      }
      const shape = opened.entry(name).shape;
      if (!tf.util.arraysEqual(shape, target.shape)) {
        throw new Error(`${file}: tensor "${name}" has shape [${shape.join(', ')}] but encoder weight "${ours}" expects [${target.shape.join(', ')}]`);
      }
      pairs.push([name, ours]);
    }
    if (unexpected.length > 0) throw new Error(`${file}: tensors the encoder does not have: ${unexpected.join(', ')}`);
    const adapterNames = [...targets.keys()].filter((name) => name.includes('.lora_'));
    const provided = new Set(pairs.map(([, ours]) => ours));
    const missing = adapterNames.filter((name) => !provided.has(name));
    if (missing.length > 0) throw new Error(`${file}: missing adapter weights ${missing.join(', ')}`);
    for (const [name, ours] of pairs) {
      const tensor = opened.read(name);
      tf.tidy(() => (targets.get(ours) as tf.Variable).assign(tf.tensor(tensor.data, tensor.shape, 'float32')));
    }
    log.info(`loaded LoRA adapter from ${folder}: ${pairs.length} tensors, r=${config.r}, alpha=${config.alpha}`);
  } finally {
    opened.close();
  }
}

/** Options of {@link saveTextEncoder}. */
export interface SaveTextEncoderOptions {
  /** Storage dtype of the weights (default F32). */
  dtype?: WritableDtype;
}

function toWritable(variable: tf.Variable, dtype: WritableDtype): TensorToWrite {
  return { dtype, shape: [...variable.shape], data: variable.dataSync() as Float32Array };
}

/**
 * Saves `encoder` as a Hugging Face folder that transformers can load
 * (`config.json`, `model.safetensors`), and its LoRA adapter, if any, as a
 * peft folder under `adapter/`. Merged adapters are saved unmerged: merge
 * state is not part of the files.
 */
export function saveTextEncoder(encoder: TransformerTextEncoder, folder: string, options: SaveTextEncoderOptions = {}): void {
  const dtype = options.dtype ?? 'F32';
  const mergedLayers = [...encoder.denseLayers().entries()].filter(([, layer]) => layer.isMerged).map(([name]) => name);
  if (mergedLayers.length > 0) {
    throw new Error(`Cannot save while LoRA adapters are merged (${mergedLayers.join(', ')}); unmerge them first`);
  }
  const base = new Map<string, TensorToWrite>();
  const adapter = new Map<string, TensorToWrite>();
  const lora = encoder.lora;
  for (const [name, variable] of encoder.namedWeights()) {
    if (name.includes('.lora_')) {
      adapter.set(`base_model.model.${name}`, toWritable(variable, 'F32'));
      continue;
    }
    base.set(name, toWritable(variable, dtype));
    if (lora !== undefined && variable.trainable && name.endsWith('bias')) {
      // peft keeps a wrapped layer's bias under `base_layer`.
      const owner = name.slice(0, -'.bias'.length);
      const wrapped = encoder.denseLayers().get(owner)?.lora !== undefined;
      const peftName = wrapped ? `${owner}.base_layer.bias` : name;
      adapter.set(`base_model.model.${peftName}`, toWritable(variable, 'F32'));
    }
  }
  writeFileAtomic(path.join(folder, 'config.json'), `${JSON.stringify(toHuggingFaceConfig(encoder.config), null, 2)}\n`);
  writeSafetensors(path.join(folder, 'model.safetensors'), base, { format: 'pt' });
  if (lora !== undefined) {
    const adapterFolder = path.join(folder, 'adapter');
    const peftConfig = {
      peft_type: 'LORA',
      task_type: 'FEATURE_EXTRACTION',
      r: lora.r,
      lora_alpha: lora.alpha,
      lora_dropout: lora.dropout,
      target_modules: lora.targetModules,
      bias: lora.bias,
      fan_in_fan_out: false,
      use_dora: false,
      use_rslora: false,
      init_lora_weights: true,
    };
    writeFileAtomic(path.join(adapterFolder, 'adapter_config.json'), `${JSON.stringify(peftConfig, null, 2)}\n`);
    writeSafetensors(path.join(adapterFolder, 'adapter_model.safetensors'), adapter, { format: 'pt' });
  }
  log.info(`saved ${encoder.config.modelType} encoder to ${folder} (${base.size} tensors as ${dtype}${lora ? `, adapter ${adapter.size} tensors` : ''})`);
}
