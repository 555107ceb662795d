/**
 * The paper-tables runner end to end on a tiny main-job checkpoint: small
 * MIMIC-CXR-JPG, CheXpert, edema, PTB-XL and MIMIC-IV-ECG layouts written by
 * the test around real sample X-rays and ECGs, then the shipped sample data.
 * The figures in the JSON must equal what `src/tasks/metrics.ts` (itself
 * checked against scikit-learn) computes on the saved scores, the table must
 * show every figure of the JSON, and every protocol must give a figure or a
 * stated reason.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import sharp from 'sharp';

import { tf } from '../../src/backend';
import { CHEXPERT_OBSERVATIONS } from '../../src/datasets/cxr/labels';
import { readPtbXlManifest } from '../../src/datasets/ptbxl';
import { MoreModel } from '../../src/model';
import { parseHuggingFaceConfig, TransformerTextEncoder } from '../../src/model/text';
import { saveMainJobCheckpoint } from '../../src/run/checkpoint';
import {
  accuracy, argmaxRows, multiclassAurocOvr, multilabelAuroc, multilabelAveragePrecision,
} from '../../src/tasks/metrics';
import { formatFigure, NO_DATA, PROTOCOLS, runPaperTables, type PaperTablesResult, type ProtocolResult } from '../../src/tasks/paper';
import { getLogLevel, setLogLevel } from '../../src/util/log';

const REPO = path.join(__dirname, '..', '..');
const SAMPLES = path.join(REPO, 'data', 'samples');
const TOKENIZER = path.join(__dirname, '..', 'fixtures', 'datasets', 'text', 'minilm');
const BERT_TINY = path.join(__dirname, '..', 'fixtures', 'model', 'text', 'bert-tiny', 'config.json');
const SAMPLE_PNGS = [
  ...fs.readdirSync(path.join(SAMPLES, 'nih', 'images')).map((name) => path.join(SAMPLES, 'nih', 'images', name)),
  ...fs.readdirSync(path.join(SAMPLES, 'hannover', 'png')).slice(0, 30).map((name) => path.join(SAMPLES, 'hannover', 'png', name)),
].sort();

/** Writes a real sample radiograph, shrunk to 96 pixels, as a JPEG at `file`. */
async function writeXray(file: string, index: number): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp(SAMPLE_PNGS[index % SAMPLE_PNGS.length]).resize(96, 96).jpeg().toFile(file);
}

/** Returns label j of row i: 1 when (7i + 3j) mod 5 is 0 or 1, so each label column has positives and negatives. */
function pattern(i: number, j: number): number {
  return ((i * 7 + j * 3) % 5) < 2 ? 1 : 0;
}

const FINDINGS = ['The heart is enlarged.', 'Small left pleural effusion.', 'Lungs are clear.', 'Bibasilar atelectasis.', 'Mild pulmonary edema.'];

/** MIMIC-CXR-JPG layout: 18 studies (10 train, 4 validate, 4 test), one image each, one study with an uncertain label. */
async function writeMimicCxr(root: string): Promise<string[]> {
  const metadata = ['dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime'];
  const split = ['dicom_id,study_id,subject_id,split'];
  const labels = [`subject_id,study_id,${CHEXPERT_OBSERVATIONS.join(',')}`];
  const dicoms: string[] = [];
  for (let i = 0; i < 18; i++) {
    const subject = 10000100 + i;
    const study = 50000000 + i;
    const dicom = `d${i}`;
    dicoms.push(dicom);
    let splitName = 'test';
    if (i < 10) splitName = 'train';
    else if (i < 14) splitName = 'validate';
    metadata.push(`${dicom},${subject},${study},"CHEST (PA AND LAT)",PA,96,96,21500101,120000`);
    split.push(`${dicom},${study},${subject},${splitName}`);
    const named: Record<string, number> = { Atelectasis: pattern(i, 0), Cardiomegaly: pattern(i, 1), Edema: pattern(i, 2), 'Pleural Effusion': pattern(i, 3) };
    const row = CHEXPERT_OBSERVATIONS.map((name) => (name in named ? `${named[name]}.0` : ''));
    if (i === 3) row[CHEXPERT_OBSERVATIONS.indexOf('Cardiomegaly')] = '-1.0';
    labels.push(`${subject},${study},${row.join(',')}`);
    const folder = path.join(root, 'files', `p${String(subject).slice(0, 2)}`, `p${subject}`, `s${study}`);
    await writeXray(path.join(folder, `${dicom}.jpg`), i);
    fs.writeFileSync(`${folder}.txt`, `FINDINGS: ${FINDINGS[i % 5]} ${FINDINGS[(i + 2) % 5]}\nIMPRESSION: Study ${i}.\n`);
  }
  fs.writeFileSync(path.join(root, 'mimic-cxr-2.0.0-metadata.csv'), `${metadata.join('\n')}\n`);
  fs.writeFileSync(path.join(root, 'mimic-cxr-2.0.0-split.csv'), `${split.join('\n')}\n`);
  fs.writeFileSync(path.join(root, 'mimic-cxr-2.0.0-chexpert.csv'), `${labels.join('\n')}\n`);
  return dicoms;
}

/** CheXpert layout: 15 frontal train images, each positive for one competition label (3 per label), and 6 valid images. */
async function writeChexpert(root: string): Promise<void> {
  const header = `Path,Sex,Age,Frontal/Lateral,AP/PA,${CHEXPERT_OBSERVATIONS.join(',')}`;
  const competition = ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Pleural Effusion'];
  const rows = (split: string, count: number, labelOf: (i: number, name: string, c: number) => string) => {
    const lines = [header];
    for (let i = 0; i < count; i++) {
      const file = `${split}/patient${String(i).padStart(5, '0')}/study1/view1_frontal.jpg`;
      const cells = CHEXPERT_OBSERVATIONS.map((name) => {
        const c = competition.indexOf(name);
        return c < 0 ? '' : labelOf(i, name, c);
      });
      lines.push(`CheXpert-v1.0-small/${file},Female,60,Frontal,AP,${cells.join(',')}`);
    }
    return lines;
  };
  const train = rows('train', 15, (i, _name, c) => (i % 5 === c ? '1.0' : '0.0'));
  const valid = rows('valid', 6, (i, _name, c) => `${pattern(i, c)}.0`);
  fs.writeFileSync(path.join(root, 'train.csv'), `${train.join('\n')}\n`);
  fs.writeFileSync(path.join(root, 'valid.csv'), `${valid.join('\n')}\n`);
  for (let i = 0; i < 15; i++) await writeXray(path.join(root, `train/patient${String(i).padStart(5, '0')}/study1/view1_frontal.jpg`), i + 3);
  for (let i = 0; i < 6; i++) await writeXray(path.join(root, `valid/patient${String(i).padStart(5, '0')}/study1/view1_frontal.jpg`), i + 20);
}

/** PTB-XL layout with a few real 100 Hz sample records per fold (8 of fold 9, 10 of fold 10). */
function writePtbxl(root: string): string[] {
  const source = path.join(SAMPLES, 'ptbxl');
  const lines = fs.readFileSync(path.join(source, 'ptbxl_database.csv'), 'utf8').split('\n').filter((line) => line !== '');
  const header = lines[0].split(',');
  const foldColumn = header.indexOf('strat_fold');
  const perFold: Record<string, number> = { 9: 8, 10: 10 };
  const takenPerFold: Record<string, number> = {};
  const keptLines = [lines[0]];
  const records: string[] = [];
  for (const line of lines.slice(1)) {
    // The fold and file name are plain cells after the quoted scp_codes dict, so count from the end.
    const cells = line.split(',');
    const fold = cells[cells.length - (header.length - foldColumn)];
    if ((takenPerFold[fold] ?? 0) >= (perFold[fold] ?? 3)) continue;
    takenPerFold[fold] = (takenPerFold[fold] ?? 0) + 1;
    keptLines.push(line);
    records.push(cells[cells.length - 2]);
  }
  fs.mkdirSync(root, { recursive: true });
  fs.writeFileSync(path.join(root, 'ptbxl_database.csv'), `${keptLines.join('\n')}\n`);
  fs.copyFileSync(path.join(source, 'scp_statements.csv'), path.join(root, 'scp_statements.csv'));
  for (const record of records) {
    fs.mkdirSync(path.dirname(path.join(root, record)), { recursive: true });
    for (const ext of ['.hea', '.dat']) fs.copyFileSync(path.join(source, record + ext), path.join(root, record + ext));
  }
  return records;
}

/** MIMIC-IV-ECG layout: 8 real sample records at MIMIC paths with machine statements. */
function writeMimicEcg(root: string, ptbxlRoot: string, records: string[]): void {
  const list = ['subject_id,study_id,file_name,ecg_time,path'];
  const statements = ['Sinus rhythm', 'Normal ECG', 'Left axis deviation', 'Atrial fibrillation', 'Inferior infarct', 'Low QRS voltages'];
  const measurements = [`subject_id,study_id,cart_id,ecg_time,${Array.from({ length: 18 }, (_, i) => `report_${i}`).join(',')}`];
  records.slice(0, 8).forEach((record, i) => {
    const subject = 10000200 + i;
    const study = 40000000 + i;
    const relative = `files/p1000/p${subject}/s${study}/${study}`;
    list.push(`${subject},${study},${study},2180-01-01 08:00:00,${relative}`);
    const lines = [statements[i % 6], statements[(i + 3) % 6], ...Array.from({ length: 16 }, () => '')];
    measurements.push(`${subject},${study},1,2180-01-01 08:00:00,${lines.join(',')}`);
    const target = path.join(root, relative);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const name = path.basename(record);
    fs.writeFileSync(`${target}.hea`, fs.readFileSync(path.join(ptbxlRoot, `${record}.hea`), 'latin1').split(name).join(String(study)));
    fs.copyFileSync(path.join(ptbxlRoot, `${record}.dat`), `${target}.dat`);
  });
  fs.writeFileSync(path.join(root, 'record_list.csv'), `${list.join('\n')}\n`);
  fs.writeFileSync(path.join(root, 'machine_measurements.csv'), `${measurements.join('\n')}\n`);
}

/** Saves a tiny MoRE model (64-pixel X-rays, tiny ECG tower, a two-layer BERT of width 32 with LoRA) as a main-job checkpoint. */
function writeCheckpoint(folder: string): void {
  const json = JSON.parse(fs.readFileSync(BERT_TINY, 'utf8'));
  const text = new TransformerTextEncoder(parseHuggingFaceConfig({ ...json, vocab_size: 30522, max_position_embeddings: 128 }, BERT_TINY), { seed: 2 });
  text.addLora({}, 2);
  const model = new MoreModel({
    preset: 'tiny', image: { imageSize: 64, patchSize: 16 },
    imageHead: { outputDim: 16 }, ecgHead: { outputDim: 16 }, textHead: { outputDim: 16 },
  }, text, { seed: 4 });
  try {
    saveMainJobCheckpoint(folder, model, TOKENIZER, 48);
  } finally {
    model.dispose();
  }
}

function protocol(result: PaperTablesResult, id: keyof typeof PROTOCOLS): ProtocolResult {
  const found = result.protocols.find((p) => p.id === id);
  assert.ok(found !== undefined, `protocol ${id} missing from the result`);
  return found;
}

function figure(result: ProtocolResult, name: string): number | null {
  const found = result.figures.find((f) => f.name === name);
  assert.ok(found !== undefined, `${result.id}: no figure "${name}" among ${result.figures.map((f) => f.name).join('; ')}`);
  return found.value;
}

function close(actual: number | null, expected: number | null, label: string): void {
  assert.ok(actual !== null, `${label}: figure is null`);
  assert.ok(expected !== null, `${label}: metric is null`);
  assert.ok(Math.abs(actual - expected) < 1e-12, `${label}: ${actual} vs ${expected}`);
}

/** Checks that every protocol has figures or a reason and that the table shows each figure with its value and data sizes. */
function checkTableMatchesJson(result: PaperTablesResult): void {
  const lines = result.table.split('\n');
  for (const p of result.protocols) {
    if (p.status === 'not run') {
      assert.ok(p.reason !== undefined, `${p.id}: no reason`);
      assert.ok(p.reason.startsWith('not run: '), `${p.id}: reason ${p.reason}`);
      assert.ok(lines.some((line) => line.startsWith(`| ${p.title} |`) && line.includes(p.reason as string)), `${p.id}: reason not in the table`);
      continue;
    }
    assert.ok(p.figures.length > 0, `${p.id}: no figures`);
    assert.ok(p.data !== undefined, `${p.id}: no data`);
    assert.ok(p.data.testSize > 0, `${p.id}: no test records`);
    for (const f of p.figures) {
      assert.ok(f.value !== null || (f.reason ?? '') !== '', `${p.id} ${f.name}: no value and no reason`);
      const row = lines.find((line) => line.startsWith(`| ${p.title} | ${f.name} |`));
      assert.ok(row !== undefined, `${p.id} ${f.name}: not in the table`);
      assert.ok(row.includes(`| ${formatFigure(f)} |`), `${p.id} ${f.name}: table row ${row}`);
      assert.ok(row.includes(`${p.data.testSize} test`), `${p.id} ${f.name}: no test size in ${row}`);
    }
  }
  assert.deepStrictEqual(new Set(result.protocols.map((p) => p.id)), new Set(Object.keys(PROTOCOLS)));
}

describe('paper-tables runner', function () {
  this.timeout(300_000);
  let work: string;
  let checkpoint: string;
  let level: ReturnType<typeof getLogLevel>;

  before(async () => {
    level = getLogLevel();
    // The untrained model ranks some classes below chance; the zero-shot polarity warnings are expected here.
    setLogLevel('error');
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'more-paper-'));
    checkpoint = path.join(work, 'checkpoint');
    writeCheckpoint(checkpoint);
  });

  after(() => {
    setLogLevel(level);
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('dataset layouts: figures equal the metrics', async () => {
    const mimicCxr = path.join(work, 'mimic-cxr');
    const dicoms = await writeMimicCxr(mimicCxr);
    const chexpert = path.join(work, 'chexpert', 'CheXpert-v1.0-small');
    fs.mkdirSync(chexpert, { recursive: true });
    await writeChexpert(chexpert);
    const edema = path.join(work, 'edema');
    fs.mkdirSync(edema);
    fs.writeFileSync(path.join(edema, 'consensus_image_edema_severity.csv'), `subject_id,study_id,dicom_id,edema_severity\n${
      dicoms.map((dicom, i) => `${10000100 + i},${50000000 + i},${dicom},${i % 4}`).join('\n')}\n`);
    const ptbxl = path.join(work, 'ptbxl');
    const records = writePtbxl(ptbxl);
    const mimicEcg = path.join(work, 'mimic-ecg');
    writeMimicEcg(mimicEcg, ptbxl, records);

    const tensors = tf.memory().numTensors;
    const out = path.join(work, 'full.json');
    const result = await runPaperTables({
      checkpoint, mimicCxr, chexpert, edema, ptbxl, mimicEcg, out, saveScores: true, zeroShotPerClass: 2,
      probe: { maxEpochs: 2, batchSize: 8 },
    });
    assert.strictEqual(tf.memory().numTensors, tensors);
    assert.deepStrictEqual(JSON.parse(fs.readFileSync(out, 'utf8')), JSON.parse(JSON.stringify(result)));
    assert.strictEqual(result.sampleData, false);
    assert.strictEqual(result.notice, null);
    assert.ok(!result.table.includes('SAMPLE DATA'));
    for (const p of result.protocols) assert.strictEqual(p.status, 'run', `${p.id}: ${p.reason}`);
    checkTableMatchesJson(result);

    // Probes: macro AUROC and mAP at each fraction equal the metrics on the saved probabilities.
    const mimic = protocol(result, 'mimic-cxr-probe');
    assert.deepStrictEqual(mimic.data?.skipped, { 'uncertain label (-1)': 1 });
    assert.deepStrictEqual([mimic.data?.trainSize, mimic.data?.validationSize, mimic.data?.testSize], [9, 4, 4]);
    for (const id of ['mimic-cxr-probe', 'chexpert-probe', 'ptbxl-probe'] as const) {
      const p = protocol(result, id);
      assert.deepStrictEqual(p.scores?.map((s) => s.name), ['1%', '10%', '100%']);
      for (const saved of p.scores ?? []) {
        const labels = saved.labels as number[][];
        const rows = Math.max(1, Math.round((Number(saved.name.slice(0, -1)) / 100) * (p.data?.trainSize as number)));
        const at = ` @ ${saved.name} (${rows} train)`;
        close(figure(p, `macro AUROC${at}`), multilabelAuroc(labels, saved.scores).macro.value, `${id} ${saved.name}`);
        close(figure(p, `mAP${at}`), multilabelAveragePrecision(labels, saved.scores).macro.value, `${id} ${saved.name} mAP`);
      }
    }
    const edemaProbe = protocol(result, 'edema-probe');
    const edemaScores = edemaProbe.scores?.[0];
    assert.ok(edemaScores !== undefined);
    close(figure(edemaProbe, 'accuracy'), accuracy(edemaScores.labels as number[], argmaxRows(edemaScores.scores)), 'edema accuracy');
    close(figure(edemaProbe, 'macro AUROC (one vs rest)'), multiclassAurocOvr(edemaScores.labels as number[], edemaScores.scores).value, 'edema AUROC');

    // Zero-shot: AUROC of the saved z-scored similarities.
    const xrayZero = protocol(result, 'zero-shot-xray');
    assert.strictEqual(xrayZero.data?.testSize, 10);
    const xs = xrayZero.scores?.[0];
    assert.ok(xs !== undefined);
    close(figure(xrayZero, 'macro AUROC'), multilabelAuroc(xs.labels as number[][], xs.scores).macro.value, 'zero-shot X-ray');
    const ecgZero = protocol(result, 'zero-shot-ecg');
    assert.strictEqual(ecgZero.data?.testSize, 10);
    const es = ecgZero.scores?.[0];
    assert.ok(es !== undefined);
    close(figure(ecgZero, 'multi-label macro AUROC'), multilabelAuroc(es.labels as number[][], es.scores).macro.value, 'zero-shot ECG');

    // Retrieval: recalls are fractions of the queries, chance is K over the gallery.
    const xrayRetrieval = protocol(result, 'retrieval-xray');
    assert.strictEqual(xrayRetrieval.data?.testSize, 4);
    close(figure(xrayRetrieval, 'chance Recall@1'), 1 / 4, 'chance');
    assert.strictEqual(figure(xrayRetrieval, 'report -> X-ray Recall@5'), 1);
    const ecgRetrieval = protocol(result, 'retrieval-ecg');
    assert.strictEqual(ecgRetrieval.data?.testSize, 8);
    for (const f of ecgRetrieval.figures) assert.ok(f.value !== null && Number.isInteger(f.value * 8), `${f.name} ${f.value}`);

    // The CheXpert and PTB-XL figures go beside the peers'.
    assert.deepStrictEqual(result.measured.map((m) => `${m.task} ${m.column}`).sort(), [
      'chexpertFineTune 1%', 'chexpertFineTune 10%', 'chexpertFineTune 100%', 'chexpertZeroShot AUROC', 'ecgZeroShot AUROC',
      'ptbxlLinearProbe 1%', 'ptbxlLinearProbe 10%', 'ptbxlLinearProbe 100%',
    ].sort());
    assert.ok(result.table.includes('| MERL | 82.39 | n/a | n/a | published |'));
  });

  it('CheXpert fine-tune: figures and restored encoder', async () => {
    const chexpert = path.join(work, 'chexpert-fine-tune', 'CheXpert-v1.0-small');
    fs.mkdirSync(chexpert, { recursive: true });
    await writeChexpert(chexpert);
    const tensors = tf.memory().numTensors;
    // A large learning rate moves the fine-tuned weights far, so weights left in the encoder would show in later protocols.
    const common = { checkpoint, chexpert, saveScores: true, zeroShotPerClass: 2, fractions: [0.5, 1], probe: { maxEpochs: 2, batchSize: 4, lr: 1e-2 } };
    const fineTuned = await runPaperTables({ ...common, fineTune: true, out: path.join(work, 'fine-tune.json') });
    assert.strictEqual(tf.memory().numTensors, tensors);
    checkTableMatchesJson(fineTuned);

    const p = protocol(fineTuned, 'chexpert-probe');
    assert.strictEqual(p.status, 'run', p.reason);
    // The tiny encoder has two blocks, so both train.
    assert.match(p.data?.description ?? '', /fine-tuned \(qkv of the last 2 X-ray blocks train with the head\)/);
    assert.deepStrictEqual(p.scores?.map((saved) => saved.name), ['50%', '100%']);
    for (const saved of p.scores ?? []) {
      const rows = Math.round((Number(saved.name.slice(0, -1)) / 100) * (p.data?.trainSize as number));
      const at = ` @ ${saved.name} (${rows} train)`;
      close(figure(p, `macro AUROC${at}`), multilabelAuroc(saved.labels as number[][], saved.scores).macro.value, `fine-tune ${saved.name}`);
    }
    assert.deepStrictEqual(fineTuned.measured.filter((m) => m.task === 'chexpertFineTune').map((m) => m.column), ['100%']);

    // Zero-shot runs after the fine-tuning on the same model, so its scores show that the pre-trained weights came back.
    // The runs encode the images in other batches, which changes the float32 sums a little.
    const probed = await runPaperTables({ ...common, out: path.join(work, 'probe.json') });
    assert.match(protocol(probed, 'chexpert-probe').data?.description ?? '', /linear probe/);
    const after = protocol(fineTuned, 'zero-shot-xray').scores?.[0].scores.flat() ?? [];
    const reference = protocol(probed, 'zero-shot-xray').scores?.[0].scores.flat() ?? [];
    assert.strictEqual(after.length, reference.length);
    assert.ok(after.length > 0, 'no zero-shot scores');
    after.forEach((value, i) => assert.ok(Math.abs(value - reference[i]) < 1e-4, `zero-shot score ${i}: ${value} vs ${reference[i]}`));
  });

  it('sample data: labelled and sized', async () => {
    const out = path.join(work, 'samples.json');
    const result = await runPaperTables({ checkpoint, samples: true, out, probe: { maxEpochs: 2, batchSize: 32 } });
    assert.strictEqual(result.sampleData, true);
    assert.match(result.notice ?? '', /^SAMPLE DATA: /);
    assert.ok(result.table.startsWith('# Paper tables (SAMPLE DATA)'));
    assert.ok(result.table.includes(`**${result.notice}**`));
    assert.deepStrictEqual(JSON.parse(fs.readFileSync(out, 'utf8')).notice, result.notice);
    for (const id of ['mimic-cxr-probe', 'chexpert-probe', 'edema-probe'] as const) {
      assert.strictEqual(protocol(result, id).status, 'not run');
      assert.strictEqual(protocol(result, id).reason, NO_DATA);
    }
    // Sizes as the PTB-XL reader splits the sample records (unlabelled records left out and counted).
    const manifest = readPtbXlManifest(path.join(SAMPLES, 'ptbxl'), { samplingRate: 100 });
    const bySplit = (split: string) => manifest.records.filter((r) => r.split === split).length;
    const [train, validation, test] = [bySplit('train'), bySplit('validation'), bySplit('test')];
    const ptbxl = protocol(result, 'ptbxl-probe');
    assert.strictEqual(ptbxl.status, 'run', ptbxl.reason);
    assert.deepStrictEqual(ptbxl.data, {
      kind: 'sample', description: 'PTB-XL 100 Hz, folds 1-8 / 9 / 10', trainSize: train, validationSize: validation, testSize: test,
      skipped: manifest.summary.skipped,
    });
    for (const id of ['zero-shot-xray', 'zero-shot-ecg', 'retrieval-xray', 'retrieval-ecg'] as const) {
      const p = protocol(result, id);
      assert.strictEqual(p.status, 'run', `${id}: ${p.reason}`);
      assert.strictEqual(p.data?.kind, 'sample');
    }
    checkTableMatchesJson(result);
    assert.ok(result.table.includes(`sample: ${train} train / ${validation} validation / ${test} test (left out: `));
    assert.ok(result.table.includes(`SAMPLE DATA, not comparable to published figures: PTB-XL 100 Hz, folds 1-8 / 9 / 10 (${train} train / ${test} test)`));
  });

  it('sample folder as dataset: labelled', async () => {
    const result = await runPaperTables({
      checkpoint, ptbxl: path.join(SAMPLES, 'ptbxl'), out: path.join(work, 'ptbxl-samples.json'), fractions: [1], probe: { maxEpochs: 1 },
    });
    assert.strictEqual(result.sampleData, true);
    assert.ok(result.table.startsWith('# Paper tables (SAMPLE DATA)'));
    assert.strictEqual(protocol(result, 'ptbxl-probe').data?.kind, 'sample');
    assert.deepStrictEqual(protocol(result, 'ptbxl-probe').figures.filter((f) => f.name.startsWith('macro AUROC')).map((f) => f.name.split(' (')[0]),
      ['macro AUROC @ 100%']);
    for (const id of ['retrieval-xray', 'zero-shot-xray'] as const) assert.strictEqual(protocol(result, id).reason, NO_DATA);
    assert.strictEqual(protocol(result, 'retrieval-ecg').status, 'run');
  });
});
