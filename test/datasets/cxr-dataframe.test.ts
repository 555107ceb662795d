// DataFrames of the X-ray manifests, checked row by row against the manifest records they come from.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type * as Polars from 'nodejs-polars';
import {
  CHEXPERT_OBSERVATIONS, loadChexpertManifest, loadEdemaSeverity, loadMimicCxrManifest, MimicCxrRecord, pairXrayEcg,
} from '../../src/datasets/cxr';
import { columnsToDataFrame, loadPolars } from '../../src/datasets/ecg/manifest';
import { getLogLevel, setLogLevel } from '../../src/util/log';

const polars = loadPolars();

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'more-cxr-frame-'));
}

function touch(file: string, text = 'x'): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

/** Column name to dtype, as polars prints it. */
function dtypesOf(frame: Polars.DataFrame): Record<string, string> {
  const result: Record<string, string> = {};
  frame.columns.forEach((name, index) => {
    result[name] = String(frame.dtypes[index]);
  });
  return result;
}

function column(frame: Polars.DataFrame, name: string): unknown[] {
  return frame.getColumn(name).toArray() as unknown[];
}

const INT64 = String(polars.Int64);
const FLOAT64 = String(polars.Float64);
const FLOAT32 = String(polars.Float32);
const UINT8 = String(polars.UInt8);
const STRING = String(polars.String);
const DATETIME = String(polars.Datetime('ms'));

const MIMIC_COLUMNS = [
  'dicom_id', 'subject_id', 'study_id', 'ViewPosition', 'study_time', 'split', 'official_split', 'image_path', 'report_path',
  ...CHEXPERT_OBSERVATIONS,
];

interface MimicRow { dicom: string; subject: number; study: number; view: string; date: string; time: string; split?: string }

/** Writes a MIMIC-CXR-JPG layout. Every study gets Edema 1.0, Cardiomegaly -1.0 and a blank No Finding. */
function writeMimic(root: string, rows: MimicRow[], options: { missingImages?: string[]; missingReports?: number[] } = {}): void {
  const metadata = ['dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime'];
  const split = ['dicom_id,study_id,subject_id,split'];
  const chexpert = [`subject_id,study_id,${CHEXPERT_OBSERVATIONS.join(',')}`];
  const studies = new Set<number>();
  for (const row of rows) {
    metadata.push(`${row.dicom},${row.subject},${row.study},"CHEST (PA AND LAT)",${row.view},3056,2544,${row.date},${row.time}`);
    if (row.split !== undefined) split.push(`${row.dicom},${row.study},${row.subject},${row.split}`);
    const folder = path.join(root, 'files', `p${String(row.subject).slice(0, 2)}`, `p${row.subject}`, `s${row.study}`);
    if (!(options.missingImages ?? []).includes(row.dicom)) touch(path.join(folder, `${row.dicom}.jpg`));
    if (studies.has(row.study)) continue;
    studies.add(row.study);
    if (!(options.missingReports ?? []).includes(row.study)) touch(`${folder}.txt`, 'FINDINGS: clear.');
    const special: Record<string, string> = { Edema: '1.0', Cardiomegaly: '-1.0', 'No Finding': '' };
    chexpert.push(`${row.subject},${row.study},${CHEXPERT_OBSERVATIONS.map((name) => special[name] ?? '0.0').join(',')}`);
  }
  fs.writeFileSync(path.join(root, 'mimic-cxr-2.0.0-metadata.csv'), metadata.join('\n') + '\n');
  fs.writeFileSync(path.join(root, 'mimic-cxr-2.0.0-split.csv'), split.join('\n') + '\n');
  fs.writeFileSync(path.join(root, 'mimic-cxr-2.0.0-chexpert.csv'), chexpert.join('\n') + '\n');
}

const MIMIC_ROWS: MimicRow[] = [
  { dicom: 'a1', subject: 10000032, study: 50414267, view: 'PA', date: '21800506', time: '213014.531', split: 'train' },
  { dicom: 'a2', subject: 10000032, study: 50414267, view: 'LATERAL', date: '21800506', time: '213014.531', split: 'train' },
  { dicom: 'b1', subject: 10000764, study: 57375967, view: 'AP', date: '21321014', time: '91914', split: 'validate' },
  { dicom: 'c1', subject: 11000011, study: 51111111, view: 'PA', date: '21500101', time: '120000', split: 'test' },
  { dicom: 'd1', subject: 12000012, study: 52222222, view: 'PA', date: '21500101', time: '120000' },
  { dicom: 'e1', subject: 13000013, study: 53333333, view: 'PA', date: '21500101', time: '120000', split: 'train' },
];

// The log level changes stay inside this file's tests: a root-level hook
// would change it for every file of the run.
describe('datasets/cxr DataFrames', () => {
  let savedLevel: ReturnType<typeof getLogLevel>;
  before(() => {
    savedLevel = getLogLevel();
    setLogLevel('warn');
  });
  after(() => setLogLevel(savedLevel));

  describe('datasets/cxr MIMIC-CXR-JPG DataFrame', () => {
    it('matches the records column by column', () => {
      const root = tempDir();
      writeMimic(root, MIMIC_ROWS, { missingImages: ['e1'], missingReports: [51111111] });
      const manifest = loadMimicCxrManifest({ root, holdOutFraction: 0 });
      const frame = manifest.toDataFrame();
      const { records } = manifest;

      assert.equal(records.length, 3);
      assert.equal(frame.height, records.length);
      assert.deepEqual(frame.columns, MIMIC_COLUMNS);
      const dtypes = dtypesOf(frame);
      for (const name of ['dicom_id', 'ViewPosition', 'split', 'official_split', 'image_path', 'report_path']) assert.equal(dtypes[name], STRING, name);
      for (const name of ['subject_id', 'study_id']) assert.equal(dtypes[name], INT64, name);
      assert.equal(dtypes.study_time, DATETIME);
      for (const name of CHEXPERT_OBSERVATIONS) assert.equal(dtypes[name], FLOAT64, name);

      assert.deepEqual(column(frame, 'dicom_id'), records.map((r) => r.dicomId));
      assert.deepEqual(column(frame, 'subject_id').map(Number), records.map((r) => r.subjectId));
      assert.deepEqual(column(frame, 'study_id').map(Number), records.map((r) => r.studyId));
      assert.deepEqual(column(frame, 'ViewPosition'), ['PA', 'AP', 'PA']);
      assert.deepEqual(column(frame, 'split'), ['train', 'validate', 'test']);
      assert.deepEqual(column(frame, 'image_path'), records.map((r) => r.imagePath));
      assert.deepEqual(column(frame, 'report_path'), [records[0].reportPath, records[1].reportPath, null]);
      const times = column(frame, 'study_time') as Date[];
      assert.deepEqual(times.map((time) => time.toISOString()), records.map((r) => r.studyTime.toISOString()));
      assert.equal(times[0].toISOString(), '2180-05-06T21:30:14.531Z');
      assert.deepEqual(column(frame, 'Edema'), [1, 1, 1]);
      assert.deepEqual(column(frame, 'Cardiomegaly'), [-1, -1, -1]);
      assert.deepEqual(column(frame, 'No Finding'), [null, null, null]);
      assert.deepEqual(column(frame, 'Pneumonia'), [0, 0, 0]);
    });

    it('keeps the split and official split apart', () => {
      const root = tempDir();
      const rows: MimicRow[] = [];
      for (let s = 0; s < 10; s++) {
        rows.push({ dicom: `d${s}`, subject: 10000000 + s, study: 50000000 + s, view: 'PA', date: '21500101', time: '1', split: 'train' });
      }
      writeMimic(root, rows);
      const manifest = loadMimicCxrManifest({ root, holdOutFraction: 0.3, seed: 4 });
      const frame = manifest.toDataFrame();
      assert.equal(frame.height, 10);
      assert.deepEqual(column(frame, 'split'), manifest.records.map((r) => r.split));
      assert.deepEqual(column(frame, 'official_split'), rows.map(() => 'train'));
      assert.equal(column(frame, 'split').filter((split) => split === 'validate').length, 3);
    });

    it('gives an empty manifest typed columns', () => {
      const root = tempDir();
      writeMimic(root, [{ dicom: 'x1', subject: 10000001, study: 50000001, view: 'LL', date: '21500101', time: '1', split: 'train' }]);
      const manifest = loadMimicCxrManifest({ root });
      const frame = manifest.toDataFrame();
      assert.equal(manifest.records.length, 0);
      assert.equal(frame.height, 0);
      assert.deepEqual(frame.columns, MIMIC_COLUMNS);
      assert.equal(dtypesOf(frame).subject_id, INT64);
    });
  });

  describe('datasets/cxr CheXpert DataFrame', () => {
    const observations = ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Pleural Effusion'];

    function writeChexpert(): string {
      const parent = tempDir();
      const root = path.join(parent, 'CheXpert-v1.0-small');
      fs.mkdirSync(root);
      const labels = (values: Record<string, string>): string => CHEXPERT_OBSERVATIONS.map((name) => values[name] ?? '').join(',');
      touch(path.join(root, 'train/patient00001/study1/view1_frontal.jpg'));
      touch(path.join(root, 'train/patient00002/study1/view1_frontal.jpg'));
      touch(path.join(root, 'train/patient00002/study1/view2_lateral.jpg'));
      const lines = [
        `Path,Sex,Age,Frontal/Lateral,AP/PA,${CHEXPERT_OBSERVATIONS.join(',')}`,
        `CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,${labels({ Edema: '1.0', Atelectasis: '-1.0', Cardiomegaly: '0.0' })}`,
        `CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg,Male,,Frontal,PA,${labels({ Atelectasis: '-1.0', 'Pleural Effusion': '-1.0' })}`,
        `CheXpert-v1.0-small/train/patient00002/study1/view2_lateral.jpg,Male,,Lateral,,${labels({ Edema: '0.0' })}`,
      ];
      fs.writeFileSync(path.join(root, 'train.csv'), lines.join('\n') + '\n');
      return root;
    }

    it('has published, label and mask columns', () => {
      const root = writeChexpert();
      const manifest = loadChexpertManifest({ root, split: 'train', policy: 'ignore', observations, frontalOnly: false });
      const frame = manifest.toDataFrame();
      const { records } = manifest;

      assert.equal(records.length, 3);
      assert.equal(frame.height, records.length);
      assert.deepEqual(frame.columns, [
        'Path', 'Sex', 'Age', 'Frontal/Lateral', 'AP/PA', ...observations, 'image_path',
        ...observations.map((name) => `label_${name}`), ...observations.map((name) => `mask_${name}`),
      ]);
      const dtypes = dtypesOf(frame);
      for (const name of ['Path', 'Sex', 'Frontal/Lateral', 'AP/PA', 'image_path']) assert.equal(dtypes[name], STRING, name);
      assert.equal(dtypes.Age, FLOAT64);
      for (const name of observations) {
        assert.equal(dtypes[name], FLOAT64, name);
        assert.equal(dtypes[`label_${name}`], FLOAT32, name);
        assert.equal(dtypes[`mask_${name}`], UINT8, name);
      }

      assert.deepEqual(column(frame, 'Path'), records.map((r) => r.path));
      assert.deepEqual(column(frame, 'image_path'), records.map((r) => r.imagePath));
      assert.deepEqual(column(frame, 'Sex'), ['Female', 'Male', 'Male']);
      assert.deepEqual(column(frame, 'Age'), [68, null, null]);
      assert.deepEqual(column(frame, 'Frontal/Lateral'), ['Frontal', 'Frontal', 'Lateral']);
      assert.deepEqual(column(frame, 'AP/PA'), ['AP', 'PA', '']);
      observations.forEach((name, index) => {
        assert.deepEqual(column(frame, name), records.map((r) => r.raw[index]), name);
        assert.deepEqual(column(frame, `label_${name}`), records.map((r) => r.labels.values[index]), name);
        assert.deepEqual(column(frame, `mask_${name}`), records.map((r) => r.labels.mask[index]), name);
      });
    });

    it('masks uncertain labels under U-Ignore only', () => {
      const root = writeChexpert();
      const ignore = loadChexpertManifest({ root, split: 'train', policy: 'ignore', observations }).toDataFrame();
      assert.equal(ignore.height, 2);
      assert.deepEqual(column(ignore, 'Atelectasis'), [-1, -1]);
      assert.deepEqual(column(ignore, 'mask_Atelectasis'), [0, 0]);
      assert.deepEqual(column(ignore, 'label_Atelectasis'), [0, 0]);
      assert.deepEqual(column(ignore, 'mask_Pleural Effusion'), [1, 0]);
      assert.deepEqual(column(ignore, 'mask_Edema'), [1, 1]);
      assert.deepEqual(column(ignore, 'label_Edema'), [1, 0]);

      const ones = loadChexpertManifest({ root, split: 'train', policy: 'ones', observations }).toDataFrame();
      assert.deepEqual(column(ones, 'mask_Atelectasis'), [1, 1]);
      assert.deepEqual(column(ones, 'label_Atelectasis'), [1, 1]);
      assert.deepEqual(column(ones, 'label_Pleural Effusion'), [0, 1]);
    });
  });

  function image(dicomId: string, subjectId: number, studyId: number, time: string): MimicCxrRecord {
    return {
      dicomId, subjectId, studyId, viewPosition: 'PA', studyTime: new Date(time), split: 'train', officialSplit: 'train',
      imagePath: `/data/${dicomId}.jpg`,
    };
  }

  describe('datasets/cxr edema severity DataFrame', () => {
    it('adds edema_severity to the MIMIC columns', () => {
      const root = tempDir();
      const images = [
        image('d1', 10062617, 55170181, '2150-01-01T00:00:00Z'),
        image('d2', 10062617, 55170181, '2150-01-01T00:00:00Z'),
        image('d3', 10216097, 50944321, '2150-02-01T00:00:00Z'),
      ];
      fs.writeFileSync(path.join(root, 'regex_report_edema_severity.csv'),
        'subject_id,study_id,edema_severity\n10062617,55170181,2\n10216097,50944321,3\n10000980,54577367,0\n');
      const manifest = loadEdemaSeverity({ root, source: 'regex', images });
      const frame = manifest.toDataFrame();

      assert.equal(manifest.records.length, 3);
      assert.equal(frame.height, manifest.records.length);
      assert.deepEqual(frame.columns, [...MIMIC_COLUMNS, 'edema_severity']);
      assert.equal(dtypesOf(frame).edema_severity, INT64);
      assert.deepEqual(column(frame, 'edema_severity').map(Number), [2, 2, 3]);
      assert.deepEqual(column(frame, 'dicom_id'), ['d1', 'd2', 'd3']);
      assert.deepEqual(column(frame, 'report_path'), [null, null, null]);
      assert.deepEqual(column(frame, 'Edema'), [null, null, null]);
    });
  });

  describe('datasets/cxr pairing DataFrame', () => {
    const xrays = [
      { id: 'x1', subjectId: 1, time: new Date('2150-01-10T12:00:00Z') },
      { id: 'x2', subjectId: 1, time: new Date('2150-06-01T00:00:00Z') },
      { id: 'x3', subjectId: 2, time: new Date('2150-01-01T00:00:00Z') },
      { id: 'x4', subjectId: 3, time: new Date('2150-01-01T00:00:00Z') },
    ];
    const ecgs = [
      { id: 'e1', subjectId: 1, time: new Date('2150-01-01T00:00:00Z') },
      { id: 'e2', subjectId: 1, time: new Date('2150-01-12T00:00:00Z') },
      { id: 'e3', subjectId: 2, time: new Date('2150-03-03T00:00:00Z') },
      { id: 'e4', subjectId: 3, time: new Date('2150-02-28T00:00:00Z') },
    ];
    const read = (record: { subjectId: number; time: Date }): { subjectId: number; time: Date } => record;

    it('lists pairs with gap days and nulls when unpaired', () => {
      const pairing = pairXrayEcg(xrays, ecgs, read, read, { keepUnpaired: true });
      const frame = pairing.toDataFrame({ xray_id: (pair) => pair.xray.id, ecg_id: (pair) => pair.ecg?.id ?? null });

      assert.equal(frame.height, pairing.pairs.length);
      assert.deepEqual(frame.columns, ['subject_id', 'xray_index', 'xray_time', 'ecg_index', 'ecg_time', 'gap_days', 'xray_id', 'ecg_id']);
      const dtypes = dtypesOf(frame);
      for (const name of ['subject_id', 'xray_index', 'ecg_index']) assert.equal(dtypes[name], INT64, name);
      for (const name of ['xray_time', 'ecg_time']) assert.equal(dtypes[name], DATETIME, name);
      assert.equal(dtypes.gap_days, FLOAT64);
      assert.equal(dtypes.xray_id, STRING);

      assert.deepEqual(column(frame, 'xray_id'), pairing.pairs.map((pair) => pair.xray.id));
      assert.deepEqual(column(frame, 'ecg_id'), ['e2', null, null, 'e4']);
      assert.deepEqual(column(frame, 'xray_index').map(Number), [0, 1, 2, 3]);
      assert.deepEqual(column(frame, 'ecg_index').map((value) => (value === null ? null : Number(value))), [1, null, null, 3]);
      assert.deepEqual(column(frame, 'gap_days'), pairing.pairs.map((pair) => pair.gapDays ?? null));
      assert.deepEqual(column(frame, 'gap_days'), [1.5, null, null, 58]);
      const ecgTimes = column(frame, 'ecg_time') as (Date | null)[];
      assert.deepEqual(ecgTimes.map((time) => time?.toISOString() ?? null), ['2150-01-12T00:00:00.000Z', null, null, '2150-02-28T00:00:00.000Z']);
    });

    it('has one row per kept pair', () => {
      const pairing = pairXrayEcg(xrays, ecgs, read, read);
      const frame = pairing.toDataFrame();
      assert.equal(pairing.pairs.length, 2);
      assert.equal(frame.height, 2);
      assert.deepEqual(column(frame, 'subject_id').map(Number), [1, 3]);
    });

    it('rejects an extra column that repeats a name', () => {
      const pairing = pairXrayEcg(xrays, ecgs, read, read);
      assert.throws(() => pairing.toDataFrame({ gap_days: () => 0 }), /Extra column "gap_days" repeats a pairing column/);
    });
  });

  describe('datasets columnsToDataFrame', () => {
    it('rejects columns of different lengths', () => {
      assert.throws(() => columnsToDataFrame({ a: [1, 2], b: [1] }), /Columns differ in length: a has 2 rows but b has 1/);
    });

    it('rejects a dtype for a missing column', () => {
      assert.throws(() => columnsToDataFrame({ a: [1] }, { b: 'Int64' }), /dtypes name columns that do not exist: b/);
    });
  });
});
