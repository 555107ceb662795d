import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import {
  buildReportPairs,
  chexpertLabelNote,
  cleanReportText,
  ECG_NOTE_NOT_AVAILABLE,
  encodeReportPairs,
  extractFindingsAndImpression,
  joinEcgReport,
  mimicCxrReportPath,
  prefixReportPair,
  prepareXrayReport,
  readMimicCxrReport,
} from '../../src/datasets/reports';
import { ReportTokenizer } from '../../src/datasets/tokenizer';
import { LogRecord, setLogSink } from '../../src/util/log';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'datasets', 'text');

// Produced by reference/datasets_text.py, which restates the report rules in Python.
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'reports_expected.json'), 'utf8')) as {
  reports: Record<string, { input: string; sections: string; output: string | null }>;
  labels: { labels: Record<string, number | null>; note: string | null }[];
  ecg: { lines: (string | null)[]; all: string; reference: string }[];
};

describe('datasets/reports', () => {
  describe('X-ray report text', () => {
    for (const [name, report] of Object.entries(expected.reports)) {
      it(`prepares report ${name}`, () => {
        assert.strictEqual(extractFindingsAndImpression(report.input), report.sections);
        assert.strictEqual(prepareXrayReport(report.input), report.output);
      });
    }

    it('drops sentences with clock times', () => {
      assert.strictEqual(cleanReportText('Lungs clear. Called at 10:42 today. Heart normal.'), 'Lungs clear. Heart normal.');
      assert.strictEqual(cleanReportText('Seen at 4 p.m. by Dr. ___ today. No effusion.'), 'No effusion.');
    });

    it('drops underscores and collapses whitespace', () => {
      assert.strictEqual(cleanReportText('  ___F  with\n\n cough\t here. '), 'F with cough here.');
    });
  });

  describe('CheXpert label note', () => {
    expected.labels.forEach((testCase, index) => {
      it(`writes note ${index}`, () => {
        assert.strictEqual(chexpertLabelNote(testCase.labels), testCase.note);
      });
    });

    it('rejects an invalid label value', () => {
      assert.throws(() => chexpertLabelNote({ Edema: 2 }), /Invalid CheXpert value 2 for "Edema"/);
      assert.throws(() => chexpertLabelNote({ Effusion: 1 }), /Invalid CheXpert observation "Effusion"/);
    });
  });

  describe('ECG machine report', () => {
    expected.ecg.forEach((testCase, index) => {
      it(`joins statement lines ${index}`, () => {
        assert.strictEqual(joinEcgReport(testCase.lines), testCase.all);
        assert.strictEqual(joinEcgReport(testCase.lines, 'reference'), testCase.reference);
      });
    });

    it('writes the fallback when empty', () => {
      assert.strictEqual(joinEcgReport([]), ECG_NOTE_NOT_AVAILABLE);
      assert.strictEqual(joinEcgReport(['', 'nan', null]), 'ECG note not available.');
    });

    it('cuts at report_6 in reference mode', () => {
      const lines = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
      assert.strictEqual(joinEcgReport(lines, 'reference'), 'a b c d e f g');
      assert.strictEqual(joinEcgReport(lines), 'a b c d e f g h');
    });
  });

  describe('report pairs', () => {
    let records: LogRecord[];
    let previousSink: ReturnType<typeof setLogSink>;

    beforeEach(() => {
      records = [];
      previousSink = setLogSink((record) => records.push(record));
    });

    afterEach(() => {
      setLogSink(previousSink);
    });

    it('prefixes both reports', () => {
      assert.deepStrictEqual(prefixReportPair('x', 'y'), ['The report from Xray is: x', 'The report from ECG is: y']);
    });

    it('skips a study without report text', () => {
      const ecgLines = expected.ecg[0].lines;
      const { pairs, skipped } = buildReportPairs([
        { id: 's1', xrayReport: expected.reports.s1.input, ecgLines },
        { id: 's2', xrayReport: expected.reports.s2.input, ecgLines: [] },
        { id: 's3', xrayReport: expected.reports.s3.input, ecgLines },
      ]);
      assert.deepStrictEqual(pairs.map((pair) => pair.id), ['s1', 's2']);
      assert.strictEqual(pairs[0].first, `The report from Xray is: ${expected.reports.s1.output}`);
      assert.strictEqual(pairs[0].second, `The report from ECG is: ${expected.ecg[0].all}`);
      assert.strictEqual(pairs[1].first, `The report from Xray is: ${expected.reports.s2.output}`);
      assert.strictEqual(pairs[1].second, 'The report from ECG is: ECG note not available.');
      for (const pair of pairs) {
        const text = `${pair.first} ${pair.second}`;
        assert.ok(!/undefined|\bnan\b|null/i.test(text), `placeholder text in ${text}`);
      }
      assert.strictEqual(skipped.count, 1);
      assert.deepStrictEqual(skipped.ids, ['s3']);
      assert.deepStrictEqual(skipped.reasons, { 'no X-ray report text': 1 });
      assert.strictEqual(records.length, 1);
      assert.match(records[0].message, /Skipped 1 of 3 studies/);
    });

    it('falls back to the label note', () => {
      const { pairs, skipped } = buildReportPairs([
        { id: 'a', xrayReport: 'nan', chexpertLabels: { Cardiomegaly: 1, Edema: -1 } },
        { id: 'b', xrayReport: null, chexpertLabels: { Edema: 0 } },
      ]);
      assert.strictEqual(pairs.length, 1);
      assert.strictEqual(pairs[0].first, 'The report from Xray is: Cardiomegaly is present. uncertain finding of Edema');
      assert.strictEqual(pairs[0].xraySource, 'labels');
      assert.deepStrictEqual(skipped.reasons, { 'no X-ray report text and no positive or uncertain label': 1 });
    });

    it('tokenises only the kept pairs', () => {
      const tokenizer = ReportTokenizer.fromFolder(path.join(FIXTURES, 'roberta_bpe'));
      const { pairs } = buildReportPairs([
        { id: 's1', xrayReport: expected.reports.s1.input },
        { id: 's5', xrayReport: expected.reports.s5.input },
        { id: 's2', xrayReport: expected.reports.s2.input },
      ]);
      const batch = encodeReportPairs(tokenizer, pairs, { maxLength: 40 });
      assert.deepStrictEqual(batch.ids, ['s1', 's2']);
      assert.strictEqual(batch.batchSize, 2);
      assert.strictEqual(batch.truncatedCount, 2);
      const single = tokenizer.encode(pairs[1].first, pairs[1].second, { maxLength: 40 });
      assert.deepStrictEqual(Array.from(batch.inputIds.subarray(40, 80)), single.inputIds);
      assert.ok(records.some((record) => /Truncated 2 of 2 report pairs to 40 tokens/.test(record.message)));
    });
  });

  describe('MIMIC-CXR report files', () => {
    it('builds the report path', () => {
      assert.strictEqual(mimicCxrReportPath(10000032, 50414267), 'files/p10/p10000032/s50414267.txt');
      assert.throws(() => mimicCxrReportPath('../x', 1), /Invalid MIMIC-CXR ids/);
    });

    it('reads a report or returns null', () => {
      const root = fs.mkdtempSync(path.join(os.tmpdir(), 'more-reports-'));
      try {
        fs.mkdirSync(path.join(root, 'files', 'p10', 'p10000032'), { recursive: true });
        fs.writeFileSync(path.join(root, 'files', 'p10', 'p10000032', 's5.txt'), expected.reports.s2.input);
        assert.strictEqual(readMimicCxrReport(root, 10000032, 5), expected.reports.s2.input);
        assert.strictEqual(readMimicCxrReport(root, 10000032, 6), null);
      } finally {
        fs.rmSync(root, { recursive: true, force: true });
      }
    });
  });
});
