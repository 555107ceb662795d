/**
 * Report tokeniser built on a Hugging Face `tokenizer.json` (byte-level BPE for
 * RoBERTa, WordPiece for BERT). `@huggingface/tokenizers` splits text into ids,
 * and this module adds the special tokens from the file's post-processor, truncates
 * sentence pairs longest-first as Hugging Face `tokenizers` does, pads on
 * request and counts truncated reports. The embedded truncation and padding
 * settings of `tokenizer.json` are ignored, as `transformers` ignores them when a
 * call passes its own.
 */

import * as fs from 'fs';
import * as path from 'path';

import { Tokenizer } from '@huggingface/tokenizers';

import { bertTokenizerJson, robertaTokenizerJson } from './tokenizer_files';

/** Maximum sequence length of RoBERTa-base and of the MoRE text encoder. */
export const DEFAULT_MAX_LENGTH = 512;

export interface TokenizeOptions {
  /** Maximum length including special tokens (default 512). */
  maxLength?: number;
  /** Pad every sequence to `maxLength` with the pad token (default false). */
  padToMaxLength?: boolean;
}

export interface EncodedText {
  inputIds: number[];
  attentionMask: number[];
  tokenTypeIds: number[];
  /** True when content tokens were cut to fit `maxLength`. */
  truncated: boolean;
}

/** A batch laid out row-major as `batchSize x sequenceLength`, ready for a tensor. */
export interface EncodedBatch {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  tokenTypeIds: Int32Array;
  batchSize: number;
  sequenceLength: number;
  /** Number of rows whose text was cut to fit `maxLength`. */
  truncatedCount: number;
}

type TemplatePiece = { SpecialToken: { id: string; type_id: number } } | { Sequence: { id: 'A' | 'B'; type_id: number } };

/** Special-token layout around one or two sequences, resolved to ids. */
interface SpecialTokenLayout {
  single: { kind: 'special' | 'A' | 'B'; ids: number[]; typeId: number }[];
  pair: { kind: 'special' | 'A' | 'B'; ids: number[]; typeId: number }[];
}

interface PostProcessorJson {
  type: string;
  sep?: [string, number];
  cls?: [string, number];
  single?: TemplatePiece[];
  pair?: TemplatePiece[];
  special_tokens?: Record<string, { ids: number[] }>;
  processors?: PostProcessorJson[];
}

function layoutFromPostProcessor(processor: PostProcessorJson | null, source: string): SpecialTokenLayout {
  if (processor === null) {
    return { single: [{ kind: 'A', ids: [], typeId: 0 }], pair: [{ kind: 'A', ids: [], typeId: 0 }, { kind: 'B', ids: [], typeId: 1 }] };
  }
  switch (processor.type) {
    case 'RobertaProcessing': {
      const cls = processor.cls![1];
      const sep = processor.sep![1];
      const special = (id: number) => ({ kind: 'special' as const, ids: [id], typeId: 0 });
      return {
        single: [special(cls), { kind: 'A', ids: [], typeId: 0 }, special(sep)],
        pair: [special(cls), { kind: 'A', ids: [], typeId: 0 }, special(sep), special(sep), { kind: 'B', ids: [], typeId: 0 }, special(sep)],
      };
    }
    case 'BertProcessing': {
      const cls = processor.cls![1];
      const sep = processor.sep![1];
      return {
        single: [{ kind: 'special', ids: [cls], typeId: 0 }, { kind: 'A', ids: [], typeId: 0 }, { kind: 'special', ids: [sep], typeId: 0 }],
        pair: [
          { kind: 'special', ids: [cls], typeId: 0 },
          { kind: 'A', ids: [], typeId: 0 },
          { kind: 'special', ids: [sep], typeId: 0 },
          { kind: 'B', ids: [], typeId: 1 },
          { kind: 'special', ids: [sep], typeId: 1 },
        ],
      };
    }
    case 'TemplateProcessing': {
      const resolve = (pieces: TemplatePiece[]) =>
        pieces.map((piece) => {
          if ('Sequence' in piece) return { kind: piece.Sequence.id, ids: [], typeId: piece.Sequence.type_id };
          const entry = processor.special_tokens?.[piece.SpecialToken.id];
          if (entry === undefined) {
            throw new Error(`${source}: the post-processor template uses ${piece.SpecialToken.id}, which its special_tokens table lacks`);
          }
          return { kind: 'special' as const, ids: entry.ids, typeId: piece.SpecialToken.type_id };
        });
      return { single: resolve(processor.single ?? []), pair: resolve(processor.pair ?? []) };
    }
    case 'Sequence': {
      // A ByteLevel step only adjusts offsets, so the layout comes from the other step.
      const steps = (processor.processors ?? []).filter((step) => step.type !== 'ByteLevel');
      if (steps.length > 1) throw new Error(`${source}: a post-processor sequence with ${steps.length} token-adding steps is not supported`);
      return layoutFromPostProcessor(steps[0] ?? null, source);
    }
    case 'ByteLevel':
      return layoutFromPostProcessor(null, source);
    default:
      throw new Error(
        `${source}: unsupported post-processor ${processor.type}; expected RobertaProcessing, BertProcessing, TemplateProcessing, ByteLevel or Sequence`,
      );
  }
}

/**
 * Returns the kept lengths of a pair cut longest-first to `budget` content
 * tokens. This reproduces Hugging Face `tokenizers` (LongestFirst): the shorter
 * sequence keeps min(its length, floor(budget / 2)) tokens and the other takes
 * the rest. On equal lengths the first sequence counts as the shorter one.
 */
export function longestFirstLengths(first: number, second: number, budget: number): [number, number] {
  if (first + second <= budget) return [first, second];
  if (first > second) {
    const kept = Math.min(second, Math.floor(budget / 2));
    return [budget - kept, kept];
  }
  const kept = Math.min(first, Math.floor(budget / 2));
  return [kept, budget - kept];
}

export class ReportTokenizer {
  private readonly tokenizer: Tokenizer;
  private readonly layout: SpecialTokenLayout;
  /** Id of the pad token, or null when the tokenizer defines none. */
  readonly padId: number | null;

  constructor(tokenizerJson: Record<string, unknown>, tokenizerConfig: Record<string, unknown> = {}, source = 'tokenizer.json') {
    this.tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    this.layout = layoutFromPostProcessor((tokenizerJson.post_processor as PostProcessorJson | null) ?? null, source);
    const padToken = (tokenizerConfig.pad_token as string | undefined) ?? (tokenizerJson.padding as { pad_token?: string } | null)?.pad_token;
    this.padId = padToken === undefined ? null : (this.tokenizer.token_to_id(padToken) ?? null);
  }

  /**
   * Loads a tokenizer from a Hugging Face model folder: `tokenizer.json` when
   * present, otherwise `vocab.json` + `merges.txt` (RoBERTa) or `vocab.txt`
   * (BERT), with `tokenizer_config.json` when present.
   */
  static fromFolder(folder: string): ReportTokenizer {
    const parse = (file: string): Record<string, unknown> => {
      try {
        return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
      } catch (error) {
        throw new Error(`${file}: invalid JSON (${(error as Error).message})`);
      }
    };
    const configPath = path.join(folder, 'tokenizer_config.json');
    const config = fs.existsSync(configPath) ? parse(configPath) : {};
    const jsonPath = path.join(folder, 'tokenizer.json');
    if (fs.existsSync(jsonPath)) return new ReportTokenizer(parse(jsonPath), config, jsonPath);
    if (fs.existsSync(path.join(folder, 'vocab.json')) && fs.existsSync(path.join(folder, 'merges.txt'))) {
      return new ReportTokenizer(robertaTokenizerJson(folder, config), config, path.join(folder, 'vocab.json'));
    }
    if (fs.existsSync(path.join(folder, 'vocab.txt'))) {
      return new ReportTokenizer(bertTokenizerJson(folder, config), config, path.join(folder, 'vocab.txt'));
    }
    throw new Error(
      `${jsonPath}: tokenizer file not found; expected tokenizer.json, vocab.json with merges.txt, or vocab.txt in ${folder}`,
    );
  }

  /** Returns the content ids of `text` without special tokens. */
  tokenIds(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /** Number of special tokens added around one sequence (`pair` false) or two. */
  specialTokenCount(pair: boolean): number {
    const layout = pair ? this.layout.pair : this.layout.single;
    return layout.reduce((sum, piece) => sum + (piece.kind === 'special' ? piece.ids.length : 0), 0);
  }

  /**
   * Encodes `text`, or the pair (`text`, `pair`), with special tokens; an empty
   * `pair` counts as none, as in transformers. Content
   * is cut longest-first so the result fits `maxLength`; the special tokens,
   * the end token included, always stay.
   */
  encode(text: string, pair: string | null = null, options: TokenizeOptions = {}): EncodedText {
    const maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH;
    // transformers treats an empty second text as no second text, and so does this method.
    const isPair = pair !== null && pair !== '';
    const budget = maxLength - this.specialTokenCount(isPair);
    if (budget < 0) {
      throw new Error(`Invalid maxLength ${maxLength}: the special tokens alone need ${this.specialTokenCount(isPair)}`);
    }
    let first = this.tokenIds(text);
    let second = isPair ? this.tokenIds(pair as string) : [];
    const [keepFirst, keepSecond] = isPair ? longestFirstLengths(first.length, second.length, budget) : [Math.min(first.length, budget), 0];
    const truncated = keepFirst < first.length || keepSecond < second.length;
    first = first.slice(0, keepFirst);
    second = second.slice(0, keepSecond);

    const inputIds: number[] = [];
    const tokenTypeIds: number[] = [];
    for (const piece of isPair ? this.layout.pair : this.layout.single) {
      let ids = second;
      if (piece.kind === 'special') ids = piece.ids;
      else if (piece.kind === 'A') ids = first;
      for (const id of ids) {
        inputIds.push(id);
        tokenTypeIds.push(piece.typeId);
      }
    }
    const attentionMask = inputIds.map(() => 1);

    if (options.padToMaxLength) {
      if (this.padId === null) throw new Error('Cannot pad: the tokenizer defines no pad token');
      while (inputIds.length < maxLength) {
        inputIds.push(this.padId);
        attentionMask.push(0);
        tokenTypeIds.push(0);
      }
    }
    return { inputIds, attentionMask, tokenTypeIds, truncated };
  }

  /**
   * Encodes a batch of texts or pairs into row-major arrays. Rows are padded to
   * the longest row, or to `maxLength` when `padToMaxLength` is set.
   */
  encodeBatch(items: readonly (readonly [string, string | null] | string)[], options: TokenizeOptions = {}): EncodedBatch {
    const encoded = items.map((item) => (typeof item === 'string' ? this.encode(item, null, options) : this.encode(item[0], item[1], options)));
    const sequenceLength = encoded.reduce((longest, row) => Math.max(longest, row.inputIds.length), 0);
    if (sequenceLength > 0 && encoded.some((row) => row.inputIds.length < sequenceLength) && this.padId === null) {
      throw new Error('Cannot pad the batch: the tokenizer defines no pad token');
    }
    const size = items.length * sequenceLength;
    const inputIds = new Int32Array(size).fill(this.padId ?? 0);
    const attentionMask = new Int32Array(size);
    const tokenTypeIds = new Int32Array(size);
    encoded.forEach((row, index) => {
      inputIds.set(row.inputIds, index * sequenceLength);
      attentionMask.set(row.attentionMask, index * sequenceLength);
      tokenTypeIds.set(row.tokenTypeIds, index * sequenceLength);
    });
    return {
      inputIds,
      attentionMask,
      tokenTypeIds,
      batchSize: items.length,
      sequenceLength,
      truncatedCount: encoded.filter((row) => row.truncated).length,
    };
  }

  decode(ids: readonly number[], skipSpecialTokens = true): string {
    return this.tokenizer.decode([...ids], { skip_special_tokens: skipSpecialTokens });
  }
}
