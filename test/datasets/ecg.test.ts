import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';

import {
  augmentEcg,
  EcgArray,
  flipSign,
  loadPreprocessedEcg,
  medianFilter,
  medianWindowLength,
  permuteSegments,
  preprocessEcg,
  removeBaselineWander,
  resamplePoly,
  scaleRandomly,
  scaleToUnitRange,
  segmentBoundaries,
  timeWarp,
  addGaussianNoise,
} from '../../src/datasets/ecg';
import { readWfdbRecordSync, selectTwelveLeads } from '../../src/datasets/wfdb';
import { Rng } from '../../src/util/rng';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'datasets', 'ecg');

// Produced by reference/datasets_ecg.py with scipy.signal.resample_poly and scipy.signal.medfilt.
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'preprocess_expected.json'), 'utf8')) as {
  records: Record<string, { shape: [number, number]; stem: string }>;
  resample_poly: { up: number; down: number; x: number[]; y: number[] }[];
  medfilt: { kernel: number; x: number[]; y: number[] }[];
};

function readStage(stem: string, stage: string): Float64Array {
  const bytes = fs.readFileSync(path.join(FIXTURES, `preprocess_${stem}_${stage}.f64`));
  return new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

function assertClose(actual: ArrayLike<number>, wanted: ArrayLike<number>, tolerance: number, label: string): void {
  assert.strictEqual(actual.length, wanted.length, `${label}: length`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < wanted.length; i++) {
    const error = Math.abs(actual[i] - wanted[i]);
    if (!(error <= worst)) {
      worst = error;
      at = i;
    }
  }
  assert.ok(worst <= tolerance, `${label}: max error ${worst} at ${at} (${actual[at]} vs ${wanted[at]})`);
}

function rampEcg(leads: number, samples: number): EcgArray<Float64Array> {
  const data = new Float64Array(leads * samples);
  for (let i = 0; i < data.length; i++) data[i] = i;
  return { data, leads, samples };
}

describe('datasets/ecg', () => {
  describe('filters against scipy', () => {
    expected.resample_poly.forEach((testCase) => {
      it(`resamples ${testCase.x.length} samples by ${testCase.up}/${testCase.down}`, () => {
        assertClose(resamplePoly(testCase.x, testCase.up, testCase.down), testCase.y, 1e-9, 'resample_poly');
      });
    });

    expected.medfilt.forEach((testCase) => {
      it(`median-filters ${testCase.x.length} samples with kernel ${testCase.kernel}`, () => {
        assertClose(medianFilter(testCase.x, testCase.kernel), testCase.y, 0, 'medfilt');
      });
    });

    it('rejects even median kernels', () => {
      assert.throws(() => medianFilter([1, 2, 3], 4), /Invalid median filter kernel 4/);
    });

    it('uses 21 and 61 samples at 100 Hz', () => {
      assert.strictEqual(medianWindowLength(0.2, 100), 21);
      assert.strictEqual(medianWindowLength(0.6, 100), 61);
    });
  });

  describe('preprocessing against scipy', () => {
    for (const [name, info] of Object.entries(expected.records)) {
      it(`matches every stage on ${name}`, () => {
        const record = readWfdbRecordSync(path.join(FIXTURES, 'records', name));
        const twelve = selectTwelveLeads(record);
        const [leads, samples] = info.shape;
        const resampledExpected = readStage(info.stem, 'resampled');
        const correctedExpected = readStage(info.stem, 'corrected');
        const scaledExpected = readStage(info.stem, 'scaled');
        for (let lead = 0; lead < leads; lead++) {
          const window = (array: Float64Array) => array.subarray(lead * samples, (lead + 1) * samples);
          const resampled = resamplePoly(twelve.physical[lead], 1, 5);
          assertClose(resampled, window(resampledExpected), 1e-6, `${name} lead ${lead} resampled`);
          const corrected = removeBaselineWander(resampled, 100);
          assertClose(corrected, window(correctedExpected), 1e-6, `${name} lead ${lead} corrected`);
          assertClose(scaleToUnitRange(corrected), window(scaledExpected), 1e-6, `${name} lead ${lead} scaled`);
        }
        const whole = preprocessEcg(twelve.physical, 500, { dtype: 'float64' });
        assert.strictEqual(whole.leads, 12);
        assert.strictEqual(whole.samples, 1000);
        assertClose(whole.data, scaledExpected, 1e-6, `${name} preprocessEcg`);
      });
    }

    it('loads a record ready for the encoder', async () => {
      const ecg = await loadPreprocessedEcg(path.join(FIXTURES, 'records', 'ptbxl', 'records500', '00000', '00001_hr'));
      assert.ok(ecg.data instanceof Float32Array);
      assert.strictEqual(ecg.leads, 12);
      assert.strictEqual(ecg.samples, 1000);
      assertClose(ecg.data, readStage('ptbxl_00001_hr', 'scaled'), 1e-6, 'float32 output');
    });

    it('keeps a 100 Hz record at its length', async () => {
      const ecg = await loadPreprocessedEcg(path.join(FIXTURES, 'records', 'ptbxl', 'records100', '00000', '00001_lr'));
      assert.strictEqual(ecg.samples, 1000);
    });
  });

  describe('invalid samples', () => {
    it('zeroes a NaN without spreading it', () => {
      const record = readWfdbRecordSync(path.join(FIXTURES, 'records', 'cases', 'y'));
      assert.ok(Number.isNaN(record.physical[0][1]));
      const raw = preprocessEcg(record.physical, 500, { targetRate: 500, removeBaseline: false, scale: false, dtype: 'float64' });
      assert.deepStrictEqual(Array.from(raw.data), [1, 0, -1]);
      const full = preprocessEcg(record.physical, 500, { dtype: 'float64' });
      for (const value of full.data) assert.ok(Number.isFinite(value), `non-finite output ${value}`);
    });

    it('keeps a long lead finite around a NaN', () => {
      const lead = new Float64Array(5000).map((_, i) => Math.sin(i / 40));
      lead[2500] = Number.NaN;
      const ecg = preprocessEcg([lead], 500, { dtype: 'float64' });
      assert.strictEqual(ecg.samples, 1000);
      assert.ok(ecg.data.every((value) => Number.isFinite(value)));
      assert.strictEqual(Math.min(...ecg.data), -1);
      assert.strictEqual(Math.max(...ecg.data), 1);
    });

    it('turns a constant lead into zeros', () => {
      assert.deepStrictEqual(Array.from(scaleToUnitRange([3, 3, 3])), [0, 0, 0]);
    });

    it('rejects leads of different lengths', () => {
      assert.throws(() => preprocessEcg([[1, 2], [1]], 100), /lead 1 has 1 samples but lead 0 has 2/);
    });
  });

  describe('augmentations', () => {
    it('splits into near-equal segments', () => {
      assert.deepStrictEqual(segmentBoundaries(1000, 4), [0, 250, 500, 750, 1000]);
      assert.deepStrictEqual(segmentBoundaries(10, 4), [0, 3, 5, 8, 10]);
    });

    it('time warp keeps length and endpoints', () => {
      const ecg = rampEcg(2, 1000);
      const warped = timeWarp(ecg, new Rng(3));
      assert.strictEqual(warped.data.length, 2000);
      assert.strictEqual(warped.data[0], 0);
      assert.strictEqual(warped.data[999], 999);
      assert.strictEqual(warped.data[1000], 1000);
      // The ramp stays increasing inside each lead, because every segment is interpolated in order.
      for (let i = 1; i < 1000; i++) assert.ok(warped.data[i] >= warped.data[i - 1], `sample ${i}`);
      const warpedLead = warped.data.subarray(0, 1000);
      assert.notDeepStrictEqual(Array.from(warpedLead), Array.from(ecg.data.subarray(0, 1000)));
    });

    it('time warp with factor 0 is the identity', () => {
      const ecg = rampEcg(3, 400);
      assert.deepStrictEqual(timeWarp(ecg, new Rng(1), 4, 0).data, ecg.data);
    });

    it('permutes whole segments per lead', () => {
      const ecg = rampEcg(12, 1000);
      const permuted = permuteSegments(ecg, new Rng(5));
      let leadsChanged = 0;
      for (let lead = 0; lead < 12; lead++) {
        const offset = lead * 1000;
        const starts = [0, 250, 500, 750].map((t) => permuted.data[offset + t] - offset);
        assert.deepStrictEqual([...starts].sort((a, b) => a - b), [0, 250, 500, 750], `lead ${lead}`);
        for (let t = 0; t < 1000; t++) {
          if (t % 250 !== 0) assert.strictEqual(permuted.data[offset + t], permuted.data[offset + t - 1] + 1);
        }
        if (starts.join() !== '0,250,500,750') leadsChanged++;
      }
      assert.ok(leadsChanged > 0, 'no lead was permuted');
    });

    it('adds noise of the requested spread', () => {
      const ecg = { data: new Float64Array(20000), leads: 2, samples: 10000 };
      const noisy = addGaussianNoise(ecg, new Rng(11), 0.05);
      const mean = noisy.data.reduce((a, b) => a + b, 0) / noisy.data.length;
      const variance = noisy.data.reduce((a, b) => a + (b - mean) ** 2, 0) / noisy.data.length;
      assert.ok(Math.abs(mean) < 0.002, `mean ${mean}`);
      assert.ok(Math.abs(Math.sqrt(variance) - 0.05) < 0.002, `std ${Math.sqrt(variance)}`);
    });

    it('scales each lead by one factor', () => {
      const ecg = { data: Float64Array.from([1, 2, 4, 1, 2, 4]), leads: 2, samples: 3 };
      const scaled = scaleRandomly(ecg, new Rng(2), 0.1);
      const first = scaled.data[0];
      assert.deepStrictEqual(Array.from(scaled.data.subarray(0, 3)), [first, 2 * first, 4 * first]);
      assert.notStrictEqual(scaled.data[3], first);
    });

    it('flips the sign of every lead', () => {
      const ecg = { data: Float64Array.from([1, -2, 3, 4]), leads: 2, samples: 2 };
      assert.deepStrictEqual(Array.from(flipSign(ecg, new Rng(0), 1).data), [-1, 2, -3, -4]);
      assert.deepStrictEqual(Array.from(flipSign(ecg, new Rng(0), 0).data), [1, -2, 3, 4]);
    });

    it('repeats under a restored generator state', () => {
      const ecg = rampEcg(12, 1000);
      const options = { noiseStd: 0.01, scaleSigma: 0.1, signFlipProbability: 0.5 };
      const rng = new Rng(42);
      augmentEcg(ecg, rng, options);
      const state = rng.getState();
      const first = augmentEcg(ecg, rng, options);
      const second = augmentEcg(ecg, Rng.fromState(state), options);
      assert.deepStrictEqual(second.data, first.data);
      assert.strictEqual(first.data.length, ecg.data.length);
    });

    it('picks each of the three choices', () => {
      const ecg = rampEcg(1, 100);
      const rng = new Rng(9);
      const seen = new Set<string>();
      for (let i = 0; i < 60; i++) {
        const result = augmentEcg(ecg, rng);
        const same = result.data.every((value, t) => value === ecg.data[t]);
        const sorted = result.data.every((value, t) => t === 0 || value >= result.data[t - 1]);
        if (same) seen.add('none');
        else if (sorted) seen.add('timeWarp');
        else seen.add('permuteSegments');
      }
      assert.deepStrictEqual([...seen].sort(), ['none', 'permuteSegments', 'timeWarp']);
    });

    it('rejects an unknown choice', () => {
      assert.throws(() => augmentEcg(rampEcg(1, 8), new Rng(1), { choices: ['mixup' as 'none'] }), /Invalid ECG augmentation "mixup"/);
    });
  });
});
