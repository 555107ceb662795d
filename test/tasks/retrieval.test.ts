import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import {
  RETRIEVAL_TIE_RULE,
  RetrievalIndex,
  averagePrecisionFromRanks,
  benchmarkRetrieval,
  toRetrievalBundle,
} from '../../src/tasks/retrieval';
import { validateRetrievalBundle } from '../../src/viz/mime';

// Produced by reference/eval_retrieval.py with numpy and scikit-learn.
const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/tasks/retrieval.json'), 'utf8'));

const root = Math.sqrt(1 - 0.81);
// Against the query [1, 0, 0]: a and b score 0.9 with different vectors, c scores 0.5 and d 0.1.
const tiedGallery = [
  [0.9, root, 0],
  [0.9, 0, root],
  [0.5, Math.sqrt(0.75), 0],
  [0.1, 0, Math.sqrt(0.99)],
];

describe('tasks/retrieval', () => {
  describe('tie rule', () => {
    it('orders equal scores by insertion index', () => {
      const index = RetrievalIndex.fromEmbeddings(['a', 'b', 'c', 'd'], tiedGallery, 'xray');
      const [ranked] = index.search([[1, 0, 0]], 4);
      assert.deepEqual(ranked.map((item) => item.id), ['a', 'b', 'c', 'd']);
      assert.equal(ranked[0].score, ranked[1].score, 'a and b must tie exactly');
      assert.ok(Math.abs(ranked[0].score - 0.9) < 1e-6, `score ${ranked[0].score}, expected 0.9`);
      assert.ok(ranked[2].score < ranked[1].score, 'c scores below b');
      assert.ok(ranked[3].score < ranked[2].score, 'd scores below c');
    });

    it('gives the same order on every run', () => {
      const index = RetrievalIndex.fromEmbeddings(['a', 'b', 'c', 'd'], tiedGallery, 'xray');
      const first = JSON.stringify(index.search([[1, 0, 0]], 4));
      for (let run = 0; run < 5; run++) assert.equal(JSON.stringify(index.search([[1, 0, 0]], 4)), first);
    });

    it('gives the same order on the JavaScript CPU backend', async () => {
      const index = RetrievalIndex.fromEmbeddings(['a', 'b', 'c', 'd'], tiedGallery, 'xray');
      const [native] = index.search([[1, 0, 0]], 4);
      const previous = tf.getBackend();
      await tf.setBackend('cpu');
      try {
        const [cpu] = index.search([[1, 0, 0]], 4);
        assert.deepEqual(cpu.map((item) => item.id), native.map((item) => item.id));
        assert.equal(cpu[0].score, cpu[1].score, 'a and b tie on the cpu backend too');
      } finally {
        await tf.setBackend(previous);
      }
    });

    it('follows insertion order when the tied items swap', () => {
      const swapped = [tiedGallery[1], tiedGallery[0], tiedGallery[2], tiedGallery[3]];
      const index = RetrievalIndex.fromEmbeddings(['b', 'a', 'c', 'd'], swapped, 'xray');
      const [ranked] = index.search([[1, 0, 0]], 4);
      assert.deepEqual(ranked.map((item) => item.id), ['b', 'a', 'c', 'd']);
    });

    it('ranks a tied match second when inserted second', () => {
      const index = RetrievalIndex.fromEmbeddings(['a', 'b', 'c', 'd'], tiedGallery, 'xray');
      const report = index.evaluate([[1, 0, 0]], ['b']);
      assert.deepEqual(report.firstRelevantRank, [2]);
      assert.equal(report.recallAtK[1], 0);
      assert.equal(report.recallAtK[5], 1);
      assert.equal(report.meanAveragePrecision, 0.5);
    });

    it('ranks a tied match first when inserted first', () => {
      const index = RetrievalIndex.fromEmbeddings(['a', 'b', 'c', 'd'], tiedGallery, 'xray');
      const report = index.evaluate([[1, 0, 0]], ['a']);
      assert.deepEqual(report.firstRelevantRank, [1]);
      assert.equal(report.recallAtK[1], 1);
    });
  });

  describe('repeated ids', () => {
    const ids = ['x', 'y', 'x', 'z'];
    const gallery = [[0.2, 1, 0], [0.5, 1, 0], [1, 0.1, 0], [0, 0, 1]];

    it('lists an id once at its best score', () => {
      const index = RetrievalIndex.fromEmbeddings(ids, gallery, 'report');
      const [ranked] = index.search([[1, 0, 0]], 10);
      assert.deepEqual(ranked.map((item) => item.id), ['x', 'y', 'z']);
      assert.equal(ranked[0].galleryIndex, 2);
      assert.deepEqual(ranked.map((item) => item.rank), [1, 2, 3]);
    });

    it('keeps recall at most 1', () => {
      const index = RetrievalIndex.fromEmbeddings(ids, gallery, 'report');
      const report = index.evaluate([[1, 0, 0], [0, 1, 0]], [['x'], ['x', 'x']]);
      for (const k of [1, 5, 10]) assert.ok(report.recallAtK[k] <= 1, `Recall@${k} = ${report.recallAtK[k]}`);
      assert.equal(report.galleryIds, 3);
    });
  });

  describe('against the numpy reference', () => {
    const data = fixture.single;

    it('computes float32 cosine scores', () => {
      const index = RetrievalIndex.fromEmbeddings(data.galleryIds, data.gallery, 'xray');
      const { values, rows } = index.scores(data.queries);
      assert.equal(rows, data.queries.length);
      data.scores.forEach((row: number[], q: number) => row.forEach((expected, i) => {
        const actual = values[q * index.size + i];
        assert.ok(Math.abs(actual - expected) < 1e-6, `score[${q}][${i}] = ${actual}, expected ${expected}`);
      }));
    });

    it('returns the same top-10 lists', () => {
      const index = RetrievalIndex.fromEmbeddings(data.galleryIds, data.gallery, 'xray');
      const ranked = index.search(data.queries, 10);
      ranked.forEach((list, q) => {
        assert.deepEqual(list.map((item) => item.id), data.top10[q].map((entry: unknown[]) => entry[0]), `query ${q}`);
        assert.deepEqual(list.map((item) => item.galleryIndex), data.top10[q].map((entry: unknown[]) => entry[3]));
      });
    });

    it('matches Recall@K and mean average precision', () => {
      const index = RetrievalIndex.fromEmbeddings(data.galleryIds, data.gallery, 'xray');
      const report = index.evaluate(data.queries, data.relevant);
      for (const k of [1, 5, 10]) assert.equal(report.recallAtK[k], data.recallAtK[String(k)], `Recall@${k}`);
      assert.ok(Math.abs(report.meanAveragePrecision - data.meanAveragePrecision) < 1e-12);
      assert.deepEqual(report.firstRelevantRank, data.firstRelevantRank);
    });

    it('ranks X-rays and ECGs together for text queries', () => {
      const merged = fixture.merged;
      const xray = RetrievalIndex.fromEmbeddings(merged.studyIds, merged.xrays, 'xray');
      const ecg = RetrievalIndex.fromEmbeddings(merged.studyIds, merged.ecgs, 'ecg');
      const index = RetrievalIndex.merge([xray, ecg]);
      const ranked = index.search(merged.reports, 10);
      ranked.forEach((list, q) => {
        const expected = merged.top10[q].map((entry: unknown[]) => `${entry[1]}:${entry[0]}`);
        assert.deepEqual(list.map((item) => `${item.modality}:${item.id}`), expected, `query ${q}`);
      });
      const report = index.evaluate(merged.reports, merged.studyIds);
      for (const k of [1, 5, 10]) assert.equal(report.recallAtK[k], merged.recallAtK[String(k)], `Recall@${k}`);
      assert.ok(Math.abs(report.meanAveragePrecision - merged.meanAveragePrecision) < 1e-12);
    });
  });

  describe('query blocks', () => {
    it('scores more queries than one block holds', () => {
      const gallery = Array.from({ length: 300 }, (_, i) => Array.from({ length: 8 }, (_, j) => Math.sin(i * 7.3 + j * 1.9)));
      const ids = gallery.map((_, i) => `g${i}`);
      const index = RetrievalIndex.fromEmbeddings(ids, gallery, 'ecg');
      const report = index.evaluate(gallery, ids);
      assert.equal(report.recallAtK[1], 1);
      const ranked = index.search(gallery, 1);
      assert.equal(ranked.length, 300);
      assert.equal(ranked[299][0].id, 'g299');
      const { values } = index.scores(gallery);
      assert.ok(Math.abs(values[299 * 300 + 299] - 1) < 1e-6, 'self-similarity of the last query');
    });
  });

  describe('benchmark', () => {
    it('runs all five directions', () => {
      const merged = fixture.merged;
      const result = benchmarkRetrieval({
        ids: merged.studyIds, report: merged.reports, xray: merged.xrays, ecg: merged.ecgs,
      });
      assert.deepEqual(Object.keys(result).sort(),
        ['ecgToReport', 'textToEcg', 'textToXray', 'textToXrayAndEcg', 'xrayToReport']);
      assert.equal(result.textToXrayAndEcg?.recallAtK[1], merged.recallAtK['1']);
    });

    it('leaves no tensors behind', () => {
      const before = tf.memory().numTensors;
      const merged = fixture.merged;
      const embeddings = tf.tensor2d(merged.reports);
      benchmarkRetrieval({ ids: merged.studyIds, report: embeddings, xray: merged.xrays, ecg: merged.ecgs });
      embeddings.dispose();
      assert.equal(tf.memory().numTensors, before);
    });
  });

  describe('saved index', () => {
    let folder: string;
    before(() => {
      folder = fs.mkdtempSync(path.join(os.tmpdir(), 'more-retrieval-'));
    });
    after(() => fs.rmSync(folder, { recursive: true, force: true }));

    it('loads back the same rankings', () => {
      const data = fixture.single;
      const index = RetrievalIndex.fromEmbeddings(data.galleryIds, data.gallery, 'xray');
      index.save(path.join(folder, 'gallery'));
      const loaded = RetrievalIndex.load(path.join(folder, 'gallery'));
      assert.deepEqual(loaded.ids, index.ids);
      assert.deepEqual(loaded.search(data.queries, 10), index.search(data.queries, 10));
    });

    it('rejects an unknown modality', () => {
      RetrievalIndex.fromEmbeddings(['a'], [[1, 0]], 'xray').save(path.join(folder, 'odd'));
      const jsonFile = path.join(folder, 'odd.json');
      const metadata = JSON.parse(fs.readFileSync(jsonFile, 'utf8'));
      metadata.modalities = ['photo'];
      fs.writeFileSync(jsonFile, JSON.stringify(metadata));
      assert.throws(() => RetrievalIndex.load(path.join(folder, 'odd')), /modalities\[0\] is "photo"; expected one of xray, ecg, report/);
    });

    it('rejects vectors from another save', () => {
      const first = RetrievalIndex.fromEmbeddings(['a', 'b'], [[1, 0], [0, 1]], 'ecg');
      const second = RetrievalIndex.fromEmbeddings(['a', 'b'], [[1, 1], [0, 1]], 'ecg');
      first.save(path.join(folder, 'one'));
      second.save(path.join(folder, 'two'));
      fs.copyFileSync(path.join(folder, 'two.safetensors'), path.join(folder, 'one.safetensors'));
      assert.throws(() => RetrievalIndex.load(path.join(folder, 'one')), /SHA-256 .* differs/);
    });
  });

  describe('bundle and validation', () => {
    it('builds a valid retrieval bundle', () => {
      const index = RetrievalIndex.fromEmbeddings(['a', 'b', 'c', 'd'], tiedGallery, 'report');
      const [ranked] = index.search([[1, 0, 0]], 3);
      const bundle = toRetrievalBundle({ modality: 'report', text: 'pleural effusion' }, ranked,
        (item) => ({ reportExcerpt: `report ${item.id}` }));
      assert.doesNotThrow(() => validateRetrievalBundle(bundle));
      assert.equal(bundle.tieRule, RETRIEVAL_TIE_RULE);
    });

    it('rejects a relevant id missing from the gallery', () => {
      const index = RetrievalIndex.fromEmbeddings(['a', 'b'], [[1, 0], [0, 1]], 'xray');
      assert.throws(() => index.evaluate([[1, 0]], ['zzz']), /relevant id "zzz" of query 0 is not in the gallery/);
    });

    it('rejects queries of another dimension', () => {
      const index = RetrievalIndex.fromEmbeddings(['a', 'b'], [[1, 0], [0, 1]], 'xray');
      assert.throws(() => index.search([[1, 0, 0]]), /queries have dimension 3 but the gallery has 2/);
    });

    it('computes average precision from ranks', () => {
      assert.equal(averagePrecisionFromRanks([1, 3]), (1 + 2 / 3) / 2);
    });
  });
});
