// X-ray dataset manifests on small tables written by the tests in the published layouts.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import {
  applyUncertaintyPolicy, CHEXPERT_OBSERVATIONS, loadChexpertManifest, loadEdemaSeverity, loadMimicCxrManifest,
  MimicCxrRecord, pairXrayEcg, parseCsv, parseStudyDateTime, readCsv,
} from '../../src/datasets/cxr';
import { UnsafePathError } from '../../src/datasets/paths';
import { setLogLevel, getLogLevel } from '../../src/util/log';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'datasets', 'xray');
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as {
  chexpertTable: { header: string[]; rows: string[][] };
};

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'more-cxr-'));
}

function touch(file: string, text = 'x'): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

const OBSERVATION_HEADER = CHEXPERT_OBSERVATIONS.join(',');
const BLANK_LABELS = CHEXPERT_OBSERVATIONS.map(() => '').join(',');

interface MimicRow { dicom: string; subject: number; study: number; view: string; date: string; time: string; split?: string }

/** Writes a MIMIC-CXR-JPG layout; images and reports exist unless listed as missing. */
function writeMimic(root: string, rows: MimicRow[], options: { missingImages?: string[]; missingReports?: number[]; gzip?: boolean } = {}): void {
  const metadata = ['dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime'];
  const split = ['dicom_id,study_id,subject_id,split'];
  const chexpert = [`subject_id,study_id,${OBSERVATION_HEADER}`];
  const studies = new Set<number>();
  for (const row of rows) {
    metadata.push(`${row.dicom},${row.subject},${row.study},"CHEST (PA AND LAT)",${row.view},3056,2544,${row.date},${row.time}`);
    if (row.split !== undefined) split.push(`${row.dicom},${row.study},${row.subject},${row.split}`);
    const folder = path.join(root, 'files', `p${String(row.subject).slice(0, 2)}`, `p${row.subject}`, `s${row.study}`);
    if (!(options.missingImages ?? []).includes(row.dicom)) touch(path.join(folder, `${row.dicom}.jpg`));
    if (!studies.has(row.study)) {
      studies.add(row.study);
      if (!(options.missingReports ?? []).includes(row.study)) touch(`${folder}.txt`, 'FINDINGS: clear.');
      const special: Record<string, string> = { Edema: '1.0', Cardiomegaly: '-1.0', 'No Finding': '' };
      const labels = CHEXPERT_OBSERVATIONS.map((name) => special[name] ?? '0.0');
      chexpert.push(`${row.subject},${row.study},${labels.join(',')}`);
    }
  }
  fs.writeFileSync(path.join(root, 'mimic-cxr-2.0.0-metadata.csv'), metadata.join('\n') + '\n');
  const splitText = split.join('\n') + '\n';
  if (options.gzip) fs.writeFileSync(path.join(root, 'mimic-cxr-2.0.0-split.csv.gz'), zlib.gzipSync(splitText));
  else fs.writeFileSync(path.join(root, 'mimic-cxr-2.0.0-split.csv'), splitText);
  fs.writeFileSync(path.join(root, 'mimic-cxr-2.0.0-chexpert.csv'), chexpert.join('\n') + '\n');
}

// The log level changes stay inside this file's tests: a root-level hook
// would change it for every file of the run.
describe('datasets/cxr', () => {
  let savedLevel: ReturnType<typeof getLogLevel>;
  before(() => {
    savedLevel = getLogLevel();
    setLogLevel('warn');
  });
  after(() => setLogLevel(savedLevel));

  describe('datasets/cxr CSV reader', () => {
    it('reads the CheXpert-labeler table like pandas', () => {
      const table = readCsv(path.join(FIXTURES, 'chexpert_labeled_reports.csv'));
      assert.deepEqual(table.header, expected.chexpertTable.header);
      assert.deepEqual(table.rows.map((row) => row.cells), expected.chexpertTable.rows);
      assert.deepEqual(table.rows.map((row) => row.line), [2, 3, 6]);
    });

    it('rejects a row with extra cells', () => {
      assert.throws(() => parseCsv('a,b\n1,2\n3,4,5\n', 'bad.csv'), /Invalid CSV bad\.csv line 3: 3 cells, expected 2/);
    });

    it('rejects an unclosed quote', () => {
      assert.throws(() => parseCsv('a,b\n"1,2\n3,4\n', 'open.csv'), /open\.csv: the quoted cell opened on line 2 is never closed/);
    });

    it('reads CRLF line ends and a BOM', () => {
      const table = parseCsv('\ufeffa,b\r\n1,"x,y"\r\n', 'crlf.csv');
      assert.deepEqual(table.header, ['a', 'b']);
      assert.deepEqual(table.rows[0].cells, ['1', 'x,y']);
    });
  });

  describe('datasets/cxr uncertainty policies', () => {
    const raw = [1, 0, -1, null] as const;
    const cases: [string, number[], number[]][] = [
      ['ones', [1, 0, 1, 0], [1, 1, 1, 1]],
      ['zeros', [1, 0, 0, 0], [1, 1, 1, 1]],
      ['ignore', [1, 0, 0, 0], [1, 1, 0, 1]],
    ];
    for (const [policy, values, mask] of cases) {
      it(`maps labels under U-${policy}`, () => {
        const out = applyUncertaintyPolicy([...raw], policy as 'ones');
        assert.deepEqual(Array.from(out.values), values);
        assert.deepEqual(Array.from(out.mask), mask);
      });
    }

    it('rejects an unknown policy', () => {
      assert.throws(() => applyUncertaintyPolicy([1], 'maybe' as 'ones'), /Invalid uncertainty policy "maybe": expected one of ones, zeros, ignore/);
    });
  });

  describe('datasets/cxr MIMIC-CXR-JPG', () => {
    it('parses StudyDate and StudyTime', () => {
      assert.equal(parseStudyDateTime('21800723', '084400.123')?.toISOString(), '2180-07-23T08:44:00.123Z');
      assert.equal(parseStudyDateTime('21800723', '5223.5')?.toISOString(), '2180-07-23T00:52:23.500Z');
      assert.equal(parseStudyDateTime('21800723', '')?.toISOString(), '2180-07-23T00:00:00.000Z');
      assert.equal(parseStudyDateTime('21800231', '120000'), undefined);
      assert.equal(parseStudyDateTime('2180-07-23', '120000'), undefined);
      assert.equal(parseStudyDateTime('21800723', '250000'), undefined);
    });

    it('keeps frontal images with splits, labels and reports', () => {
      const root = tempDir();
      writeMimic(root, [
        { dicom: 'a1', subject: 10000032, study: 50414267, view: 'PA', date: '21800506', time: '213014.531', split: 'train' },
        { dicom: 'a2', subject: 10000032, study: 50414267, view: 'LATERAL', date: '21800506', time: '213014.531', split: 'train' },
        { dicom: 'b1', subject: 10000764, study: 57375967, view: 'AP', date: '21321014', time: '91914', split: 'validate' },
        { dicom: 'c1', subject: 11000011, study: 51111111, view: 'PA', date: '21500101', time: '120000', split: 'test' },
        { dicom: 'd1', subject: 12000012, study: 52222222, view: 'PA', date: '21500101', time: '120000' },
        { dicom: 'e1', subject: 13000013, study: 53333333, view: 'PA', date: '21500101', time: '120000', split: 'train' },
        { dicom: 'f1', subject: 14000014, study: 54444444, view: 'PA', date: 'bad', time: '120000', split: 'train' },
      ], { missingImages: ['e1'], missingReports: [51111111], gzip: true });
      const { records, summary } = loadMimicCxrManifest({ root, holdOutFraction: 0 });
      assert.deepEqual(records.map((r) => r.dicomId), ['a1', 'b1', 'c1']);
      assert.deepEqual(records.map((r) => r.split), ['train', 'validate', 'test']);
      assert.equal(records[0].imagePath, path.join(root, 'files/p10/p10000032/s50414267/a1.jpg'));
      assert.equal(records[0].reportPath, path.join(root, 'files/p10/p10000032/s50414267.txt'));
      assert.equal(records[2].reportPath, undefined);
      assert.equal(records[0].labels?.Edema, 1);
      assert.equal(records[0].labels?.Cardiomegaly, -1);
      assert.equal(records[0].labels?.['No Finding'], null);
      assert.equal(records[1].studyTime.toISOString(), '2132-10-14T09:19:14.000Z');
      assert.equal(summary.rowsRead, 7);
      assert.equal(summary.kept, 3);
      assert.deepEqual(summary.skipped, {
        'view position "LATERAL" is not PA or AP': 1,
        'no row in the split table': 1,
        'image file not found': 1,
        'invalid StudyDate or StudyTime': 1,
      });
      assert.deepEqual(summary.warnings, { 'report file not found': 1 });
      assert.deepEqual(summary.examples['image file not found'], ['e1']);
    });

    it('holds out train subjects by seed', () => {
      const root = tempDir();
      const rows: MimicRow[] = [];
      for (let s = 0; s < 100; s++) {
        for (let k = 0; k < 2; k++) {
          rows.push({ dicom: `d${s}_${k}`, subject: 10000000 + s, study: 50000000 + s * 10 + k, view: 'PA', date: '21500101', time: '1', split: 'train' });
        }
      }
      writeMimic(root, rows);
      const heldOut = (seed: number): number[] => {
        const { records } = loadMimicCxrManifest({ root, seed });
        return [...new Set(records.filter((r) => r.split === 'validate').map((r) => r.subjectId))].sort();
      };
      const first = heldOut(1);
      assert.equal(first.length, 2, 'expected 2% of 100 subjects');
      assert.deepEqual(heldOut(1), first);
      assert.notDeepEqual(heldOut(2), first);
      const { records } = loadMimicCxrManifest({ root, seed: 1 });
      for (const record of records) {
        assert.equal(record.officialSplit, 'train');
        // Both images of a held-out subject move together.
        assert.equal(record.split === 'validate', first.includes(record.subjectId));
      }
    });

    it('rejects a malformed metadata row naming the file and line', () => {
      const root = tempDir();
      writeMimic(root, [{ dicom: 'a1', subject: 10000032, study: 50414267, view: 'PA', date: '21800506', time: '1', split: 'train' }]);
      fs.appendFileSync(path.join(root, 'mimic-cxr-2.0.0-metadata.csv'), 'b1,10000033\n');
      assert.throws(() => loadMimicCxrManifest({ root }), /mimic-cxr-2\.0\.0-metadata\.csv line 3: 2 cells, expected 9/);
    });

    it('rejects an invalid subject id', () => {
      const root = tempDir();
      writeMimic(root, [{ dicom: 'a1', subject: 10000032, study: 50414267, view: 'PA', date: '21800506', time: '1', split: 'train' }]);
      const file = path.join(root, 'mimic-cxr-2.0.0-metadata.csv');
      fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(',10000032,', ',p10000032,'));
      assert.throws(() => loadMimicCxrManifest({ root }), /Invalid subject_id "p10000032" in .*metadata\.csv line 2/);
    });

    it('rejects a dicom id escaping the root', () => {
      const root = tempDir();
      writeMimic(root, [{ dicom: '../../../../../etc/passwd', subject: 10000032, study: 50414267, view: 'PA', date: '21800506', time: '1', split: 'train' }]);
      assert.throws(() => loadMimicCxrManifest({ root, checkFiles: false }), (error: Error) => {
        assert.ok(error instanceof UnsafePathError, error.name);
        assert.match(error.message, /metadata\.csv line 2/);
        return true;
      });
    });

    it('reports a missing table by name', () => {
      assert.throws(() => loadMimicCxrManifest({ root: tempDir() }), /mimic-cxr-2\.0\.0-metadata\.csv \(or .*\.gz\) not found/);
    });
  });

  describe('datasets/cxr CheXpert', () => {
    function writeChexpert(root: string, lines: string[]): void {
      const header = `Path,Sex,Age,Frontal/Lateral,AP/PA,${CHEXPERT_OBSERVATIONS.join(',')}`;
      fs.writeFileSync(path.join(root, 'train.csv'), [header, ...lines].join('\n') + '\n');
    }

    function labels(values: Record<string, string>): string {
      return CHEXPERT_OBSERVATIONS.map((name) => values[name] ?? '').join(',');
    }

    it('applies each policy and skips lateral views', () => {
      const parent = tempDir();
      const root = path.join(parent, 'CheXpert-v1.0-small');
      fs.mkdirSync(root);
      touch(path.join(root, 'train/patient00001/study1/view1_frontal.jpg'));
      touch(path.join(root, 'train/patient00002/study1/view1_frontal.jpg'));
      touch(path.join(root, 'train/patient00002/study1/view2_lateral.jpg'));
      writeChexpert(root, [
        `CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,${labels({ Edema: '1.0', Atelectasis: '-1.0', Cardiomegaly: '0.0' })}`,
        `CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg,Male,,Frontal,PA,${labels({ Atelectasis: '-1.0' })}`,
        `CheXpert-v1.0-small/train/patient00002/study1/view2_lateral.jpg,Male,,Lateral,,${labels({})}`,
        `CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg,Male,40,Frontal,PA,${labels({})}`,
      ]);
      const observations = ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Pleural Effusion'];
      const want: Record<string, { values: number[]; mask: number[] }> = {
        ones: { values: [1, 0, 0, 1, 0], mask: [1, 1, 1, 1, 1] },
        zeros: { values: [0, 0, 0, 1, 0], mask: [1, 1, 1, 1, 1] },
        ignore: { values: [0, 0, 0, 1, 0], mask: [0, 1, 1, 1, 1] },
      };
      for (const policy of ['ones', 'zeros', 'ignore'] as const) {
        const manifest = loadChexpertManifest({ root, split: 'train', policy, observations });
        assert.equal(manifest.records.length, 2, policy);
        const first = manifest.records[0];
        assert.deepEqual(Array.from(first.labels.values), want[policy].values, policy);
        assert.deepEqual(Array.from(first.labels.mask), want[policy].mask, policy);
        assert.deepEqual(first.raw, [-1, 0, null, 1, null]);
        assert.equal(first.imagePath, path.join(root, 'train/patient00001/study1/view1_frontal.jpg'));
        assert.equal(first.age, 68);
        assert.equal(manifest.records[1].age, undefined);
        assert.deepEqual(manifest.summary.skipped, { 'lateral view': 1, 'image file not found': 1 });
      }
    });

    it('rejects an invalid label naming the line', () => {
      const root = tempDir();
      touch(path.join(root, 'train/p1/s1/v1.jpg'));
      writeChexpert(root, [`train/p1/s1/v1.jpg,Male,50,Frontal,PA,${labels({ Edema: 'yes' })}`]);
      assert.throws(() => loadChexpertManifest({ root, split: 'train', policy: 'ones' }),
        /Invalid label "yes" for Edema in .*train\.csv line 2: expected 1, 0, -1 or blank/);
    });

    it('rejects a path escaping the root', () => {
      const root = tempDir();
      writeChexpert(root, [`../../outside.jpg,Male,50,Frontal,PA,${labels({})}`]);
      assert.throws(() => loadChexpertManifest({ root, split: 'train', policy: 'zeros' }), UnsafePathError);
    });

    it('rejects a short row naming the file', () => {
      const root = tempDir();
      writeChexpert(root, ['train/p1/s1/v1.jpg,Male,50']);
      assert.throws(() => loadChexpertManifest({ root, split: 'train', policy: 'zeros' }), /train\.csv line 2: 3 cells, expected 19/);
    });
  });

  function image(dicomId: string, subjectId: number, studyId: number, time: string): MimicCxrRecord {
    return {
      dicomId, subjectId, studyId, viewPosition: 'PA', studyTime: new Date(time), split: 'train', officialSplit: 'train',
      imagePath: `/data/${dicomId}.jpg`,
    };
  }

  describe('datasets/cxr edema severity', () => {
    const images = [
      image('d1', 10062617, 55170181, '2150-01-01T00:00:00Z'),
      image('d2', 10062617, 55170181, '2150-01-01T00:00:00Z'),
      image('d3', 10216097, 50944321, '2150-01-01T00:00:00Z'),
    ];

    it('joins per-image grades and skips unknown images', () => {
      const root = tempDir();
      fs.writeFileSync(path.join(root, 'consensus_image_edema_severity.csv'),
        'subject_id,study_id,dicom_id,edema_severity\n10062617,55170181,d1,0\n10216097,50944321,d3,3\n10228186,57118202,zz,1\n');
      const { records, summary } = loadEdemaSeverity({ root, source: 'consensus', images });
      assert.deepEqual(records.map((r) => [r.dicomId, r.edemaSeverity]), [['d1', 0], ['d3', 3]]);
      assert.deepEqual(summary.skipped, { 'image not among the frontal MIMIC-CXR-JPG images': 1 });
    });

    it('spreads per-study grades over the study images', () => {
      const root = tempDir();
      fs.writeFileSync(path.join(root, 'regex_report_edema_severity.csv'),
        'subject_id,study_id,edema_severity\n10062617,55170181,2\n10000980,54577367,0\n');
      const { records, summary } = loadEdemaSeverity({ root, source: 'regex', images });
      assert.deepEqual(records.map((r) => [r.dicomId, r.edemaSeverity]), [['d1', 2], ['d2', 2]]);
      assert.equal(summary.skipped['study has no frontal MIMIC-CXR-JPG image'], 1);
    });

    it('rejects a grade outside 0 to 3', () => {
      const root = tempDir();
      fs.writeFileSync(path.join(root, 'expert_report_edema_severity.csv'), 'subject_id,study_id,dicom_id,edema_severity\n10062617,55170181,d1,4\n');
      assert.throws(() => loadEdemaSeverity({ root, source: 'expert', images }), /Invalid edema_severity "4" in .* line 2/);
    });
  });

  describe('datasets/cxr X-ray and ECG pairing', () => {
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

    it('picks the nearest ECG within 60 days', () => {
      const { pairs, summary } = pairXrayEcg(xrays, ecgs, read, read);
      assert.deepEqual(pairs.map((p) => [p.xray.id, p.ecg?.id]), [['x1', 'e2'], ['x4', 'e4']]);
      assert.equal(pairs[0].gapDays, 1.5);
      assert.equal(pairs[1].gapDays, 58);
      assert.deepEqual(summary.skipped, { 'no ECG within 60 days': 2 });
    });

    it('widens the window on request', () => {
      const { pairs } = pairXrayEcg(xrays, ecgs, read, read, { windowDays: 61 });
      assert.deepEqual(pairs.map((p) => p.xray.id), ['x1', 'x3', 'x4']);
    });

    it('keeps unpaired X-rays on request', () => {
      const { pairs, summary } = pairXrayEcg(xrays, ecgs, read, read, { keepUnpaired: true });
      assert.equal(pairs.length, 4);
      assert.equal(pairs[1].ecg, undefined);
      assert.deepEqual(summary.warnings, { 'no ECG within 60 days': 2 });
    });
  });
});
