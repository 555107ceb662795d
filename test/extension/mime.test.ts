import { strict as assert } from 'assert';

import {
  BundleValidationError,
  EXPLANATION_MIME_TYPE,
  RETRIEVAL_MIME_TYPE,
  validateExplanationBundle,
  validateRetrievalBundle,
} from '../../src/viz/mime';
import { readFixture } from './lab';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function assertRejects(validate: (value: unknown) => unknown, bundle: unknown, field: string, detail: RegExp): void {
  assert.throws(
    () => validate(bundle),
    (error: unknown) => {
      assert.ok(error instanceof BundleValidationError, `expected a BundleValidationError, got ${String(error)}`);
      assert.equal(error.field, field);
      assert.match(error.message, detail);
      return true;
    },
  );
}

describe('viz/mime bundle contract', () => {
  const explanation = readFixture<Json>('explanation.json');
  const retrieval = readFixture<Json>('retrieval.json');

  it('MIME types are versioned vendor types', () => {
    assert.equal(EXPLANATION_MIME_TYPE, 'application/vnd.more-ts.explanation.v1+json');
    assert.equal(RETRIEVAL_MIME_TYPE, 'application/vnd.more-ts.retrieval.v1+json');
  });

  it('accepts the fixture bundles', () => {
    assert.equal(validateExplanationBundle(clone(explanation)).xray?.patchGrid.rows, 8);
    assert.equal(validateRetrievalBundle(clone(retrieval)).results.length, 6);
    validateExplanationBundle(readFixture('hostile-explanation.json'));
    validateRetrievalBundle(readFixture('hostile-retrieval.json'));
  });

  it('accepts a report-only explanation', () => {
    const bundle = { version: 1, report: { tokens: ['No', ' effusion'], relevance: [0.1, 0.9] } };
    assert.deepEqual(validateExplanationBundle(bundle).report?.tokens, ['No', ' effusion']);
  });

  const explanationCases: [string, (bundle: Json) => void, string, RegExp][] = [
    ['wrong version', (b) => (b.version = 2), 'version', /must be 1, got number 2/],
    ['no modality', (b) => { delete b.xray; delete b.ecg; delete b.report; }, '(root)', /at least one of xray, ecg and report/],
    ['text similarity', (b) => (b.similarity = 'high'), 'similarity', /finite number/],
    ['repeated class', (b) => (b.classNames = ['A', 'A']), 'classNames', /must not repeat/],
    ['short X-ray map', (b) => b.xray.relevance.pop(), 'xray.relevance', /must have 64 values, got 63/],
    ['unknown layout', (b) => (b.xray.relevanceLayout = 'grid'), 'xray.relevanceLayout', /"patch" or "pixel"/],
    ['non-PNG data', (b) => (b.xray.image.data = 'AAAA'), 'xray.image.data', /not a PNG/],
    ['data URL prefix', (b) => (b.xray.image.data = `data:image/png;base64,${b.xray.image.data}`), 'xray.image.data', /base64 text without a data: prefix/],
    ['raw pixel out of range', (b) => (b.xray.image = { encoding: 'raw', width: 2, height: 1, data: [0, 300] }), 'xray.image.data[1]', /integer in 0\.\.255, got 300/],
    ['unknown class key', (b) => (b.xray.relevanceByClass.Edema = b.xray.relevance), 'xray.relevanceByClass.Edema', /missing from classNames/],
    ['token index past the end', (b) => (b.xray.relevanceByToken[0].tokenIndex = 999), 'xray.relevanceByToken[0].tokenIndex', /integer in 0\.\./],
    ['null relevance', (b) => (b.xray.relevance[5] = null), 'xray.relevance[5]', /finite number, got null/],
    ['lead count mismatch', (b) => b.ecg.signals.pop(), 'ecg.signals', /one row per lead \(12\), got 11/],
    ['ragged signal', (b) => b.ecg.signals[3].pop(), 'ecg.signals[3]', /must have 1000 values, got 999/],
    ['ECG map rows', (b) => b.ecg.relevance.pop(), 'ecg.relevance', /1 row \(shared\) or 12 rows/],
    ['zero sample rate', (b) => (b.ecg.sampleRateHz = 0), 'ecg.sampleRateHz', /must be positive, got 0/],
    ['token relevance length', (b) => b.report.relevance.push(1), 'report.relevance', /must have \d+ values/],
    ['token not a string', (b) => (b.report.tokens[2] = 7), 'report.tokens[2]', /must be a string, got number 7/],
    ['token map without report', (b) => delete b.report, 'xray.relevanceByToken', /needs a report part/],
  ];
  for (const [name, mutate, field, detail] of explanationCases) {
    it(`explanation rejects ${name}`, () => {
      const bundle = clone(explanation);
      mutate(bundle);
      assertRejects(validateExplanationBundle, bundle, field, detail);
    });
  }

  const retrievalCases: [string, (bundle: Json) => void, string, RegExp][] = [
    ['missing tie rule', (b) => delete b.tieRule, 'tieRule', /must be a string, got undefined/],
    ['unknown query modality', (b) => (b.query = { modality: 'audio' }), 'query.modality', /one of xray, ecg, report/],
    ['rank gap', (b) => (b.results[2].rank = 4), 'results[2].rank', /must be 3/],
    ['rising score', (b) => (b.results[3].score = 0.99), 'results[3].score', /must not exceed the score of rank 3/],
    ['missing thumbnail', (b) => delete b.results[3].xray, 'results[3].xray', /required for xray results/],
    ['missing excerpt', (b) => delete b.results[0].reportExcerpt, 'results[0].reportExcerpt', /required for report results/],
    ['repeated id', (b) => (b.results[1].id = b.results[0].id), 'results', /repeat the id "chexpert-labeler\/3"/],
    ['bad ECG thumbnail', (b) => b.results[5].ecg.leads.pop(), 'results[5].ecg.signals', /one row per lead \(11\), got 12/],
  ];
  for (const [name, mutate, field, detail] of retrievalCases) {
    it(`retrieval rejects ${name}`, () => {
      const bundle = clone(retrieval);
      mutate(bundle);
      assertRejects(validateRetrievalBundle, bundle, field, detail);
    });
  }
});
