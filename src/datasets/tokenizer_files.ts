/**
 * Builds the `tokenizer.json` description of a checkpoint that ships only the
 * older vocabulary files: `vocab.json` + `merges.txt` (RoBERTa byte-level BPE)
 * or `vocab.txt` (BERT WordPiece). The result follows what transformers'
 * slow-to-fast converters produce for RobertaTokenizer and BertTokenizer.
 */

import * as fs from 'fs';
import * as path from 'path';

type Json = Record<string, unknown>;

function readJson(file: string): Json {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Json;
  } catch (error) {
    throw new Error(`${file}: invalid JSON (${(error as Error).message})`);
  }
}

function specialToken(config: Json, key: string, fallback: string): string {
  const value = config[key];
  if (typeof value === 'string') return value;
  // Some configs store added-token objects: {"content": "<s>", ...}.
  if (value !== null && typeof value === 'object' && typeof (value as Json).content === 'string') return (value as Json).content as string;
  return fallback;
}

function addedTokens(vocab: Record<string, number>, tokens: string[], source: string): Json[] {
  return [...new Set(tokens)].map((content) => {
    const id = vocab[content];
    if (id === undefined) throw new Error(`${source}: special token ${content} is not in the vocabulary`);
    return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  });
}

/** Returns the tokenizer.json description of a RoBERTa checkpoint with `vocab.json` and `merges.txt`. */
export function robertaTokenizerJson(folder: string, config: Json): Json {
  const vocabFile = path.join(folder, 'vocab.json');
  const vocab = readJson(vocabFile) as Record<string, number>;
  const mergesFile = path.join(folder, 'merges.txt');
  const merges = fs
    .readFileSync(mergesFile, 'utf8')
    .split('\n')
    .filter((line, index) => line.trim() !== '' && !(index === 0 && line.startsWith('#version')))
    .map((line, index) => {
      const parts = line.split(' ');
      if (parts.length !== 2) throw new Error(`${mergesFile} line ${index + 1}: expected two tokens separated by a space, got "${line}"`);
      return parts;
    });
  const bos = specialToken(config, 'bos_token', '<s>');
  const eos = specialToken(config, 'eos_token', '</s>');
  const sep = specialToken(config, 'sep_token', eos);
  const cls = specialToken(config, 'cls_token', bos);
  const unk = specialToken(config, 'unk_token', '<unk>');
  const pad = specialToken(config, 'pad_token', '<pad>');
  const mask = specialToken(config, 'mask_token', '<mask>');
  const addPrefixSpace = config.add_prefix_space === true;
  const idOf = (token: string) => {
    const id = vocab[token];
    if (id === undefined) throw new Error(`${vocabFile}: special token ${token} is not in the vocabulary`);
    return id;
  };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens(vocab, [bos, pad, eos, unk, mask], vocabFile),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: true, use_regex: true },
    post_processor: { type: 'RobertaProcessing', sep: [sep, idOf(sep)], cls: [cls, idOf(cls)], trim_offsets: true, add_prefix_space: addPrefixSpace },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges,
    },
  };
}

/** Returns the tokenizer.json description of a BERT checkpoint with `vocab.txt` (one token per line, id = line index). */
export function bertTokenizerJson(folder: string, config: Json): Json {
  const vocabFile = path.join(folder, 'vocab.txt');
  const vocab: Record<string, number> = {};
  fs.readFileSync(vocabFile, 'utf8')
    .replace(/\n$/, '')
    .split('\n')
    .forEach((token, index) => {
      const content = token.replace(/\r$/, '');
      if (!(content in vocab)) vocab[content] = index;
    });
  const cls = specialToken(config, 'cls_token', '[CLS]');
  const sep = specialToken(config, 'sep_token', '[SEP]');
  const unk = specialToken(config, 'unk_token', '[UNK]');
  const pad = specialToken(config, 'pad_token', '[PAD]');
  const mask = specialToken(config, 'mask_token', '[MASK]');
  const idOf = (token: string) => {
    const id = vocab[token];
    if (id === undefined) throw new Error(`${vocabFile}: special token ${token} is not in the vocabulary`);
    return id;
  };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens(vocab, [pad, unk, cls, sep, mask], vocabFile),
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: config.tokenize_chinese_chars !== false,
      strip_accents: typeof config.strip_accents === 'boolean' ? config.strip_accents : null,
      lowercase: config.do_lower_case !== false,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } }],
      pair: [
        { SpecialToken: { id: cls, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: sep, type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: sep, type_id: 1 } },
      ],
      special_tokens: {
        [cls]: { id: cls, ids: [idOf(cls)], tokens: [cls] },
        [sep]: { id: sep, ids: [idOf(sep)], tokens: [sep] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: unk, continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}
