/**
 * Configuration of the BERT / RoBERTa text encoder, read from a Hugging Face
 * `config.json` (transformers field names) or built from a named preset.
 */

export const TEXT_MODEL_TYPES = ['bert', 'roberta'] as const;
export type TextModelType = (typeof TEXT_MODEL_TYPES)[number];

/** Activations of the feed-forward block, named as transformers' `hidden_act`. */
export const TEXT_ACTIVATIONS = ['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu'] as const;
export type TextActivation = (typeof TEXT_ACTIVATIONS)[number];

/** The architecture of one BERT-family encoder. */
export interface TextEncoderConfig {
  /**
   * `roberta` numbers positions from padTokenId + 1 and skips padding tokens
   * (transformers' `create_position_ids_from_input_ids`); `bert` numbers
   * positions 0..T-1.
   */
  modelType: TextModelType;
  vocabSize: number;
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  intermediateSize: number;
  /** `gelu` is the exact erf form. */
  hiddenAct: TextActivation;
  maxPositionEmbeddings: number;
  typeVocabSize: number;
  layerNormEps: number;
  padTokenId: number;
  hiddenDropoutProb: number;
  attentionProbsDropoutProb: number;
  /** Whether the model has the `pooler.dense` layer (dense + tanh on the first token). */
  addPoolingLayer: boolean;
}

/** Named architectures: `tiny` for tests, and the two base models. */
export const TEXT_PRESET_NAMES = ['tiny', 'roberta-base', 'bert-base'] as const;
export type TextPresetName = (typeof TEXT_PRESET_NAMES)[number];

const ROBERTA_BASE: TextEncoderConfig = {
  modelType: 'roberta',
  vocabSize: 50265,
  hiddenSize: 768,
  numHiddenLayers: 12,
  numAttentionHeads: 12,
  intermediateSize: 3072,
  hiddenAct: 'gelu',
  maxPositionEmbeddings: 514,
  typeVocabSize: 1,
  layerNormEps: 1e-5,
  padTokenId: 1,
  hiddenDropoutProb: 0.1,
  attentionProbsDropoutProb: 0.1,
  addPoolingLayer: true,
};

/** Returns a preset's config (a fresh copy). */
export function textPreset(name: TextPresetName): TextEncoderConfig {
  switch (name) {
    case 'roberta-base':
      return { ...ROBERTA_BASE };
    case 'bert-base':
      return {
        ...ROBERTA_BASE,
        modelType: 'bert',
        vocabSize: 30522,
        maxPositionEmbeddings: 512,
        typeVocabSize: 2,
        layerNormEps: 1e-12,
        padTokenId: 0,
      };
    case 'tiny':
      return {
        ...ROBERTA_BASE,
        vocabSize: 1000,
        hiddenSize: 32,
        numHiddenLayers: 2,
        numAttentionHeads: 4,
        intermediateSize: 64,
        maxPositionEmbeddings: 130,
      };
    default:
      throw new Error(`Invalid text preset "${String(name)}": expected one of ${TEXT_PRESET_NAMES.join(', ')}`);
  }
}

/** Longest input (in tokens, special tokens included) the position table allows. */
export function maxTextLength(config: TextEncoderConfig): number {
  // RoBERTa's first position is padTokenId + 1, so that many rows are never used.
  return config.modelType === 'roberta'
    ? config.maxPositionEmbeddings - config.padTokenId - 1
    : config.maxPositionEmbeddings;
}

function checkInteger(source: string, field: string, value: unknown, min: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new Error(`${source}: invalid ${field} ${JSON.stringify(value)}, expected an integer >= ${min}`);
  }
}

function checkProbability(source: string, field: string, value: unknown): void {
  if (typeof value !== 'number' || !(value >= 0 && value < 1)) {
    throw new Error(`${source}: invalid ${field} ${JSON.stringify(value)}, expected a probability in [0, 1)`);
  }
}

/** Throws when a config is inconsistent; `source` names it (a file or `config`) in the message. */
export function validateTextConfig(config: TextEncoderConfig, source = 'text config'): void {
  if (!(TEXT_MODEL_TYPES as readonly string[]).includes(config.modelType)) {
    throw new Error(`${source}: invalid modelType ${JSON.stringify(config.modelType)}, expected one of ${TEXT_MODEL_TYPES.join(', ')}`);
  }
  checkInteger(source, 'vocabSize', config.vocabSize, 1);
  checkInteger(source, 'hiddenSize', config.hiddenSize, 1);
  checkInteger(source, 'numHiddenLayers', config.numHiddenLayers, 1);
  checkInteger(source, 'numAttentionHeads', config.numAttentionHeads, 1);
  checkInteger(source, 'intermediateSize', config.intermediateSize, 1);
  checkInteger(source, 'maxPositionEmbeddings', config.maxPositionEmbeddings, 1);
  checkInteger(source, 'typeVocabSize', config.typeVocabSize, 1);
  checkInteger(source, 'padTokenId', config.padTokenId, 0);
  if (config.hiddenSize % config.numAttentionHeads !== 0) {
    throw new Error(
      `${source}: numAttentionHeads ${config.numAttentionHeads} must divide hiddenSize ${config.hiddenSize}`,
    );
  }
  if (!(TEXT_ACTIVATIONS as readonly string[]).includes(config.hiddenAct)) {
    throw new Error(`${source}: invalid hiddenAct ${JSON.stringify(config.hiddenAct)}, expected one of ${TEXT_ACTIVATIONS.join(', ')}`);
  }
  if (typeof config.layerNormEps !== 'number' || !(config.layerNormEps > 0 && config.layerNormEps < 1)) {
    throw new Error(`${source}: invalid layerNormEps ${JSON.stringify(config.layerNormEps)}, expected a number in (0, 1)`);
  }
  checkProbability(source, 'hiddenDropoutProb', config.hiddenDropoutProb);
  checkProbability(source, 'attentionProbsDropoutProb', config.attentionProbsDropoutProb);
  if (config.modelType === 'roberta' && maxTextLength(config) < 1) {
    throw new Error(
      `${source}: maxPositionEmbeddings ${config.maxPositionEmbeddings} leaves no position after padTokenId ${config.padTokenId}`,
    );
  }
  if (typeof config.addPoolingLayer !== 'boolean') {
    throw new Error(`${source}: invalid addPoolingLayer ${JSON.stringify(config.addPoolingLayer)}, expected true or false`);
  }
}

/** Reads a transformers `config.json` object; `source` names the file in errors. */
export function parseHuggingFaceConfig(json: unknown, source: string): TextEncoderConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new Error(`${source}: expected a JSON object`);
  }
  const raw = json as Record<string, unknown>;
  const modelType = raw.model_type;
  if (typeof modelType !== 'string' || !(TEXT_MODEL_TYPES as readonly string[]).includes(modelType)) {
    throw new Error(
      `${source}: model_type ${JSON.stringify(modelType)} is not supported; expected one of ${TEXT_MODEL_TYPES.join(', ')}`,
    );
  }
  const positionType = raw.position_embedding_type ?? 'absolute';
  if (positionType !== 'absolute') {
    throw new Error(`${source}: position_embedding_type ${JSON.stringify(positionType)} is not supported; expected "absolute"`);
  }
  if (raw.is_decoder === true || raw.add_cross_attention === true) {
    throw new Error(`${source}: decoder and cross-attention configurations are not supported; expected an encoder`);
  }
  const required = (field: string): unknown => {
    if (!(field in raw)) throw new Error(`${source}: missing field "${field}"`);
    return raw[field];
  };
  const config: TextEncoderConfig = {
    modelType: modelType as TextModelType,
    vocabSize: required('vocab_size') as number,
    hiddenSize: required('hidden_size') as number,
    numHiddenLayers: required('num_hidden_layers') as number,
    numAttentionHeads: required('num_attention_heads') as number,
    intermediateSize: required('intermediate_size') as number,
    hiddenAct: (raw.hidden_act ?? 'gelu') as TextActivation,
    maxPositionEmbeddings: required('max_position_embeddings') as number,
    typeVocabSize: (raw.type_vocab_size ?? 2) as number,
    layerNormEps: (raw.layer_norm_eps ?? 1e-12) as number,
    padTokenId: (raw.pad_token_id ?? (modelType === 'roberta' ? 1 : 0)) as number,
    hiddenDropoutProb: (raw.hidden_dropout_prob ?? 0.1) as number,
    attentionProbsDropoutProb: (raw.attention_probs_dropout_prob ?? 0.1) as number,
    addPoolingLayer: true,
  };
  validateTextConfig(config, source);
  return config;
}

/** Writes a config back in transformers' field names, so transformers can read the folder. */
export function toHuggingFaceConfig(config: TextEncoderConfig): Record<string, unknown> {
  return {
    architectures: [config.modelType === 'roberta' ? 'RobertaModel' : 'BertModel'],
    model_type: config.modelType,
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    num_hidden_layers: config.numHiddenLayers,
    num_attention_heads: config.numAttentionHeads,
    intermediate_size: config.intermediateSize,
    hidden_act: config.hiddenAct,
    max_position_embeddings: config.maxPositionEmbeddings,
    type_vocab_size: config.typeVocabSize,
    layer_norm_eps: config.layerNormEps,
    pad_token_id: config.padTokenId,
    hidden_dropout_prob: config.hiddenDropoutProb,
    attention_probs_dropout_prob: config.attentionProbsDropoutProb,
    position_embedding_type: 'absolute',
  };
}

/** Trainable and total parameter counts of an architecture, computed without building it. */
export function countTextParameters(
  config: TextEncoderConfig,
  lora?: { r: number; targetModules: string[]; bias: 'none' | 'all' | 'lora_only' },
): { trainable: number; total: number } {
  const H = config.hiddenSize;
  const I = config.intermediateSize;
  // Dense layers of one encoder layer: [name suffix, in, out].
  const layerDense: [string, number, number][] = [
    ['attention.self.query', H, H],
    ['attention.self.key', H, H],
    ['attention.self.value', H, H],
    ['attention.output.dense', H, H],
    ['intermediate.dense', H, I],
    ['output.dense', I, H],
  ];
  const dense: [string, number, number][] = [];
  for (let index = 0; index < config.numHiddenLayers; index++) {
    for (const [suffix, inputs, outputs] of layerDense) dense.push([`encoder.layer.${index}.${suffix}`, inputs, outputs]);
  }
  if (config.addPoolingLayer) dense.push(['pooler.dense', H, H]);
  const layerNorms = 1 + 2 * config.numHiddenLayers;
  const embeddings = (config.vocabSize + config.maxPositionEmbeddings + config.typeVocabSize) * H;

  const denseWeights = dense.reduce((sum, [, inputs, outputs]) => sum + inputs * outputs, 0);
  const denseBiases = dense.reduce((sum, [, , outputs]) => sum + outputs, 0);
  const total = embeddings + 2 * H * layerNorms + denseWeights + denseBiases;
  if (lora === undefined) return { trainable: total, total };

  const matches = (name: string): boolean =>
    lora.targetModules.some((target) => name === target || name.endsWith(`.${target}`));
  const adapted = dense.filter(([name]) => matches(name));
  const adapterSize = adapted.reduce((sum, [, inputs, outputs]) => sum + lora.r * (inputs + outputs), 0);
  let trainableBiases = 0;
  if (lora.bias === 'all') trainableBiases = denseBiases + H * layerNorms;
  if (lora.bias === 'lora_only') trainableBiases = adapted.reduce((sum, [, , outputs]) => sum + outputs, 0);
  return { trainable: adapterSize + trainableBiases, total: total + adapterSize };
}
