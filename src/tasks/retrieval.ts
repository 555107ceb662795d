/**
 * Cross-modal retrieval over MoRE embeddings: a text query against X-rays,
 * ECGs or both at once, and an X-ray or ECG query against reports. Scoring is
 * exact cosine similarity (L2-normalised embeddings multiplied with
 * `tf.matMul`); ranking, Recall@K and mean average precision run on the host.
 *
 * Tie rule: scores are the float32 values the backend returns, and items with
 * equal float32 scores are ordered by their insertion index in the gallery,
 * earlier first. A merged gallery inserts its parts in the order given. Each
 * id appears once in a ranking: a gallery that lists an id several times ranks
 * that id by its best entry (highest score, then earliest index).
 */
import * as crypto from 'crypto';
import * as fs from 'fs';

import * as tf from '@tensorflow/tfjs';

import { readSafetensors, writeSafetensors } from '../model/safetensors';
import { writeFileAtomic } from '../util/atomic';
import { getLogger } from '../util/log';
import type { Modality, RetrievalBundle, RetrievalQuery, RetrievalResult } from '../viz/mime';
import { BUNDLE_VERSION, MODALITIES } from '../viz/mime';

const log = getLogger('tasks.retrieval');

/** The tie rule in words, for result displays and saved indexes. */
export const RETRIEVAL_TIE_RULE =
  'equal float32 cosine scores are ordered by gallery insertion index, earlier first; each id appears once, at its best entry';

/** Embeddings as a [N, D] tensor or as N rows of D numbers. */
export type EmbeddingMatrix = tf.Tensor2D | ArrayLike<number>[];

/** One gallery entry in a ranking. */
export interface RankedItem {
  /** 1-based position. */
  rank: number;
  id: string;
  modality: Modality;
  /** Cosine similarity as float32. */
  score: number;
  /** Insertion index of the entry that ranked this id (its best one). */
  galleryIndex: number;
}

/** Retrieval figures over a set of queries. */
export interface RetrievalReport {
  /** Fraction of queries with at least one relevant id among the first K results, keyed by K. */
  recallAtK: Record<number, number>;
  /** Mean over queries of the average precision of the whole ranking. */
  meanAveragePrecision: number;
  queries: number;
  galleryIds: number;
  /** Rank (1-based, over distinct ids) of each query's best-ranked relevant id. */
  firstRelevantRank: number[];
}

/** A searchable set of L2-normalised embeddings with an id and a modality per row. */
export class RetrievalIndex {
  readonly ids: string[];
  readonly modalities: Modality[];
  /** Row-major [size, dim] normalised embeddings. */
  readonly vectors: Float32Array;
  readonly dim: number;

  private constructor(ids: string[], modalities: Modality[], vectors: Float32Array, dim: number) {
    this.ids = ids;
    this.modalities = modalities;
    this.vectors = vectors;
    this.dim = dim;
  }

  get size(): number {
    return this.ids.length;
  }

  /** Builds an index of one modality; rows of `embeddings` are normalised to unit length. */
  static fromEmbeddings(ids: string[], embeddings: EmbeddingMatrix, modality: Modality): RetrievalIndex {
    const { values, rows, dim } = normalisedRows(embeddings, 'gallery');
    if (ids.length !== rows) {
      throw new Error(`RetrievalIndex: ${ids.length} ids for ${rows} embeddings; expected one id per row`);
    }
    ids.forEach((id, i) => {
      if (typeof id !== 'string' || id === '') throw new Error(`RetrievalIndex: ids[${i}] is ${JSON.stringify(id)}; expected a non-empty string`);
    });
    return new RetrievalIndex([...ids], ids.map(() => modality), values, dim);
  }

  /**
   * Joins indexes into one gallery, so one query ranks all their items together
   * (a text query against X-rays and ECGs). Parts keep their order, which
   * decides the tie rule's insertion index.
   */
  static merge(parts: RetrievalIndex[]): RetrievalIndex {
    if (parts.length === 0) throw new Error('RetrievalIndex.merge: no parts; expected at least one index');
    const dim = parts[0].dim;
    parts.forEach((part, i) => {
      if (part.dim !== dim) throw new Error(`RetrievalIndex.merge: part ${i} has dimension ${part.dim}; expected ${dim} like part 0`);
    });
    const total = parts.reduce((sum, part) => sum + part.size, 0);
    const vectors = new Float32Array(total * dim);
    let offset = 0;
    for (const part of parts) {
      vectors.set(part.vectors, offset * dim);
      offset += part.size;
    }
    return new RetrievalIndex(parts.flatMap((p) => p.ids), parts.flatMap((p) => p.modalities), vectors, dim);
  }

  /** Returns the [queries, size] cosine scores as float32, row-major. */
  scores(queries: EmbeddingMatrix): { values: Float32Array; rows: number } {
    const query = this.normalisedQueries(queries);
    const values = new Float32Array(query.rows * this.size);
    this.forEachScoreRow(query, (q, row) => values.set(row, q * this.size));
    return { values, rows: query.rows };
  }

  /** Returns the first `k` distinct ids for each query, ordered by score and then by the tie rule. */
  search(queries: EmbeddingMatrix, k = 10): RankedItem[][] {
    checkK(k);
    const results: RankedItem[][] = [];
    this.forEachScoreRow(this.normalisedQueries(queries), (_, row) => results.push(this.topK(row, k)));
    return results;
  }

  private normalisedQueries(queries: EmbeddingMatrix): { values: Float32Array; rows: number; dim: number } {
    const query = normalisedRows(queries, 'queries');
    if (query.dim !== this.dim) {
      throw new Error(`RetrievalIndex: queries have dimension ${query.dim} but the gallery has ${this.dim}; ` +
        'embed queries and gallery into the same space');
    }
    return query;
  }

  /**
   * Scores normalised queries in blocks, so the score matrix on the backend
   * stays at most QUERY_BLOCK x size, and hands each query's row to `visit`.
   */
  private forEachScoreRow(query: { values: Float32Array; rows: number }, visit: (q: number, row: Float32Array) => void): void {
    const gallery = tf.tensor2d(this.vectors, [this.size, this.dim]);
    try {
      for (let first = 0; first < query.rows; first += QUERY_BLOCK) {
        const count = Math.min(QUERY_BLOCK, query.rows - first);
        const block = tf.tensor2d(query.values.subarray(first * this.dim, (first + count) * this.dim), [count, this.dim]);
        const product = tf.matMul(block, gallery, false, true);
        const values = product.dataSync() as Float32Array;
        tf.dispose([block, product]);
        for (let q = 0; q < count; q++) visit(first + q, values.subarray(q * this.size, (q + 1) * this.size));
      }
    } finally {
      gallery.dispose();
    }
  }

  /**
   * Scores queries against the gallery and returns Recall@K and mean average
   * precision. `relevant[q]` is the id (or ids) that count as a match for query q;
   * every one must be in the gallery.
   */
  evaluate(queries: EmbeddingMatrix, relevant: (string | string[])[], ks: number[] = [1, 5, 10]): RetrievalReport {
    ks.forEach(checkK);
    const query = this.normalisedQueries(queries);
    const rows = query.rows;
    if (relevant.length !== rows) {
      throw new Error(`RetrievalIndex.evaluate: ${relevant.length} relevance entries for ${rows} queries; expected one per query`);
    }
    const hits: Record<number, number> = {};
    for (const k of ks) hits[k] = 0;
    const firstRelevantRank: number[] = [];
    let apSum = 0;
    this.forEachScoreRow(query, (q, row) => {
      const relevantIds = Array.isArray(relevant[q]) ? (relevant[q] as string[]) : [relevant[q] as string];
      const ranks = this.ranksOf(row, relevantIds, q);
      const first = ranks[0];
      firstRelevantRank.push(first);
      for (const k of ks) if (first <= k) hits[k]++;
      apSum += averagePrecisionFromRanks(ranks);
    });
    const recallAtK: Record<number, number> = {};
    for (const k of ks) recallAtK[k] = hits[k] / rows;
    const distinct = this.grouping().groups.length;
    return { recallAtK, meanAveragePrecision: apSum / rows, queries: rows, galleryIds: distinct, firstRelevantRank };
  }

  /** Gallery indexes grouped by distinct key (modality and id), in first-appearance order; built on first use. */
  private groupCache?: { groups: number[][]; byId: Map<string, number[]>; repeated: boolean; identity: Int32Array };

  private grouping(): { groups: number[][]; byId: Map<string, number[]>; repeated: boolean; identity: Int32Array } {
    if (this.groupCache === undefined) {
      const groupOfKey = new Map<string, number>();
      const groups: number[][] = [];
      const byId = new Map<string, number[]>();
      for (let i = 0; i < this.size; i++) {
        // Ids of different modalities never collide in a merged gallery.
        const key = `${this.modalities[i]}\u0000${this.ids[i]}`;
        let group = groupOfKey.get(key);
        if (group === undefined) {
          group = groups.length;
          groupOfKey.set(key, group);
          groups.push([]);
          byId.set(this.ids[i], [...(byId.get(this.ids[i]) ?? []), group]);
        }
        groups[group].push(i);
      }
      const identity = Int32Array.from({ length: this.size }, (_, i) => i);
      this.groupCache = { groups, byId, repeated: groups.length < this.size, identity };
    }
    return this.groupCache;
  }

  /** Best entry of each distinct key: its highest score, the earliest index among equal scores. */
  private bestEntries(scores: Float32Array): Int32Array {
    const { groups, repeated, identity } = this.grouping();
    // Without repeated ids every entry is its own best one, so the shared identity array serves.
    if (!repeated) return identity;
    const best = new Int32Array(groups.length);
    groups.forEach((members, g) => {
      let chosen = members[0];
      for (const i of members) if (scores[i] > scores[chosen]) chosen = i;
      best[g] = chosen;
    });
    return best;
  }

  /** Selects the first k distinct entries by the tie rule in one pass over the gallery. */
  private topK(scores: Float32Array, k: number): RankedItem[] {
    const top: number[] = [];
    for (const entry of this.bestEntries(scores)) {
      if (top.length === k && compareEntries(scores, entry, top[k - 1]) > 0) continue;
      let position = top.length;
      while (position > 0 && compareEntries(scores, entry, top[position - 1]) < 0) position--;
      top.splice(position, 0, entry);
      if (top.length > k) top.pop();
    }
    return top.map((i, position) => ({
      rank: position + 1,
      id: this.ids[i],
      modality: this.modalities[i],
      score: scores[i],
      galleryIndex: i,
    }));
  }

  /** Sorted 1-based ranks, over distinct ids, of the relevant ids. */
  private ranksOf(scores: Float32Array, relevantIds: string[], query: number): number[] {
    const { byId } = this.grouping();
    const best = this.bestEntries(scores);
    const relevantGroups = new Set<number>();
    for (const id of relevantIds) {
      // A merged gallery can hold the same id once per modality, and each of those entries is relevant.
      const groups = byId.get(id);
      if (groups === undefined) {
        throw new Error(`RetrievalIndex.evaluate: relevant id ${JSON.stringify(id)} of query ${query} is not in the gallery`);
      }
      for (const group of groups) relevantGroups.add(group);
    }
    const ranks: number[] = [];
    for (const group of relevantGroups) {
      const target = best[group];
      const targetScore = scores[target];
      let before = 0;
      // Entries ahead of the target under the tie rule: a higher score, or an equal score at a lower index.
      for (let k = 0; k < best.length; k++) {
        const score = scores[best[k]];
        if (score > targetScore || (score === targetScore && best[k] < target)) before++;
      }
      ranks.push(before + 1);
    }
    return ranks.sort((a, b) => a - b);
  }

  /**
   * Saves the index as `<base>.safetensors` (the normalised float32 vectors)
   * and `<base>.json` (ids, modalities and a SHA-256 of the vectors file), each
   * written atomically. The vectors go first, so the JSON never names a file
   * that is not complete; a mismatch between the two is caught on load.
   */
  save(base: string): void {
    const tensorFile = `${base}.safetensors`;
    writeSafetensors(tensorFile, { embeddings: { dtype: 'F32', shape: [this.size, this.dim], data: this.vectors } },
      { format: INDEX_FORMAT, rows: String(this.size), dim: String(this.dim) });
    const sha256 = crypto.createHash('sha256').update(fs.readFileSync(tensorFile)).digest('hex');
    const metadata: IndexMetadata = {
      format: INDEX_FORMAT,
      version: 1,
      rows: this.size,
      dim: this.dim,
      normalised: true,
      tieRule: RETRIEVAL_TIE_RULE,
      tensorFile: `${pathBase(base)}.safetensors`,
      sha256,
      ids: this.ids,
      modalities: this.modalities,
    };
    writeFileAtomic(`${base}.json`, `${JSON.stringify(metadata)}\n`);
    log.info(`saved retrieval index of ${this.size} entries (dim ${this.dim}) to ${base}.json`);
  }

  /** Loads an index saved by {@link RetrievalIndex.save}; `base` is the path without extension. */
  static load(base: string): RetrievalIndex {
    const jsonFile = `${base}.json`;
    const tensorFile = `${base}.safetensors`;
    const metadata = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as IndexMetadata;
    if (metadata.format !== INDEX_FORMAT || metadata.version !== 1) {
      throw new Error(`${jsonFile}: format ${JSON.stringify(metadata.format)} version ${metadata.version}; ` +
        `expected ${INDEX_FORMAT} version 1`);
    }
    const sha256 = crypto.createHash('sha256').update(fs.readFileSync(tensorFile)).digest('hex');
    if (sha256 !== metadata.sha256) {
      throw new Error(`${tensorFile}: SHA-256 ${sha256} differs from ${metadata.sha256} recorded in ${jsonFile}; ` +
        'the two files come from different saves, so save the index again');
    }
    const tensor = readSafetensors(tensorFile).tensors.get('embeddings');
    if (tensor === undefined) throw new Error(`${tensorFile}: tensor "embeddings" is missing`);
    const [rows, dim] = tensor.shape;
    if (tensor.shape.length !== 2 || rows !== metadata.rows || dim !== metadata.dim) {
      throw new Error(`${tensorFile}: embeddings have shape [${tensor.shape.join(', ')}]; ` +
        `expected [${metadata.rows}, ${metadata.dim}] as ${jsonFile} records`);
    }
    if (metadata.ids.length !== rows || metadata.modalities.length !== rows) {
      throw new Error(`${jsonFile}: ${metadata.ids.length} ids and ${metadata.modalities.length} modalities; expected ${rows} of each`);
    }
    const invalid = metadata.modalities.findIndex((modality) => !MODALITIES.includes(modality));
    if (invalid >= 0) {
      throw new Error(`${jsonFile}: modalities[${invalid}] is ${JSON.stringify(metadata.modalities[invalid])}; ` +
        `expected one of ${MODALITIES.join(', ')}`);
    }
    return new RetrievalIndex(metadata.ids, metadata.modalities, tensor.data, dim);
  }
}

const INDEX_FORMAT = 'more-ts.retrieval-index';

/** Queries scored per matrix product, which bounds the score block to QUERY_BLOCK x gallery size floats. */
const QUERY_BLOCK = 256;

interface IndexMetadata {
  format: string;
  version: number;
  rows: number;
  dim: number;
  normalised: boolean;
  tieRule: string;
  tensorFile: string;
  sha256: string;
  ids: string[];
  modalities: Modality[];
}

function pathBase(base: string): string {
  const parts = base.split(/[\\/]/);
  return parts[parts.length - 1];
}

/** Orders entries by descending score, then ascending insertion index (the tie rule). */
function compareEntries(scores: Float32Array, a: number, b: number): number {
  if (scores[a] !== scores[b]) return scores[b] > scores[a] ? 1 : -1;
  return a - b;
}

function checkK(k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new Error(`Invalid K ${k}: expected a positive integer`);
}

/** Average precision of one ranking from the sorted ranks of its relevant items. */
export function averagePrecisionFromRanks(sortedRanks: number[]): number {
  if (sortedRanks.length === 0) throw new Error('averagePrecisionFromRanks: no relevant items; expected at least one rank');
  let sum = 0;
  sortedRanks.forEach((rank, i) => {
    sum += (i + 1) / rank;
  });
  return sum / sortedRanks.length;
}

/** L2-normalises the rows of `embeddings` with tf and returns them on the host. */
function normalisedRows(embeddings: EmbeddingMatrix, what: string): { values: Float32Array; rows: number; dim: number } {
  let input: tf.Tensor2D;
  if (embeddings instanceof tf.Tensor) {
    if (embeddings.rank !== 2) throw new Error(`${what}: embeddings have shape [${embeddings.shape.join(', ')}]; expected [N, D]`);
    input = embeddings;
  } else {
    if (embeddings.length === 0) throw new Error(`${what}: no embeddings; expected at least one row`);
    const dim = embeddings[0].length;
    embeddings.forEach((row, i) => {
      if (row.length !== dim) throw new Error(`${what}: row ${i} has ${row.length} values; expected ${dim} like row 0`);
    });
    input = tf.tensor2d(embeddings.map((row) => Array.from(row)), [embeddings.length, dim]);
  }
  const [rows, dim] = input.shape;
  const normalised = tf.tidy(() => {
    const norm = tf.maximum(tf.norm(input, 'euclidean', 1, true), 1e-12);
    return tf.div(input, norm);
  });
  const values = normalised.dataSync() as Float32Array;
  const finite = values.every((v) => Number.isFinite(v));
  normalised.dispose();
  if (input !== embeddings) input.dispose();
  if (!finite) throw new Error(`${what}: embeddings contain NaN or infinite values`);
  return { values, rows, dim };
}

/** Paired embeddings of one set of studies: row i of each matrix belongs to `ids[i]`. */
export interface PairedEmbeddings {
  ids: string[];
  report: EmbeddingMatrix;
  xray?: EmbeddingMatrix;
  ecg?: EmbeddingMatrix;
}

/** Retrieval figures for each direction the paired embeddings allow. */
export interface RetrievalBenchmark {
  textToXray?: RetrievalReport;
  textToEcg?: RetrievalReport;
  xrayToReport?: RetrievalReport;
  ecgToReport?: RetrievalReport;
  /** A text query against X-rays and ECGs in one ranking; the X-ray and the ECG of the study both count as matches. */
  textToXrayAndEcg?: RetrievalReport;
}

/** Runs every retrieval direction over paired embeddings, where study i's own items are the only matches. */
export function benchmarkRetrieval(pairs: PairedEmbeddings, ks: number[] = [1, 5, 10]): RetrievalBenchmark {
  const reports = RetrievalIndex.fromEmbeddings(pairs.ids, pairs.report, 'report');
  const result: RetrievalBenchmark = {};
  const xray = pairs.xray === undefined ? undefined : RetrievalIndex.fromEmbeddings(pairs.ids, pairs.xray, 'xray');
  const ecg = pairs.ecg === undefined ? undefined : RetrievalIndex.fromEmbeddings(pairs.ids, pairs.ecg, 'ecg');
  if (xray !== undefined && pairs.xray !== undefined) {
    result.textToXray = xray.evaluate(pairs.report, pairs.ids, ks);
    result.xrayToReport = reports.evaluate(pairs.xray, pairs.ids, ks);
  }
  if (ecg !== undefined && pairs.ecg !== undefined) {
    result.textToEcg = ecg.evaluate(pairs.report, pairs.ids, ks);
    result.ecgToReport = reports.evaluate(pairs.ecg, pairs.ids, ks);
  }
  if (xray !== undefined && ecg !== undefined) {
    result.textToXrayAndEcg = RetrievalIndex.merge([xray, ecg]).evaluate(pairs.report, pairs.ids, ks);
  }
  return result;
}

/**
 * Builds the MIME bundle the JupyterLab extension renders for one query.
 * `describe` adds each result's display fields (the X-ray thumbnail, the ECG
 * or the report excerpt that its modality requires).
 */
export function toRetrievalBundle(
  query: RetrievalQuery,
  ranked: RankedItem[],
  describe: (item: RankedItem) => Partial<RetrievalResult>,
  title?: string,
): RetrievalBundle {
  const results: RetrievalResult[] = ranked.map((item) => ({
    ...describe(item),
    id: item.id,
    rank: item.rank,
    score: item.score,
    modality: item.modality,
  }));
  const bundle: RetrievalBundle = { version: BUNDLE_VERSION, query, metric: 'cosine similarity', tieRule: RETRIEVAL_TIE_RULE, results };
  if (title !== undefined) bundle.title = title;
  return bundle;
}
