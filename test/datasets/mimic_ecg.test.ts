import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { mimicEcgRecordPath, parseEcgTime, readMimicEcgManifest } from '../../src/datasets/mimic_ecg';
import { loadPreprocessedEcg } from '../../src/datasets/ecg';
import { loadPolars } from '../../src/datasets/ecg/manifest';
import { setLogSink } from '../../src/util/log';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'datasets');
const METADATA = path.join(FIXTURES, 'ecg', 'records', 'mimic_iv_ecg');
const SOURCE_RECORD = path.join(FIXTURES, 'ecg', 'records', 'ptbxl', 'records500', '00000', '00001_hr');

// The machine statements of the public study, joined by reference/datasets_text.py.
const reportsExpected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'text', 'reports_expected.json'), 'utf8')) as {
  ecg: { lines: (string | null)[]; all: string; reference: string }[];
};

const RECORD_HEADER = 'subject_id,study_id,file_name,ecg_time,path';

/** Writes a 12-lead 500 Hz record (real PTB-XL samples) at a MIMIC-IV-ECG path under `root`. */
function writeRecord(root: string, relativePath: string): void {
  const target = path.join(root, relativePath);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const name = path.basename(target);
  const header = fs.readFileSync(`${SOURCE_RECORD}.hea`, 'latin1').replace(/00001_hr/g, name);
  fs.writeFileSync(`${target}.hea`, header);
  fs.copyFileSync(`${SOURCE_RECORD}.dat`, `${target}.dat`);
}

describe('datasets/mimic_ecg', () => {
  let root: string;
  let previousSink: ReturnType<typeof setLogSink>;

  beforeEach(() => {
    previousSink = setLogSink(() => undefined);
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'more-mimic-ecg-'));
    fs.copyFileSync(path.join(METADATA, 'record_list.csv'), path.join(root, 'record_list.csv'));
    fs.copyFileSync(path.join(METADATA, 'machine_measurements.csv'), path.join(root, 'machine_measurements.csv'));
  });

  afterEach(() => {
    setLogSink(previousSink);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('joins a record with its machine report', async () => {
    writeRecord(root, 'files/p1000/p10000032/s40689238/40689238');
    const manifest = readMimicEcgManifest(root);
    assert.strictEqual(manifest.records.length, 1);
    const [record] = manifest.records;
    assert.strictEqual(record.subjectId, 10000032);
    assert.strictEqual(record.studyId, 40689238);
    assert.strictEqual(record.report, reportsExpected.ecg[0].all);
    assert.strictEqual(record.ecgTimeMs, Date.UTC(2180, 6, 23, 8, 44, 0));
    assert.strictEqual(record.recordPath, path.join(root, 'files', 'p1000', 'p10000032', 's40689238', '40689238'));
    assert.deepStrictEqual(manifest.summary.skipped, {});
    assert.deepStrictEqual(manifest.summary.warnings, {});
    const ecg = await loadPreprocessedEcg(record.recordPath);
    assert.strictEqual(ecg.leads, 12);
    assert.strictEqual(ecg.samples, 1000);
  });

  it('builds the published record path', () => {
    assert.strictEqual(mimicEcgRecordPath(10000032, 40689238), 'files/p1000/p10000032/s40689238/40689238');
  });

  it('cuts statements in reference mode', () => {
    const lines = Array.from({ length: 18 }, (_, i) => `line ${i}`);
    const header = `subject_id,study_id,${lines.map((_, i) => `report_${i}`).join(',')}`;
    fs.writeFileSync(path.join(root, 'machine_measurements.csv'), `${header}\n10000032,40689238,${lines.join(',')}\n`);
    const all = readMimicEcgManifest(root, { checkFiles: false });
    assert.strictEqual(all.records[0].report, lines.join(' '));
    const reference = readMimicEcgManifest(root, { checkFiles: false, ecgReportLines: 'reference' });
    assert.strictEqual(reference.records[0].report, lines.slice(0, 7).join(' '));
  });

  it('counts records without files or measurements', () => {
    writeRecord(root, 'files/p1000/p10000032/s40689238/40689238');
    writeRecord(root, 'files/p1000/p10000033/s5/5');
    const rows = [
      RECORD_HEADER,
      '10000032,40689238,40689238,2180-07-23 08:44:00,files/p1000/p10000032/s40689238/40689238',
      '10000033,5,5,2181-01-02 10:00:00,files/p1000/p10000033/s5/5',
      '10000034,6,6,2181-01-03 10:00:00,files/p1000/p10000034/s6/6',
    ];
    fs.writeFileSync(path.join(root, 'record_list.csv'), rows.join('\n') + '\n');
    const manifest = readMimicEcgManifest(root);
    assert.deepStrictEqual(manifest.records.map((record) => record.studyId), [40689238, 5]);
    assert.strictEqual(manifest.records[1].report, 'ECG note not available.');
    assert.deepStrictEqual(manifest.summary.warnings, { 'no machine_measurements row': 1 });
    assert.deepStrictEqual(manifest.summary.skipped, { 'record file not found': 1 });
    assert.deepStrictEqual(manifest.summary.examples, { 'record file not found': ['6'] });
    assert.strictEqual(manifest.summary.rowsRead, 3);
    assert.strictEqual(manifest.summary.kept, 2);
  });

  it('names the file and line of a malformed row', () => {
    fs.appendFileSync(path.join(root, 'record_list.csv'), '10000035,7,7,2181-01-03 10:00:00\n');
    assert.throws(() => readMimicEcgManifest(root, { checkFiles: false }), /record_list\.csv line 3: 4 cells, expected 5/);
  });

  it('rejects an invalid time', () => {
    fs.appendFileSync(path.join(root, 'record_list.csv'), '10000035,7,7,2181-02-30 10:00:00,files/p1000/x/7\n');
    assert.throws(() => readMimicEcgManifest(root, { checkFiles: false }), /Invalid ecg_time "2181-02-30 10:00:00" in .*record_list\.csv line 3/);
    assert.throws(() => parseEcgTime('yesterday', 'f line 9'), /Invalid ecg_time "yesterday" in f line 9/);
  });

  it('rejects a path outside the root', () => {
    fs.appendFileSync(path.join(root, 'record_list.csv'), '10000035,7,7,2181-01-03 10:00:00,../../../etc/passwd\n');
    assert.throws(() => readMimicEcgManifest(root), /record_list\.csv line 3.*outside the dataset root/);
  });

  it('rejects a duplicated study', () => {
    const text = fs.readFileSync(path.join(root, 'machine_measurements.csv'), 'utf8');
    const lines = text.trimEnd().split('\n');
    fs.writeFileSync(path.join(root, 'machine_measurements.csv'), [...lines, lines[1]].join('\n') + '\n');
    assert.throws(() => readMimicEcgManifest(root), /Duplicate study_id 40689238 in .*machine_measurements\.csv line 3: already on line 2/);
  });

  it('reports a missing table', () => {
    fs.rmSync(path.join(root, 'machine_measurements.csv'));
    assert.throws(() => readMimicEcgManifest(root), /machine_measurements\.csv.*not found/);
  });

  it('builds a DataFrame', function () {
    try {
      loadPolars();
    } catch {
      // npm leaves out the nodejs-polars native package where its Node engine range excludes this Node.
      this.skip();
    }
    writeRecord(root, 'files/p1000/p10000032/s40689238/40689238');
    const frame = readMimicEcgManifest(root).toDataFrame();
    assert.strictEqual(frame.height, 1);
    assert.deepStrictEqual(frame.getColumn('report').toArray(), [reportsExpected.ecg[0].all]);
  });
});
