import * as assert from 'assert';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import {
  parseWfdbHeader,
  readWfdbRecord,
  readWfdbRecordSync,
  selectTwelveLeads,
  TWELVE_LEADS,
  WfdbError,
} from '../../src/datasets/wfdb';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'datasets', 'ecg');
const RECORDS = path.join(FIXTURES, 'records');

// Fields are null where wfdb-python gives none (records joined from variable-layout segments).
interface ExpectedSignal {
  name: string | null;
  units: string | null;
  gain: number | null;
  baseline: number | null;
  digital_sha256: string | null;
  digital_head: number[] | null;
  physical: { stride: number; values: (number | null)[]; nan_count: number; sum: number };
}
interface ExpectedRecord {
  fs: number;
  sample_count: number;
  signals: ExpectedSignal[];
}

// Produced by reference/datasets_ecg.py with wfdb-python's rdrecord (digital and physical, float64).
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'wfdb_expected.json'), 'utf8')) as Record<string, ExpectedRecord>;

function sha256OfInt32(samples: Int32Array): string {
  return createHash('sha256').update(Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength)).digest('hex');
}

function writeRecord(folder: string, name: string, header: string, data: Record<string, number[] | Buffer>): string {
  fs.writeFileSync(path.join(folder, `${name}.hea`), header);
  for (const [file, bytes] of Object.entries(data)) {
    fs.writeFileSync(path.join(folder, file), Buffer.from(bytes as number[]));
  }
  return path.join(folder, name);
}

describe('datasets/wfdb', () => {
  let scratch: string;

  before(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'more-wfdb-'));
  });

  after(() => {
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  describe('records against wfdb-python', () => {
    for (const [name, reference] of Object.entries(expected)) {
      it(`reads ${name}`, () => {
        const record = readWfdbRecordSync(path.join(RECORDS, name));
        assert.strictEqual(record.samplingFrequency, reference.fs);
        assert.strictEqual(record.sampleCount, reference.sample_count);
        assert.strictEqual(record.physical.length, reference.signals.length);
        reference.signals.forEach((signal, index) => {
          const spec = record.header.signals[index];
          const label = `${name} signal ${index}`;
          assert.strictEqual(record.signalNames[index], signal.name ?? '', label);
          if (signal.units !== null) assert.strictEqual(spec.units, signal.units, label);
          if (signal.gain !== null) assert.strictEqual(spec.gain, signal.gain, label);
          if (signal.baseline !== null) assert.strictEqual(spec.baseline, signal.baseline, label);
          if (signal.digital_sha256 === null) {
            assert.strictEqual(record.digital, null, `${label}: wfdb-python has no digital values here`);
          } else {
            assert.deepStrictEqual(Array.from(record.digital![index].subarray(0, 8)), signal.digital_head, label);
            assert.strictEqual(sha256OfInt32(record.digital![index]), signal.digital_sha256, `${label}: digital samples differ`);
          }

          const physical = record.physical[index];
          let nanCount = 0;
          let sum = 0;
          for (const value of physical) {
            if (Number.isNaN(value)) nanCount++;
            else sum += value;
          }
          assert.strictEqual(nanCount, signal.physical.nan_count, label);
          assert.ok(Math.abs(sum - signal.physical.sum) <= 1e-9 * Math.max(1, Math.abs(sum)), `${label}: sum ${sum}`);
          signal.physical.values.forEach((value, k) => {
            const actual = physical[k * signal.physical.stride];
            if (value === null) {
              assert.ok(Number.isNaN(actual), `${label} sample ${k * signal.physical.stride}: expected NaN, got ${actual}`);
            } else {
              assert.ok(Math.abs(actual - value) <= 1e-9, `${label} sample ${k * signal.physical.stride}: ${actual} vs ${value}`);
            }
          });
        });
      });
    }
  });

  it('reads asynchronously the same values', async () => {
    const viaPromise = await readWfdbRecord(path.join(RECORDS, 'ptbdb', 's0010_re'));
    const viaSync = readWfdbRecordSync(path.join(RECORDS, 'ptbdb', 's0010_re.hea'));
    assert.strictEqual(viaPromise.physical.length, 15);
    viaSync.digital!.forEach((samples, index) => assert.deepStrictEqual(viaPromise.digital![index], samples));
  });

  it('joins a variable-layout multi-segment record', async () => {
    const record = await readWfdbRecord(path.join(RECORDS, 'multiseg', 'variable'));
    assert.strictEqual(record.header.segments?.length, 5);
    assert.deepStrictEqual(record.signalNames, ['MLII', 'V5']);
    assert.strictEqual(record.digital, null);
    // MLII is absent from the gap and from segment 2 (samples 1000-1999), V5 only from the gap.
    assert.ok(Number.isNaN(record.physical[0][1500]));
    assert.ok(Number.isNaN(record.physical[1][1100]));
    assert.ok(!Number.isNaN(record.physical[1][1500]));
    const twelve = () => selectTwelveLeads(record);
    assert.throws(twelve, /missing leads I, II/);
  });

  it('returns float32 physical values on request', () => {
    const record = readWfdbRecordSync(path.join(RECORDS, 'cases', 'y'), { physicalType: 'float32' });
    assert.ok(record.physical[0] instanceof Float32Array);
    assert.deepStrictEqual(Array.from(record.physical[0]), [1, Number.NaN, -1]);
  });

  it('defaults a zero gain and flags it', () => {
    const record = readWfdbRecordSync(path.join(RECORDS, 'cases', 'x'));
    assert.deepStrictEqual(Array.from(record.physical[0]), [2.0, -1.0]);
    assert.deepStrictEqual(Array.from(record.digital![0]), [405, -195]);
    const spec = record.header.signals[0];
    assert.strictEqual(spec.gain, 200);
    assert.strictEqual(spec.uncalibrated, true);
    assert.strictEqual(spec.baseline, 5);
    assert.strictEqual(spec.units, 'mV');
  });

  it('marks the invalid sample as NaN', () => {
    const record = readWfdbRecordSync(path.join(RECORDS, 'cases', 'y'));
    assert.deepStrictEqual(Array.from(record.physical[0]), [1.0, Number.NaN, -1.0]);
    assert.deepStrictEqual(Array.from(record.digital![0]), [200, -32768, -200]);
    assert.strictEqual(record.header.signals[0].uncalibrated, true);
  });

  it('parses comments, blank lines and base time', () => {
    const header = parseWfdbHeader(
      '# leading comment\nrec 2 125/1000(0) 10 19:46:25.757 01/10/1990\n\na.dat 16+24 29(3)/uV 12 1 7 -5 0 lead II\n# between\nb.dat 80\n',
      'rec.hea',
    );
    assert.strictEqual(header.samplingFrequency, 125);
    assert.strictEqual(header.baseTime, '19:46:25.757');
    assert.strictEqual(header.baseDate, '01/10/1990');
    assert.deepStrictEqual(header.comments, ['leading comment', 'between']);
    const [a, b] = header.signals;
    assert.strictEqual(a.byteOffset, 24);
    assert.strictEqual(a.gain, 29);
    assert.strictEqual(a.baseline, 3);
    assert.strictEqual(a.units, 'uV');
    assert.strictEqual(a.adcZero, 1);
    assert.strictEqual(a.initialValue, 7);
    assert.strictEqual(a.checksum, -5);
    assert.strictEqual(a.description, 'lead II');
    assert.strictEqual(b.format, 80);
    assert.strictEqual(b.uncalibrated, true);
  });

  it('parses the published MIT-BIH header', () => {
    // A comment before the record line and a blank line between the signal lines, as published.
    const file = path.join(FIXTURES, 'headers', '100.hea');
    const header = parseWfdbHeader(fs.readFileSync(file, 'latin1'), file);
    assert.strictEqual(header.recordName, '100');
    assert.strictEqual(header.sampleCount, 650000);
    assert.strictEqual(header.samplingFrequency, 360);
    assert.deepStrictEqual(header.comments, ['unnecessary comment', '69 M 1085 1629 x1', 'Aldomet, Inderal']);
    assert.deepStrictEqual(header.signals.map((signal) => signal.description), ['MLII', 'V5']);
    assert.deepStrictEqual(header.signals.map((signal) => signal.initialValue), [995, 1011]);
    assert.deepStrictEqual(header.signals.map((signal) => signal.checksum), [-22131, 20052]);
    assert.strictEqual(header.signals[0].adcZero, 1024);
    assert.strictEqual(header.signals[0].baseline, 1024);
    assert.strictEqual(header.signals[0].format, 212);
  });

  it('parses a date before the time', () => {
    // Georgia 12-lead headers write the record name with its extension and the date first.
    const file = path.join(FIXTURES, 'headers', 'E07500.hea');
    const header = parseWfdbHeader(fs.readFileSync(file, 'latin1'), file);
    assert.strictEqual(header.recordName, 'E07500.mat');
    assert.strictEqual(header.baseDate, '05-May-2020');
    assert.strictEqual(header.baseTime, '09:49:17');
    assert.strictEqual(header.signals[5].description, 'aVF');
    assert.strictEqual(header.signals[0].byteOffset, 24);
    assert.ok(header.comments.includes('Dx: 67741000119109,426177001'));
  });

  it('orders twelve leads by name', () => {
    // aVF listed before aVL, names in upper case, lead k constant at its canonical index k (1-based).
    const fileOrder = ['I', 'II', 'III', 'AVR', 'AVF', 'AVL', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'];
    const canonical = TWELVE_LEADS.map((lead) => lead.toUpperCase());
    const values = fileOrder.map((lead) => canonical.indexOf(lead) + 1);
    const frames = 4;
    const bytes = Buffer.alloc(frames * 12 * 2);
    for (let t = 0; t < frames; t++) values.forEach((value, s) => bytes.writeInt16LE(value * 1000, (t * 12 + s) * 2));
    const lines = fileOrder.map((lead, s) => `leads.dat 16 1000/mV 16 0 ${values[s] * 1000} ${(values[s] * 1000 * frames) & 0xffff} 0 ${lead}`);
    const record = readWfdbRecordSync(
      writeRecord(scratch, 'leads', `leads 12 500 ${frames}\n${lines.join('\n')}\n`, { 'leads.dat': bytes }),
    );
    const selected = selectTwelveLeads(record);
    assert.deepStrictEqual([...selected.leads], [...TWELVE_LEADS]);
    selected.physical.forEach((lead, index) => {
      assert.deepStrictEqual(Array.from(lead), new Array(frames).fill(index + 1), `lead ${TWELVE_LEADS[index]}`);
    });
  });

  it('selects twelve leads from a two-file record', () => {
    const record = readWfdbRecordSync(path.join(RECORDS, 'ptbdb', 's0010_re'));
    const selected = selectTwelveLeads(record);
    assert.strictEqual(selected.physical.length, 12);
    assert.strictEqual(selected.physical[5], record.physical[5]);
    assert.deepStrictEqual(selected.units, new Array(12).fill('mV'));
  });

  it('rejects a missing or duplicated lead', () => {
    const header = (names: string[]) =>
      `dup ${names.length} 500 1\n${names.map((n) => `dup.dat 16 1000/mV 16 0 0 0 0 ${n}`).join('\n')}\n`;
    const twelve = [...TWELVE_LEADS] as string[];
    const duplicated = readWfdbRecordSync(
      writeRecord(scratch, 'dup', header([...twelve.slice(0, 11), 'v1']), { 'dup.dat': Buffer.alloc(24) }),
    );
    assert.throws(() => selectTwelveLeads(duplicated), /lead V1 appears 2 times/);
    const missing = readWfdbRecordSync(writeRecord(scratch, 'dup', header(twelve.slice(0, 11)), { 'dup.dat': Buffer.alloc(22) }));
    assert.throws(() => selectTwelveLeads(missing), (error: Error) => {
      assert.match(error.message, /dup\.hea/);
      assert.match(error.message, /missing lead V6/);
      return true;
    });
  });

  it('infers a missing sample count from the file', () => {
    const record = readWfdbRecordSync(writeRecord(scratch, 'nolen', 'nolen 2 250\nnolen.dat 212\nnolen.dat 212\n', {
      // Two frames of format 212; wfdb-python 4.3 reads them as (1, -1) and (2047, -2048 = NaN).
      'nolen.dat': [0x01, 0xf0, 0xff, 0xff, 0x87, 0x00],
    }));
    assert.strictEqual(record.sampleCount, 2);
    assert.deepStrictEqual(Array.from(record.digital![0]), [1, 2047]);
    assert.deepStrictEqual(Array.from(record.digital![1]), [-1, -2048]);
    assert.ok(Number.isNaN(record.physical[1][1]));
    assert.strictEqual(record.samplingFrequency, 250);
  });

  describe('malformed input', () => {
    it('rejects a truncated signal file', () => {
      const record = writeRecord(scratch, 'short', 'short 1 500 3\nshort.dat 16 200 16 0\n', { 'short.dat': [1, 0, 2, 0, 3] });
      assert.throws(() => readWfdbRecordSync(record), (error: Error) => {
        assert.ok(error instanceof WfdbError);
        assert.match(error.message, /short\.dat: truncated signal file/);
        assert.match(error.message, /needs 6 bytes/);
        return true;
      });
    });

    it('rejects disagreeing header and data sizes', () => {
      const record = writeRecord(scratch, 'long', 'long 1 500 2\nlong.dat 16 200 16 0\n', { 'long.dat': [1, 0, 2, 0, 3, 0] });
      assert.throws(() => readWfdbRecordSync(record), /long\.dat: header and data sizes disagree.*declares 2 samples/);
      const lenient = readWfdbRecordSync(record, { allowTrailingBytes: true });
      assert.deepStrictEqual(Array.from(lenient.digital![0]), [1, 2]);
    });

    it('rejects a checksum mismatch', () => {
      const record = writeRecord(scratch, 'sum', 'sum 1 500 2\nsum.dat 16 200 16 0 1 4 0 I\n', { 'sum.dat': [1, 0, 2, 0] });
      assert.throws(() => readWfdbRecordSync(record), /sum\.dat: checksum mismatch for signal 0 \(I\).*gives 4.*sum to 3/);
      assert.deepStrictEqual(Array.from(readWfdbRecordSync(record, { verifyChecksums: false }).digital![0]), [1, 2]);
    });

    it('accepts unsigned and signed checksums', () => {
      const unsigned = writeRecord(scratch, 'neg', 'neg 1 500 1\nneg.dat 16 200 16 0 -3 65533 0\n', { 'neg.dat': [0xfd, 0xff] });
      assert.deepStrictEqual(Array.from(readWfdbRecordSync(unsigned).digital![0]), [-3]);
      const signed = writeRecord(scratch, 'neg', 'neg 1 500 1\nneg.dat 16 200 16 0 -3 -3 0\n', { 'neg.dat': [0xfd, 0xff] });
      assert.deepStrictEqual(Array.from(readWfdbRecordSync(signed).digital![0]), [-3]);
    });

    it('rejects a missing signal file', () => {
      const record = writeRecord(scratch, 'gone', 'gone 1 500 2\nabsent.dat 16\n', {});
      assert.throws(() => readWfdbRecordSync(record), /absent\.dat: signal file not found \(named in .*gone\.hea\)/);
    });

    it('rejects a missing header file', async () => {
      assert.throws(() => readWfdbRecordSync(path.join(scratch, 'nothing')), /nothing\.hea: header file not found/);
      await assert.rejects(readWfdbRecord(path.join(scratch, 'nothing')), /nothing\.hea: header file not found/);
    });

    it('rejects an unsupported format', () => {
      const record = writeRecord(scratch, 'fmt8', 'fmt8 1 500 2\nfmt8.dat 8\n', { 'fmt8.dat': [1, 2] });
      assert.throws(() => readWfdbRecordSync(record), /unsupported WFDB signal format 8; supported formats are 16, 212, 80, 24, 32, 61, 160, 310, 311/);
    });

    it('rejects a missing segment', () => {
      const record = writeRecord(scratch, 'multi', 'multi/2 1 360 20\nseg1 10\nseg2 10\n', {});
      assert.throws(() => readWfdbRecordSync(record), /seg1\.hea: header file not found/);
    });

    it('rejects segments that disagree with the master', () => {
      const segment = writeRecord(scratch, 'part', 'part 1 360 2\npart.dat 16 200 16 0 0 0 0 II\n', { 'part.dat': [0, 0, 0, 0] });
      assert.ok(segment.endsWith('part'));
      const record = writeRecord(scratch, 'master', 'master/1 1 360 3\npart 3\n', {});
      assert.throws(() => readWfdbRecordSync(record), /part\.hea: the segment has 2 samples but the master header .*master\.hea declares 3/);
    });

    it('rejects malformed header fields', () => {
      assert.throws(() => parseWfdbHeader('r 1 500 x\n', 'r.hea'), /r\.hea line 1: invalid sample count "x"/);
      assert.throws(() => parseWfdbHeader('r 2 500 1\na.dat 16\n', 'r.hea'), /declares 2 signals but the header has 1/);
      assert.throws(() => parseWfdbHeader('r 1 500 1\na.dat 16 abc\n', 'r.hea'), /r\.hea line 2: invalid ADC gain "abc"/);
      assert.throws(() => parseWfdbHeader('# only a comment\n', 'r.hea'), /no record line/);
    });

    it('rejects a signal file outside the record folder', () => {
      const record = writeRecord(scratch, 'escape', 'escape 1 500 1\n../outside.dat 16\n', {});
      assert.throws(() => readWfdbRecordSync(record), /outside the dataset root/);
    });
  });
});
