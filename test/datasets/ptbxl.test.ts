import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { parseScpCodes, PTBXL_SUPERCLASSES, ptbXlSplit, readPtbXlManifest } from '../../src/datasets/ptbxl';
import { loadPolars } from '../../src/datasets/ecg/manifest';
import { setLogSink } from '../../src/util/log';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'datasets', 'ecg');
const ROOT = path.join(FIXTURES, 'records', 'ptbxl');

// Produced by reference/datasets_ecg.py with pandas and ast.literal_eval over the same tables.
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'ptbxl_expected.json'), 'utf8')) as Record<
  string,
  { patient_id: number; fold: number; labels: number[]; filename_lr: string; filename_hr: string; report: string }
>;

function polarsLoads(): boolean {
  try {
    loadPolars();
    return true;
  } catch {
    return false;
  }
}

describe('datasets/ptbxl', () => {
  let previousSink: ReturnType<typeof setLogSink>;
  beforeEach(() => {
    previousSink = setLogSink(() => undefined);
  });
  afterEach(() => {
    setLogSink(previousSink);
  });

  it('derives superclass labels like pandas', () => {
    const manifest = readPtbXlManifest(ROOT, { checkFiles: false, dropUnlabelled: false });
    assert.strictEqual(manifest.records.length, Object.keys(expected).length);
    assert.deepStrictEqual(manifest.summary.skipped, {});
    assert.strictEqual(manifest.summary.rowsRead, manifest.records.length);
    for (const record of manifest.records) {
      const reference = expected[String(record.ecgId)];
      assert.ok(reference !== undefined, `ecg_id ${record.ecgId} not in the reference`);
      assert.deepStrictEqual(record.labels, reference.labels, `ecg_id ${record.ecgId}`);
      assert.strictEqual(record.strataFold, reference.fold);
      assert.strictEqual(record.patientId, reference.patient_id);
      assert.strictEqual(record.fileName, reference.filename_lr);
      assert.strictEqual(record.report, reference.report);
    }
  });

  it('counts rows without a superclass', () => {
    const manifest = readPtbXlManifest(ROOT, { checkFiles: false });
    const unlabelled = Object.values(expected).filter((row) => row.labels.every((value) => value === 0)).length;
    assert.ok(unlabelled > 0);
    assert.strictEqual(manifest.records.length, Object.keys(expected).length - unlabelled);
    assert.deepStrictEqual(manifest.summary.skipped, { 'no diagnostic superclass': unlabelled });
    assert.strictEqual(manifest.summary.kept, manifest.records.length);
  });

  it('skips rows whose record is absent', () => {
    const manifest = readPtbXlManifest(ROOT);
    assert.deepStrictEqual(manifest.records.map((record) => record.ecgId), [1, 2, 5]);
    assert.strictEqual(manifest.records[0].recordPath, path.join(ROOT, 'records100', '00000', '00001_lr'));
    const skipped = Object.values(manifest.summary.skipped).reduce((a, b) => a + b, 0);
    assert.strictEqual(skipped, Object.keys(expected).length - 3);
    assert.ok((manifest.summary.skipped['record file not found'] ?? 0) > 0);
  });

  it('uses 500 Hz file names on request', () => {
    const manifest = readPtbXlManifest(ROOT, { samplingRate: 500 });
    assert.deepStrictEqual(manifest.records.map((record) => record.fileName), ['records500/00000/00001_hr']);
  });

  it('splits folds 1-8, 9 and 10', () => {
    assert.strictEqual(ptbXlSplit(1), 'train');
    assert.strictEqual(ptbXlSplit(8), 'train');
    assert.strictEqual(ptbXlSplit(9), 'validation');
    assert.strictEqual(ptbXlSplit(10), 'test');
    assert.throws(() => ptbXlSplit(11), /Invalid strat_fold 11/);
    const manifest = readPtbXlManifest(ROOT, { checkFiles: false });
    for (const record of manifest.records) assert.strictEqual(record.split, ptbXlSplit(expected[String(record.ecgId)].fold));
  });

  it('parses Python dict codes', () => {
    assert.deepStrictEqual(parseScpCodes("{'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}", 'x'), { NORM: 100, LVOLT: 0, SR: 0 });
    assert.deepStrictEqual(parseScpCodes('{}', 'x'), {});
    assert.throws(() => parseScpCodes("{'NORM' 100}", 'db.csv line 4'), /Invalid scp_codes entry .* in db\.csv line 4/);
  });

  describe('malformed tables', () => {
    let root: string;
    const header = 'ecg_id,patient_id,report,scp_codes,strat_fold,filename_lr,filename_hr';

    beforeEach(() => {
      root = fs.mkdtempSync(path.join(os.tmpdir(), 'more-ptbxl-'));
      fs.copyFileSync(path.join(ROOT, 'scp_statements.csv'), path.join(root, 'scp_statements.csv'));
    });
    afterEach(() => {
      fs.rmSync(root, { recursive: true, force: true });
    });

    it('names the file and line of a bad row', () => {
      const rows = [header, `1,5.0,ok,"{'NORM': 100.0}",3,records100/1,records500/1`, `2,6.0,bad,"{'NORM': 100.0}",3,records100/2`];
      fs.writeFileSync(path.join(root, 'ptbxl_database.csv'), rows.join('\n') + '\n');
      assert.throws(() => readPtbXlManifest(root, { checkFiles: false }), /ptbxl_database\.csv line 3: 6 cells, expected 7/);
    });

    it('rejects an invalid fold', () => {
      fs.writeFileSync(path.join(root, 'ptbxl_database.csv'), `${header}\n1,5.0,ok,"{'NORM': 100.0}",0,a,b\n`);
      assert.throws(() => readPtbXlManifest(root, { checkFiles: false }), /Invalid strat_fold 0.* in .*ptbxl_database\.csv line 2/);
    });

    it('rejects a record path outside the root', () => {
      fs.writeFileSync(path.join(root, 'ptbxl_database.csv'), `${header}\n1,5.0,ok,"{'NORM': 100.0}",1,../../etc/x,b\n`);
      assert.throws(() => readPtbXlManifest(root), /ptbxl_database\.csv line 2.*outside the dataset root/);
    });

    it('reports a missing table', () => {
      assert.throws(() => readPtbXlManifest(root), /ptbxl_database\.csv: file not found/);
    });
  });

  it('builds a DataFrame', function () {
    if (!polarsLoads()) {
      // npm leaves out the nodejs-polars native package where its Node engine range excludes this Node.
      this.skip();
    }
    const frame = readPtbXlManifest(ROOT).toDataFrame();
    assert.deepStrictEqual(frame.columns, ['ecg_id', 'patient_id', 'strat_fold', 'split', 'filename', 'record_path', 'report', ...PTBXL_SUPERCLASSES]);
    assert.strictEqual(frame.height, 3);
  });
});
