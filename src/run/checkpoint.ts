/**
 * Self-contained checkpoints of the main job: the MoRE weights (LoRA
 * adapters included), the model config, the text encoder config and LoRA
 * settings, and the tokenizer files, so a checkpoint loads on a machine that
 * lacks the text encoder folder the run started from.
 */
import * as fs from 'fs';
import * as path from 'path';

import { ReportTokenizer } from '../datasets/tokenizer';
import { loadCheckpoint, readCheckpointConfig, saveCheckpoint } from '../model/checkpoint';
import type { MoreConfig } from '../model/config';
import type { LoraConfig } from '../model/lora';
import { MoreModel } from '../model/more';
import type { TextEncoderConfig } from '../model/text/config';
import { TransformerTextEncoder } from '../model/text/encoder';

/** Files of the text encoder folder copied into the checkpoint's `text/` folder. */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt', 'merges.txt', 'vocab.json'];

export interface MainJobCheckpointConfig {
  kind: 'more-ts-main-job';
  model: MoreConfig;
  text: TextEncoderConfig;
  /** LoRA settings of the text encoder, or null when it has none. */
  lora: LoraConfig | null;
  maxTextLength: number;
  /** Folder the text encoder was first loaded from, for the record. */
  textModelSource: string;
}

/** Writes `model` and everything needed to rebuild it into `folder`. */
export function saveMainJobCheckpoint(folder: string, model: MoreModel, textModelSource: string, maxTextLength: number): void {
  if (!(model.text instanceof TransformerTextEncoder)) {
    throw new Error('saveMainJobCheckpoint: the model text encoder must be a TransformerTextEncoder');
  }
  const config: MainJobCheckpointConfig = {
    kind: 'more-ts-main-job',
    model: model.config,
    text: model.text.config,
    lora: model.text.lora ?? null,
    maxTextLength,
    textModelSource,
  };
  const textFolder = path.join(folder, 'text');
  fs.mkdirSync(textFolder, { recursive: true });
  for (const name of TOKENIZER_FILES) {
    const source = path.join(textModelSource, name);
    if (fs.existsSync(source)) fs.copyFileSync(source, path.join(textFolder, name));
  }
  saveCheckpoint(folder, model, config);
}

function isMainJobConfig(value: unknown): value is MainJobCheckpointConfig {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'more-ts-main-job';
}

/** Rebuilds the model of a main-job checkpoint and loads its weights; the caller disposes the model. */
export function loadMainJobCheckpoint(folder: string): { model: MoreModel; tokenizer: ReportTokenizer; config: MainJobCheckpointConfig } {
  const config = readCheckpointConfig(folder);
  if (!isMainJobConfig(config)) {
    throw new Error(`${folder}: not a main-job checkpoint (config.json has no "kind": "more-ts-main-job")`);
  }
  const tokenizer = ReportTokenizer.fromFolder(path.join(folder, 'text'));
  const text = new TransformerTextEncoder(config.text);
  if (config.lora !== null) text.addLora(config.lora);
  const model = new MoreModel(config.model, text);
  try {
    loadCheckpoint(folder, model);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return { model, tokenizer, config };
}
