import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';

import { compile } from 'vega-lite';

import {
  STANDARD_LEADS,
  VEGA_LITE_SCHEMA,
  type VegaLiteSpec,
  ecgPlotSpec,
  embeddingMapSpec,
  learningRateSpec,
  lossCurveSpec,
  rocCurveSpec,
  trainingCurvesSpec,
} from '../../src/viz/specs';

// Produced by reference/eval_viz.py with scikit-learn.
const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/tasks/viz.json'), 'utf8'));

type Json = Record<string, unknown>;

/** Collects every `encoding.*.field` with the data values in scope where it is used. */
function encodedFields(node: Json, inherited: Json[] | undefined, found: { field: string; data: Json[] | undefined }[]): void {
  const data = (node.data as { values?: Json[] } | undefined)?.values ?? inherited;
  const encoding = node.encoding as Record<string, { field?: string }> | undefined;
  for (const channel of Object.values(encoding ?? {})) {
    if (channel.field !== undefined) found.push({ field: channel.field, data });
  }
  const facet = node.facet as { field?: string } | undefined;
  if (facet?.field !== undefined) found.push({ field: facet.field, data });
  for (const key of ['layer', 'vconcat', 'hconcat']) {
    for (const child of (node[key] as Json[] | undefined) ?? []) encodedFields(child, data, found);
  }
  if (node.spec !== undefined) encodedFields(node.spec as Json, data, found);
}

/** Checks the schema URL, that Vega-Lite compiles the spec, and that every encoded field is in the data. */
function assertValidSpec(spec: VegaLiteSpec): void {
  assert.equal(spec.$schema, VEGA_LITE_SCHEMA);
  assert.match(spec.$schema, /vega-lite\/v5\.json$/);
  const warnings: string[] = [];
  const record = (...args: unknown[]) => {
    warnings.push(args.map(String).join(' '));
    return logger;
  };
  const logger = { level: () => 0, error: record, warn: record, info: () => logger, debug: () => logger };
  assert.doesNotThrow(() => compile(spec as never, { logger: logger as never }), 'Vega-Lite 5 compiles the spec');
  assert.deepEqual(warnings, [], 'Vega-Lite reports no warnings');
  const found: { field: string; data: Json[] | undefined }[] = [];
  encodedFields(spec as Json, undefined, found);
  assert.ok(found.length > 0, 'the spec encodes at least one field');
  for (const { field, data } of found) {
    assert.ok(data !== undefined, `field ${field} has data in scope`);
    assert.ok((data as Json[]).length > 0, `field ${field} has data values`);
    assert.ok(field in (data as Json[])[0], `field ${field} is in the data`);
  }
}

const history = [
  { step: 0, split: 'train', loss: 2.1, learningRate: 3e-5 },
  { step: 0, split: 'validation', loss: 2.3 },
  { step: 1, split: 'train', loss: 1.6, learningRate: 2.5e-5 },
  { step: 1, split: 'validation', loss: 1.9 },
  { step: 2, split: 'train', loss: 1.2, learningRate: 1.2e-5 },
];

describe('viz/specs', () => {
  it('loss curve spec is valid', () => {
    const spec = lossCurveSpec(history);
    assertValidSpec(spec);
    assert.equal((spec.data as { values: unknown[] }).values.length, 5);
  });

  it('learning-rate spec is valid', () => {
    const spec = learningRateSpec(history);
    assertValidSpec(spec);
    assert.equal((spec.data as { values: unknown[] }).values.length, 3);
  });

  it('training curves stack both plots', () => {
    const spec = trainingCurvesSpec(history);
    assertValidSpec(spec);
    assert.equal((spec.vconcat as unknown[]).length, 2);
  });

  it('ROC spec points equal scikit-learn roc_curve', () => {
    const { yTrue, yScore, labels, curves } = fixture.roc;
    const spec = rocCurveSpec(yTrue, yScore, { labels });
    assertValidSpec(spec);
    const values = ((spec.layer as Json[])[1].data as { values: { label: string; fpr: number; tpr: number }[] }).values;
    labels.forEach((label: string, j: number) => {
      const points = values.filter((v) => v.label.startsWith(`${label} (AUROC`));
      assert.deepEqual(points.map((p) => p.fpr), curves[j].fpr, `${label} fpr`);
      assert.deepEqual(points.map((p) => p.tpr), curves[j].tpr, `${label} tpr`);
    });
  });

  it('ROC spec lists undefined labels instead of drawing them', () => {
    const spec = rocCurveSpec([[1, 0], [0, 0], [1, 0]], [[0.9, 0.2], [0.1, 0.4], [0.6, 0.3]], { labels: ['A', 'B'] });
    assertValidSpec(spec);
    assert.match(String((spec.title as Json).subtitle), /B \(AUROC is undefined: no positive samples/);
  });

  it('embedding map names its method', () => {
    const labels = (fixture.blob as number[]).map((b) => `blob ${b}`);
    const tsneSpec = embeddingMapSpec(fixture.points, labels, { tsne: { perplexity: 10, iterations: 300 } });
    const pcaSpec = embeddingMapSpec(fixture.points, labels, { method: 'pca' });
    assertValidSpec(tsneSpec);
    assertValidSpec(pcaSpec);
    assert.match(String(tsneSpec.title), /t-SNE/);
    assert.match(String(pcaSpec.title), /PCA/);
    const first = (pcaSpec.data as { values: { x: number; y: number }[] }).values[0];
    assert.ok(Math.abs(first.x - fixture.pca[0][0]) < 1e-8, 'PCA map uses scikit-learn coordinates');
  });

  it('12-lead ECG spec has a panel per lead', () => {
    const signals = STANDARD_LEADS.map((_, lead) => Array.from({ length: 200 }, (_, s) => Math.sin((s + lead) / 10)));
    const relevance = Array.from({ length: 200 }, (_, s) => s / 200);
    const spec = ecgPlotSpec(signals, [...STANDARD_LEADS], 100, { relevance });
    assertValidSpec(spec);
    const values = (spec.data as { values: Json[] }).values;
    assert.equal(values.length, 12 * 200);
    assert.deepEqual((spec.facet as { sort: string[] }).sort, [...STANDARD_LEADS]);
    assert.equal(values[199].time, 1.99);
  });

  it('ECG spec rejects ragged leads', () => {
    assert.throws(() => ecgPlotSpec([[0, 1], [0]], ['I', 'II'], 100), /lead II has 1 samples; expected 2/);
  });
});
