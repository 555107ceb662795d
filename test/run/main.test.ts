import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import { loadMainJobCheckpoint } from '../../src/run/checkpoint';
import { buildSampleCorpus } from '../../src/run/corpus';
import { prepareSamples } from '../../src/run/data';
import { embedSamples, retrievalFigures } from '../../src/run/evaluate';
import { runMainJob, type MainJobSummary } from '../../src/run/main';
import { executeReportNotebook } from '../../src/run/report';
import { formatSummaryTable } from '../../src/run/table';
import { silentProgress } from '../../src/util/progress';
import { makeTinyTextModel, TEST_MODEL } from './helpers';

describe('run/main', function () {
  this.timeout(600000);
  let outDir: string;
  let textModel: string;
  let summary: MainJobSummary;
  let tensorsBefore: number;

  before(async () => {
    textModel = makeTinyTextModel();
    outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'more-ts-main-'));
    tensorsBefore = tf.memory().numTensors;
    summary = await runMainJob({
      outDir, textModel, model: TEST_MODEL, epochs: 2, batchSize: 8, limit: 12, probeEpochs: 2,
      maxTextLength: 32, progress: silentProgress,
    });
  });

  it('trains every epoch with finite losses', () => {
    assert.strictEqual(summary.training.epochs.length, 2);
    for (const epoch of summary.training.epochs) {
      assert.ok(Number.isFinite(epoch.trainLoss), `epoch ${epoch.epoch} train loss ${epoch.trainLoss}`);
      assert.ok(Number.isFinite(epoch.validationLoss ?? Number.NaN), `epoch ${epoch.epoch} validation loss`);
    }
    assert.strictEqual(summary.training.stopReason, 'completed');
  });

  it('uses the limited sample counts', () => {
    assert.deepStrictEqual(summary.samplesUsed, { train: { ecg: 12, xray: 12 }, heldout: { ecg: 12, xray: 12 } });
    assert.strictEqual(summary.zeroShotEcg.records, 12);
    assert.strictEqual(summary.retrieval.reportToEcg.reportToSignal.queries, 12);
    assert.strictEqual(summary.ecgLinearProbe.trainSamples, 12);
  });

  it('states chance levels beside recall', () => {
    assert.deepStrictEqual(summary.retrieval.reportToXray.chance, { 1: 1 / 12, 5: 5 / 12, 10: 10 / 12 });
    for (const figures of [summary.retrieval.reportToEcg, summary.retrieval.reportToXray]) {
      for (const k of [1, 5, 10]) assert.ok(figures.reportToSignal.recallAtK[k] <= 1);
    }
  });

  it('writes the summary, history and checkpoint', () => {
    const written = JSON.parse(fs.readFileSync(path.join(outDir, 'summary.json'), 'utf8'));
    assert.deepStrictEqual(written, JSON.parse(JSON.stringify(summary)));
    assert.strictEqual(JSON.parse(fs.readFileSync(path.join(outDir, 'history.json'), 'utf8')).length, 2);
    for (const name of ['config.json', 'model.safetensors', 'text/tokenizer.json']) {
      assert.ok(fs.existsSync(path.join(outDir, 'checkpoint', name)), name);
    }
  });

  it('leaks no tensors', () => {
    assert.strictEqual(tf.memory().numTensors, tensorsBefore);
  });

  it('reloads a checkpoint that reproduces retrieval', async () => {
    const { model, tokenizer, config } = loadMainJobCheckpoint(path.join(outDir, 'checkpoint'));
    try {
      assert.strictEqual(config.maxTextLength, 32);
      const heldOut = buildSampleCorpus().samples.filter((s) => s.split === 'heldout' && s.modality === 'xray').slice(0, 12);
      const { prepared } = await prepareSamples(heldOut, tokenizer, { maxTextLength: 32, progress: silentProgress });
      const figures = retrievalFigures(embedSamples(model, prepared), 'xray');
      assert.deepStrictEqual(figures.reportToSignal.recallAtK, summary.retrieval.reportToXray.reportToSignal.recallAtK);
      assert.strictEqual(figures.reportToSignal.meanAveragePrecision, summary.retrieval.reportToXray.reportToSignal.meanAveragePrecision);
    } finally {
      model.dispose();
    }
  });

  it('prints sizes beside the figures', () => {
    const table = formatSummaryTable(summary);
    assert.match(table, /figures below come from small samples/);
    assert.match(table, /12 ECG \+ 12 X-ray training samples/);
    assert.match(table, /zero-shot PTB-XL superclass AUROC \(12 records\)/);
    assert.match(table, /R@1 \S+ \(chance 0\.083\)/);
  });

  it('executes the report notebook through the kernel', () => {
    const report = executeReportNotebook(outDir, { timeoutSeconds: 300 });
    const notebook = JSON.parse(fs.readFileSync(report.notebook, 'utf8'));
    const mimeTypes = new Set<string>();
    for (const cell of notebook.cells) {
      for (const output of cell.outputs ?? []) {
        assert.notStrictEqual(output.output_type, 'error', JSON.stringify(output).slice(0, 400));
        for (const type of Object.keys(output.data ?? {})) mimeTypes.add(type);
      }
    }
    for (const type of [
      'application/vnd.vegalite.v5+json',
      'application/vnd.more-ts.explanation.v1+json',
      'application/vnd.more-ts.retrieval.v1+json',
      'image/png',
      'text/plain',
    ]) {
      assert.ok(mimeTypes.has(type), `no ${type} output; saw ${[...mimeTypes].join(', ')}`);
    }
    const html = fs.readFileSync(report.html, 'utf8');
    assert.match(html, /MoRE main job: report/);
    assert.match(html, /figures below come from small samples/);
  });

  it('rejects a missing text encoder folder', async () => {
    await assert.rejects(runMainJob({ outDir, textModel: path.join(outDir, 'absent') }), /No text encoder in .*absent/);
  });
});
