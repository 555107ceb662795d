import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { buildSampleCorpus } from '../../src/run/corpus';
import { readScpDescriptions, statementReport } from '../../src/run/ecg_samples';
import { nihLabelNote, readHannoverSamples } from '../../src/run/xray_samples';

const SAMPLES = path.resolve(__dirname, '..', '..', 'data', 'samples');

describe('run/corpus', () => {
  it('holds out PTB-XL folds 9 and 10', () => {
    const { samples } = buildSampleCorpus();
    const ecgs = samples.filter((s) => s.modality === 'ecg');
    assert.ok(ecgs.length > 300, `expected the shipped PTB-XL records, got ${ecgs.length}`);
    for (const sample of ecgs) {
      if (sample.modality !== 'ecg') continue;
      const heldOut = sample.ecg.strataFold === 9 || sample.ecg.strataFold === 10;
      assert.strictEqual(sample.split, heldOut ? 'heldout' : 'train', sample.id);
    }
  });

  it('never splits an X-ray patient', () => {
    const { samples } = buildSampleCorpus();
    const splitOf = new Map<string, string>();
    for (const sample of samples) {
      if (sample.modality !== 'xray') continue;
      const seen = splitOf.get(sample.xray.patient);
      if (seen !== undefined) assert.strictEqual(sample.split, seen, `patient ${sample.xray.patient} is in both splits`);
      splitOf.set(sample.xray.patient, sample.split);
    }
    assert.ok([...splitOf.values()].includes('heldout'));
    assert.ok([...splitOf.values()].includes('train'));
  });

  it('prefixes every text by modality', () => {
    const { samples } = buildSampleCorpus();
    for (const sample of samples) {
      const prefix = sample.modality === 'ecg' ? 'The report from ECG is: ' : 'The report from Xray is: ';
      assert.ok(sample.text.startsWith(prefix), sample.text);
      assert.ok(!/undefined|\bnan\b/i.test(sample.text), sample.text);
    }
  });

  it('reports skipped rows with reasons', () => {
    const { summary } = buildSampleCorpus();
    const reasons = summary.skipped.map((entry) => entry.reason);
    // The Hannover table lists three images that ship only as JPEGs elsewhere.
    assert.strictEqual(summary.skipped.filter((entry) => entry.id.startsWith('hannover/')).length, 3);
    assert.ok(reasons.some((reason) => /no diagnostic superclass/.test(reason)), reasons.join('; '));
    assert.strictEqual(summary.notes.length, 3);
    assert.match(summary.notes[0], /No public dataset pairs a chest X-ray with an ECG/);
  });

  it('is the same for the same seed', () => {
    const first = buildSampleCorpus({ seed: 4 }).samples.map((s) => `${s.id}:${s.split}`);
    const second = buildSampleCorpus({ seed: 4 }).samples.map((s) => `${s.id}:${s.split}`);
    assert.deepStrictEqual(first, second);
  });

  it('rejects an invalid held-out fraction', () => {
    assert.throws(() => buildSampleCorpus({ heldOutXrayFraction: 1.5 }), /heldOutXrayFraction 1.5/);
  });
});

describe('run/ecg_samples', () => {
  it('writes statements most likely first', () => {
    const descriptions = readScpDescriptions(path.join(SAMPLES, 'ptbxl', 'scp_statements.csv'));
    // ecg_id 1 in ptbxl_database.csv: {'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}.
    const report = statementReport({ NORM: 100, LVOLT: 0, SR: 0 }, descriptions, 'ptbxl/1');
    assert.strictEqual(report, 'Normal ECG. Low QRS voltages in the frontal and horizontal leads. Sinus rhythm.');
  });

  it('rejects an unknown SCP code', () => {
    const descriptions = readScpDescriptions(path.join(SAMPLES, 'ptbxl', 'scp_statements.csv'));
    assert.throws(() => statementReport({ XYZ: 50 }, descriptions, 'ptbxl/7'), /Record ptbxl\/7: SCP code "XYZ"/);
  });

  it('keeps the free-text reports when asked', () => {
    const { samples, summary } = buildSampleCorpus({ ecgReportStyle: 'free-text' });
    const first = samples.find((s) => s.id === 'ptbxl/1');
    assert.ok(first !== undefined && first.modality === 'ecg');
    assert.strictEqual(first.ecg.report, 'sinusrhythmus periphere niederspannung');
    assert.strictEqual(summary.ecgReportStyle, 'free-text');
  });
});

describe('run/xray_samples', () => {
  it('names NIH labels as CheXpert does', () => {
    assert.deepStrictEqual(nihLabelNote('Cardiomegaly|Effusion'), {
      note: 'Cardiomegaly, Pleural Effusion is present.',
      findings: ['Cardiomegaly', 'Pleural Effusion'],
    });
    assert.strictEqual(nihLabelNote('Pleural_Thickening').note, 'Pleural Thickening is present.');
    assert.throws(() => nihLabelNote(' | '), /Invalid Finding Labels/);
  });

  it('counts Hannover rows without an image', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'more-ts-hannover-'));
    fs.mkdirSync(path.join(root, 'hannover', 'png'), { recursive: true });
    fs.writeFileSync(path.join(root, 'hannover', 'data.csv'),
      'patient_id,image_id,projection,icu_admission_offset\np1,img1,pa,\np1,img2,ap,2.0\n');
    fs.copyFileSync(path.join(SAMPLES, 'hannover', 'png', fs.readdirSync(path.join(SAMPLES, 'hannover', 'png'))[0]),
      path.join(root, 'hannover', 'png', 'img2.png'));
    const skipped: { id: string; reason: string }[] = [];
    const samples = readHannoverSamples(root, skipped);
    assert.strictEqual(samples.length, 1);
    assert.strictEqual(samples[0].note, 'COVID-19 is present. AP projection. The patient was admitted to intensive care.');
    assert.deepStrictEqual(skipped.map((entry) => entry.id), ['hannover/img1']);
  });

  it('rejects an image path leaving the folder', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'more-ts-hannover-'));
    fs.mkdirSync(path.join(root, 'hannover', 'png'), { recursive: true });
    fs.writeFileSync(path.join(root, 'hannover', 'data.csv'), 'patient_id,image_id,projection,icu_admission_offset\np1,../../x,pa,\n');
    assert.throws(() => readHannoverSamples(root, []), /escape|outside|leav/i);
  });
});
